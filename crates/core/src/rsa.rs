//! RSA-2048 signatures for the Cryptolens-compatible API: PKCS#1 v1.5 over SHA-256 (licenses)
//! and SHA-512 (metadata), with the public key published in the .NET `<RSAKeyValue>` XML form
//! that the Cryptolens SDKs take. Backed by aws-lc-rs.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA512, RSA_PKCS1_SHA256,
    RSA_PKCS1_SHA512,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::DomainError;

/// The digest a signature is made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsaDigest {
    Sha256,
    Sha512,
}

/// A product's RSA private key.
pub struct RsaSigner {
    key: KeyPair,
}

impl std::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaSigner")
            .field("bits", &(self.key.public_modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl RsaSigner {
    /// A fresh 2048-bit key (the size the SDKs' verifiers expect).
    pub fn generate() -> Result<Self, DomainError> {
        let key = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| DomainError::new("signing_key", "RSA key generation failed"))?;
        Ok(Self { key })
    }

    /// Restores a key from the base64 PKCS#8 DER that [`RsaSigner::to_base64_pkcs8`] produced.
    pub fn from_base64_pkcs8(input: &str) -> Result<Self, DomainError> {
        let der = B64
            .decode(input.trim())
            .map_err(|_| DomainError::new("signing_key", "is not base64"))?;
        let key = KeyPair::from_pkcs8(&der)
            .map_err(|e| DomainError::new("signing_key", format!("is not an RSA key: {e}")))?;
        if key.public_modulus_len() != 256 {
            return Err(DomainError::new("signing_key", "must be an RSA-2048 key"));
        }
        Ok(Self { key })
    }

    pub fn to_base64_pkcs8(&self) -> String {
        let der = self
            .key
            .as_der()
            .expect("a generated RSA key always encodes as PKCS#8");
        B64.encode(der.as_ref())
    }

    pub fn public_key(&self) -> RsaPublicKey {
        let components = PublicKeyComponents::<Vec<u8>>::from(self.key.public_key());
        RsaPublicKey {
            modulus: strip_zeros(components.n),
            exponent: strip_zeros(components.e),
        }
    }

    /// The raw PKCS#1 v1.5 signature of `message`.
    pub fn sign(&self, digest: RsaDigest, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        let padding = match digest {
            RsaDigest::Sha256 => &RSA_PKCS1_SHA256,
            RsaDigest::Sha512 => &RSA_PKCS1_SHA512,
        };
        self.key
            .sign(padding, &SystemRandom::new(), message, &mut signature)
            .expect("RSA PKCS#1 v1.5 signing with a valid key does not fail");
        signature
    }

    /// Base64 of [`RsaSigner::sign`].
    pub fn sign_base64(&self, digest: RsaDigest, message: &[u8]) -> String {
        B64.encode(self.sign(digest, message))
    }
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let leading = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..leading.min(bytes.len().saturating_sub(1)));
    bytes
}

/// An RSA public key as big-endian modulus and exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

impl RsaPublicKey {
    /// `<RSAKeyValue><Modulus>…</Modulus><Exponent>…</Exponent></RSAKeyValue>` on one line, as
    /// .NET's `RSA.ToXmlString(false)` writes it and every Cryptolens SDK reads it.
    pub fn to_xml(&self) -> String {
        format!(
            "<RSAKeyValue><Modulus>{}</Modulus><Exponent>{}</Exponent></RSAKeyValue>",
            B64.encode(&self.modulus),
            B64.encode(&self.exponent)
        )
    }

    /// Reads the XML form back (whitespace around the values is tolerated).
    pub fn from_xml(xml: &str) -> Result<Self, DomainError> {
        let element = |name: &str| -> Result<Vec<u8>, DomainError> {
            let open = format!("<{name}>");
            let close = format!("</{name}>");
            let start = xml
                .find(&open)
                .ok_or_else(|| DomainError::new("public_key", format!("has no <{name}>")))?
                + open.len();
            let end = xml[start..]
                .find(&close)
                .ok_or_else(|| DomainError::new("public_key", format!("has no </{name}>")))?
                + start;
            B64.decode(xml[start..end].trim())
                .map_err(|_| DomainError::new("public_key", format!("{name} is not base64")))
        };
        Ok(Self {
            modulus: strip_zeros(element("Modulus")?),
            exponent: strip_zeros(element("Exponent")?),
        })
    }

    pub fn modulus(&self) -> &[u8] {
        &self.modulus
    }

    pub fn exponent(&self) -> &[u8] {
        &self.exponent
    }

    /// Whether `signature` is a PKCS#1 v1.5 signature of `message` under this key.
    pub fn verify(&self, digest: RsaDigest, message: &[u8], signature: &[u8]) -> bool {
        let params = match digest {
            RsaDigest::Sha256 => &RSA_PKCS1_2048_8192_SHA256,
            RsaDigest::Sha512 => &RSA_PKCS1_2048_8192_SHA512,
        };
        PublicKeyComponents {
            n: self.modulus.as_slice(),
            e: self.exponent.as_slice(),
        }
        .verify(params, message, signature)
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_for_their_digest_and_bytes_only() {
        let signer = RsaSigner::generate().unwrap();
        let public = signer.public_key();
        assert_eq!(public.modulus().len(), 256);
        assert_eq!(public.exponent(), &[1, 0, 1]);
        let sig = signer.sign(RsaDigest::Sha256, b"license");
        assert_eq!(sig.len(), 256);
        assert!(public.verify(RsaDigest::Sha256, b"license", &sig));
        assert!(!public.verify(RsaDigest::Sha256, b"licensE", &sig));
        assert!(!public.verify(RsaDigest::Sha512, b"license", &sig));
        let sig512 = signer.sign(RsaDigest::Sha512, b"metadata");
        assert!(public.verify(RsaDigest::Sha512, b"metadata", &sig512));
        // PKCS#1 v1.5 is deterministic: the same bytes give the same signature.
        assert_eq!(sig, signer.sign(RsaDigest::Sha256, b"license"));
    }

    #[test]
    fn keys_survive_storage_and_the_xml_form() {
        let signer = RsaSigner::generate().unwrap();
        let restored = RsaSigner::from_base64_pkcs8(&signer.to_base64_pkcs8()).unwrap();
        assert_eq!(restored.public_key(), signer.public_key());
        let xml = signer.public_key().to_xml();
        assert!(xml.starts_with("<RSAKeyValue><Modulus>"));
        assert!(xml.ends_with("</Modulus><Exponent>AQAB</Exponent></RSAKeyValue>"));
        assert!(!xml.contains(char::is_whitespace));
        let parsed = RsaPublicKey::from_xml(&xml).unwrap();
        assert_eq!(parsed, signer.public_key());
        assert!(parsed.verify(
            RsaDigest::Sha256,
            b"x",
            &restored.sign(RsaDigest::Sha256, b"x")
        ));
        assert!(RsaSigner::from_base64_pkcs8("bm90IGEga2V5").is_err());
        assert!(RsaPublicKey::from_xml("<RSAKeyValue/>").is_err());
    }
}
