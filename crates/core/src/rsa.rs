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

    /// A key pair exported from elsewhere, so programs shipped with its public key keep
    /// verifying: the .NET `<RSAKeyValue>` XML with its private parts (`P`, `Q`, `DP`, `DQ`,
    /// `InverseQ`, `D`), or PEM as PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE
    /// KEY`). It must be a 2048-bit key (the Cryptolens SDKs' verifiers assume that size), and
    /// it must sign: a signature made with it is checked against its public key before it is
    /// accepted, so inconsistent parts are refused here rather than found by programs later.
    pub fn import(text: &str) -> Result<Self, DomainError> {
        let text = text.trim_start_matches('\u{feff}').trim();
        let bad = |message: String| DomainError::new("private_key", message);
        let key = if text.starts_with('<') {
            let xml = PrivateXml::parse(text)?;
            let der = xml.pkcs1_der();
            let key = KeyPair::from_der(&der)
                .map_err(|e| bad(format!("the XML does not hold a usable RSA key pair: {e}")))?;
            let public = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
            if strip_zeros(public.n) != strip_zeros(xml.modulus.clone())
                || strip_zeros(public.e) != strip_zeros(xml.exponent.clone())
            {
                return Err(bad(
                    "the XML's Modulus and Exponent do not belong to its private parts".into(),
                ));
            }
            key
        } else {
            let (label, der) = pem_body(text)?;
            match label.as_str() {
                "RSA PRIVATE KEY" => KeyPair::from_der(&der),
                "PRIVATE KEY" => KeyPair::from_pkcs8(&der),
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(bad(
                        "the key is encrypted: export it without a passphrase (it is sealed \
                         with the master key here when one is configured)"
                            .into(),
                    ))
                }
                other => {
                    return Err(bad(format!(
                        "a PEM {other:?} is not a private key: give BEGIN RSA PRIVATE KEY \
                         (PKCS#1) or BEGIN PRIVATE KEY (PKCS#8)"
                    )))
                }
            }
            .map_err(|e| {
                bad(format!(
                    "the PEM does not hold a usable RSA private key: {e}"
                ))
            })?
        };
        if key.public_modulus_len() != 256 {
            return Err(bad(format!(
                "is a {}-bit key; the Cryptolens SDKs verify 2048-bit keys only",
                key.public_modulus_len() * 8
            )));
        }
        let signer = Self { key };
        let probe = b"keyturn: does this key pair sign?";
        if !signer.public_key().verify(
            RsaDigest::Sha256,
            probe,
            &signer.sign(RsaDigest::Sha256, probe),
        ) {
            return Err(bad(
                "the key's private parts do not match its public key".into()
            ));
        }
        Ok(signer)
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

/// The text of `<name>…</name>` in an XML key (the first one), if present.
fn xml_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

/// A key pair in the .NET XML form, as big-endian integers.
struct PrivateXml {
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    d: Vec<u8>,
    p: Vec<u8>,
    q: Vec<u8>,
    dp: Vec<u8>,
    dq: Vec<u8>,
    inverse_q: Vec<u8>,
}

impl PrivateXml {
    fn parse(xml: &str) -> Result<Self, DomainError> {
        if !xml.contains("<RSAKeyValue>") {
            return Err(DomainError::new(
                "private_key",
                "is neither an <RSAKeyValue> XML key nor a PEM private key",
            ));
        }
        let part = |name: &str| -> Result<Vec<u8>, DomainError> {
            let text = xml_element(xml, name).ok_or_else(|| {
                DomainError::new(
                    "private_key",
                    if name == "D" || name == "P" {
                        format!(
                            "the XML has no <{name}>: it holds only the public key; export the \
                             key pair with its private parts"
                        )
                    } else {
                        format!("the XML has no <{name}>")
                    },
                )
            })?;
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            B64.decode(compact)
                .map_err(|_| DomainError::new("private_key", format!("<{name}> is not base64")))
        };
        Ok(Self {
            modulus: part("Modulus")?,
            exponent: part("Exponent")?,
            d: part("D")?,
            p: part("P")?,
            q: part("Q")?,
            dp: part("DP")?,
            dq: part("DQ")?,
            inverse_q: part("InverseQ")?,
        })
    }

    /// The PKCS#1 `RSAPrivateKey` DER of the key (RFC 8017, A.1.2).
    fn pkcs1_der(&self) -> Vec<u8> {
        let mut body = der_integer(&[0]);
        for part in [
            &self.modulus,
            &self.exponent,
            &self.d,
            &self.p,
            &self.q,
            &self.dp,
            &self.dq,
            &self.inverse_q,
        ] {
            body.extend(der_integer(part));
        }
        der(0x30, &body)
    }
}

