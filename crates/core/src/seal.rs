//! Private signing keys at rest, sealed with a key-encryption key (the master key) that lives
//! outside the database: whoever copies the database (a backup, a replica, a stolen disk) gets
//! no key that signs licenses unless they also have the master key.
//!
//! The master key is 32 random bytes, given as base64 or hex. It is never used directly: the
//! sealing key is derived from it with HKDF-SHA256 under a label naming this use and version, so
//! the same master key could serve another purpose without the two ever sharing a key. Each key
//! is sealed with XChaCha20-Poly1305 under a fresh random 24-byte nonce (random nonces of that
//! size never repeat in practice), and the place it is stored for (product and algorithm) is
//! authenticated with it, so a sealed key moved to another product's row no longer opens.
//!
//! Stored form: `sealed:v1:<base64 of nonce ‖ ciphertext ‖ tag>`. Anything else is a key stored
//! in plain text, as before sealing existed.

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;

use crate::DomainError;

const PREFIX: &str = "sealed:v1:";
const LABEL: &[u8] = b"keyturn signing-key seal v1";
const NONCE: usize = 24;

/// The key-encryption key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

/// Why a stored key could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key is sealed and no master key was given.
    #[error("the key is sealed and no master key is configured")]
    NoMasterKey,
    /// The master key is not the one the key was sealed with (or the stored text was altered).
    #[error("the master key does not open the key (it was sealed with another one, or altered)")]
    WrongKey,
    #[error("the sealed key is malformed")]
    Malformed,
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads a master key: exactly 32 bytes as base64 (standard or URL-safe, padded or not) or
    /// as 64 hex digits. A passphrase is refused: the key must be random.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let text = text.trim();
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            B64.decode(text)
                .ok()
                .or_else(|| B64URL.decode(text.trim_end_matches('=')).ok())
        };
        let bytes: [u8; 32] = decoded
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| {
                DomainError::new(
                    "master_key",
                    "must be 32 random bytes as base64 or hex (make one with `keyturn keys new-master-key`)",
                )
            })?;
        Ok(Self(bytes))
    }

    /// The key as `parse` reads it (base64).
    pub fn to_text(&self) -> String {
        B64.encode(self.0)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &self.0)
            .expand(LABEL, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        XChaCha20Poly1305::new(&key.into())
    }

    /// Seals `plain` for the place `context` names (e.g. `product 3 ed25519`).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("sealing a short key cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    fn open_sealed(&self, body: &str, context: &str) -> Result<String, SealError> {
        let bytes = B64.decode(body).map_err(|_| SealError::Malformed)?;
        if bytes.len() <= NONCE {
            return Err(SealError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE);
        let plain = self
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SealError::Malformed)
    }
}

/// Whether a stored key is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The plain key from its stored form: opened with `master` when sealed, as stored otherwise.
pub fn open(stored: &str, master: Option<&MasterKey>, context: &str) -> Result<String, SealError> {
    match stored.strip_prefix(PREFIX) {
        None => Ok(stored.to_owned()),
        Some(body) => master
            .ok_or(SealError::NoMasterKey)?
            .open_sealed(body, context),
    }
}

/// The stored form of a plain key: sealed with `master` when there is one.
pub fn store(plain: &str, master: Option<&MasterKey>, context: &str) -> String {
    match master {
        Some(master) => master.seal(plain, context),
        None => plain.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_master_key_and_place() {
        let master = MasterKey::generate();
        let sealed = master.seal("secret seed", "product 1 ed25519");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("secret"));
        assert_eq!(
            open(&sealed, Some(&master), "product 1 ed25519").unwrap(),
            "secret seed"
        );
        assert_eq!(
            open(&sealed, Some(&MasterKey::generate()), "product 1 ed25519"),
            Err(SealError::WrongKey)
        );
        assert_eq!(
            open(&sealed, Some(&master), "product 2 ed25519"),
            Err(SealError::WrongKey),
            "moved to another product's row, it does not open"
        );
        assert_eq!(
            open(&sealed, None, "product 1 ed25519"),
            Err(SealError::NoMasterKey)
        );
        assert_ne!(
            sealed,
            master.seal("secret seed", "product 1 ed25519"),
            "a fresh nonce each time"
        );
        let mut altered = sealed.clone();
        let at = sealed.len() - 3;
        let flipped = if &sealed[at..at + 1] == "A" { "B" } else { "A" };
        altered.replace_range(at..at + 1, flipped);
        assert!(open(&altered, Some(&master), "product 1 ed25519").is_err());
    }

    #[test]
    fn plain_keys_pass_through() {
        assert_eq!(open("plain", None, "x").unwrap(), "plain");
        assert_eq!(store("plain", None, "x"), "plain");
        assert!(!is_sealed("plain"));
    }

    #[test]
    fn master_keys_are_32_bytes_in_base64_or_hex() {
        let key = MasterKey::generate();
        assert_eq!(MasterKey::parse(&key.to_text()).unwrap(), key);
        assert_eq!(
            MasterKey::parse(&format!("  {}\n", key.to_text())).unwrap(),
            key
        );
        assert_eq!(MasterKey::parse(&hex::encode(key.0)).unwrap(), key);
        assert_eq!(MasterKey::parse(&B64URL.encode(key.0)).unwrap(), key);
        for bad in ["", "correct horse battery staple", &B64.encode([1u8; 16])] {
            let err = MasterKey::parse(bad).unwrap_err();
            assert!(err.message.contains("32 random bytes"), "{err}");
        }
        assert_eq!(format!("{key:?}"), "MasterKey(…)");
    }
}
