//! Ed25519 signatures over the exact bytes of a reply, so a vendor's program can trust a reply (or
//! a license file) without trusting the network between it and the server.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use rand::rngs::OsRng;

use crate::DomainError;

/// A product's private signing key.
#[derive(Clone)]
pub struct ProductSigner {
    key: SigningKey,
    /// The same key for signing: aws-lc's Ed25519 signs several times faster, and Ed25519
    /// signatures are deterministic, so the bytes are the same either way.
    fast: std::sync::Arc<aws_lc_rs::signature::Ed25519KeyPair>,
}

impl ProductSigner {
    fn from_key(key: SigningKey) -> Self {
        let fast = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&key.to_bytes())
            .expect("every 32-byte seed is an Ed25519 key");
        Self {
            key,
            fast: std::sync::Arc::new(fast),
        }
    }
}

impl std::fmt::Debug for ProductSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductSigner")
            .field("public_key", &self.public_key().to_base64())
            .finish_non_exhaustive()
    }
}

impl ProductSigner {
    pub fn generate() -> Self {
        Self::from_key(SigningKey::generate(&mut OsRng))
    }

    /// Restores a key from the base64 seed that [`ProductSigner::to_base64_seed`] produced.
    pub fn from_base64_seed(seed: &str) -> Result<Self, DomainError> {
        let bytes = B64
            .decode(seed)
            .map_err(|_| DomainError::new("signing_key", "is not base64"))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| DomainError::new("signing_key", "must be 32 bytes"))?;
        Ok(Self::from_key(SigningKey::from_bytes(&seed)))
    }

    pub fn to_base64_seed(&self) -> String {
        B64.encode(self.key.to_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// Base64 of the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.fast.sign(message).as_ref())
    }
}

/// A product's public key, as vendors embed it in their programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_base64(input: &str) -> Result<Self, DomainError> {
        let bytes = B64
            .decode(input.trim())
            .map_err(|_| DomainError::new("public_key", "is not base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| DomainError::new("public_key", "must be 32 bytes"))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| DomainError::new("public_key", "is not an Ed25519 key"))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    /// SubjectPublicKeyInfo PEM, for tools that want a standard container.
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 public key always encodes")
    }

    pub fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(bytes) = B64.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.0.verify(message, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    #[test]
    fn signatures_verify_only_for_the_signed_bytes_and_key() {
        let signer = ProductSigner::generate();
        let public = signer.public_key();
        let sig = signer.sign(b"{\"valid\":true}");
        assert!(public.verify(b"{\"valid\":true}", &sig));
        assert!(!public.verify(b"{\"valid\":false}", &sig));
        assert!(!ProductSigner::generate()
            .public_key()
            .verify(b"{\"valid\":true}", &sig));
        assert!(!public.verify(b"{\"valid\":true}", "not base64!"));
    }

    #[test]
    fn signatures_are_the_bytes_the_reference_implementation_makes() {
        let signer = ProductSigner::generate();
        for message in [&b""[..], b"{\"valid\":true}", &[7u8; 5000]] {
            assert_eq!(
                signer.sign(message),
                B64.encode(signer.key.sign(message).to_bytes())
            );
        }
    }

    #[test]
    fn keys_survive_storage() {
        let signer = ProductSigner::generate();
        let restored = ProductSigner::from_base64_seed(&signer.to_base64_seed()).unwrap();
        assert_eq!(restored.public_key(), signer.public_key());
        let public = PublicKey::from_base64(&signer.public_key().to_base64()).unwrap();
        assert!(public.verify(b"x", &restored.sign(b"x")));
        assert!(signer
            .public_key()
            .to_pem()
            .starts_with("-----BEGIN PUBLIC KEY-----"));
    }
}