/// A DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// A non-negative big-endian integer as a DER INTEGER.
fn der_integer(value: &[u8]) -> Vec<u8> {
    let mut v = strip_zeros(value.to_vec());
    if v.is_empty() {
        v.push(0);
    }
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

/// The label and decoded body of a PEM block.
fn pem_body(text: &str) -> Result<(String, Vec<u8>), DomainError> {
    let bad = |m: &str| DomainError::new("private_key", m.to_owned());
    let begin = text
        .find("-----BEGIN ")
        .ok_or_else(|| bad("is neither an <RSAKeyValue> XML key nor a PEM private key"))?;
    let rest = &text[begin + "-----BEGIN ".len()..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| bad("the PEM header is not closed"))?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end = body
        .find("-----END ")
        .ok_or_else(|| bad("the PEM has no END line"))?;
    let body = &body[..end];
    if body.contains(':') {
        return Err(bad(
            "the key is encrypted: export it without a passphrase (it is sealed with the \
             master key here when one is configured)",
        ));
    }
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = B64
        .decode(compact)
        .map_err(|_| bad("the PEM body is not base64"))?;
    Ok((label, der))
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

    /// (tag, contents, rest) of the first DER element.
    fn read_der(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1] as usize);
        let (len, head) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |a, b| a << 8 | *b as usize);
            (len, 2 + n)
        };
        (tag, &der[head..head + len], &der[head + len..])
    }

    /// The PKCS#1 key inside a PKCS#8 one, and its nine integers.
    fn pkcs1_of(pkcs8: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (_, info, _) = read_der(pkcs8);
        let (_, _version, rest) = read_der(info);
        let (_, _algorithm, rest) = read_der(rest);
        let (_, pkcs1, _) = read_der(rest);
        let (_, mut ints, _) = read_der(pkcs1);
        let mut out = Vec::new();
        while !ints.is_empty() {
            let (_, value, rest) = read_der(ints);
            out.push(value.to_vec());
            ints = rest;
        }
        (pkcs1.to_vec(), out)
    }

    fn xml_of(parts: &[Vec<u8>], leave_out: &str) -> String {
        let names = [
            "", "Modulus", "Exponent", "D", "P", "Q", "DP", "DQ", "InverseQ",
        ];
        let mut xml = String::from("<RSAKeyValue>\n");
        for order in ["Modulus", "Exponent", "P", "Q", "DP", "DQ", "InverseQ", "D"] {
            if order == leave_out {
                continue;
            }
            let i = names.iter().position(|n| *n == order).unwrap();
            xml.push_str(&format!("  <{order}>{}</{order}>\n", B64.encode(&parts[i])));
        }
        xml + "</RSAKeyValue>"
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let body = B64.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn key_pairs_are_imported_from_xml_and_pem() {
        let original = RsaSigner::generate().unwrap();
        let pkcs8 = B64.decode(original.to_base64_pkcs8()).unwrap();
        let (pkcs1, parts) = pkcs1_of(&pkcs8);
        let xml = xml_of(&parts, "");
        for text in [
            xml.clone(),
            format!("\u{feff}{xml}\r\n"),
            pem("PRIVATE KEY", &pkcs8),
            pem("RSA PRIVATE KEY", &pkcs1),
        ] {
            let imported = RsaSigner::import(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(imported.public_key(), original.public_key());
            // Signatures made with the imported key verify with the original public key.
            let sig = imported.sign(RsaDigest::Sha256, b"license");
            assert!(original
                .public_key()
                .verify(RsaDigest::Sha256, b"license", &sig));
            // And it survives storage.
            let stored = RsaSigner::from_base64_pkcs8(&imported.to_base64_pkcs8()).unwrap();
            assert_eq!(stored.public_key(), original.public_key());
        }
    }

    #[test]
    fn keys_that_cannot_sign_are_refused_with_the_reason() {
        let original = RsaSigner::generate().unwrap();
        let pkcs8 = B64.decode(original.to_base64_pkcs8()).unwrap();
        let (_, parts) = pkcs1_of(&pkcs8);
        let refused = |text: &str| RsaSigner::import(text).unwrap_err().message;
        assert!(refused(&xml_of(&parts, "D")).contains("only the public key"));
        assert!(refused(&original.public_key().to_xml()).contains("only the public key"));
        assert!(refused(&xml_of(&parts, "InverseQ")).contains("no <InverseQ>"));
        let other = RsaSigner::generate().unwrap();
        let foreign = xml_of(&parts, "").replace(
            &B64.encode(&parts[1]),
            &B64.encode(other.public_key().modulus()),
        );
        assert!(!refused(&foreign).is_empty());
        assert!(refused("<RSAKeyValue><Modulus>*</Modulus></RSAKeyValue>").contains("not base64"));
        assert!(refused("hello").contains("neither"));
        assert!(refused(&pem("PUBLIC KEY", b"x")).contains("not a private key"));
        assert!(refused(&pem("ENCRYPTED PRIVATE KEY", b"x")).contains("encrypted"));
        assert!(refused(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----"
        )
        .contains("encrypted"));
        assert!(refused(&pem("RSA PRIVATE KEY", b"not der")).contains("usable"));
    }
}
