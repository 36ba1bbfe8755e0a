//! Access tokens. The server keeps only a SHA-256 hash: the tokens carry 256 random bits, so a
//! fast hash is as safe as a slow one and keeps authentication cheap.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "kt_";
const CUSTOMER_PREFIX: &str = "kc_";
const SESSION_PREFIX: &str = "ks_";

/// A token as handed to its holder, once.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(…)")
    }
}

impl TokenSecret {
    pub fn generate() -> Self {
        Self::generate_with(PREFIX)
    }

    /// A customer's secret (Cryptolens's customer secret, with which a program lists that
    /// customer's licenses): as strong as a token, and told apart from one by its prefix.
    pub fn generate_customer_secret() -> Self {
        Self::generate_with(CUSTOMER_PREFIX)
    }

    /// An admin console session's cookie value: as strong as a token, told apart by its prefix.
    pub fn generate_session() -> Self {
        Self::generate_with(SESSION_PREFIX)
    }

    /// An outgoing webhook endpoint's signing secret (`whsec_…`): the server keeps it (sealed
    /// when a master key is set) since it signs with it, and shows it once.
    pub fn generate_webhook_secret() -> Self {
        Self::generate_with(keyturn_protocol::webhook::SECRET_PREFIX)
    }

    fn generate_with(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(format!("{prefix}{}", B64URL.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

/// The stored form of a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// Hash of whatever a client presented; an unknown string simply matches no stored token.
    pub fn of(presented: &str) -> Self {
        Self(hex::encode(Sha256::digest(presented.trim().as_bytes())))
    }

    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_stably() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("kt_"));
        assert_eq!(a.hash(), TokenHash::of(a.expose()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().as_str().len(), 64);
        assert!(!format!("{a:?}").contains(&a.expose()[3..]));
        let c = TokenSecret::generate_customer_secret();
        assert!(c.expose().starts_with("kc_"));
        assert_eq!(c.expose().len(), a.expose().len());
    }
}

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AccessToken {
    pub id: i64,
    pub name: String,
    pub permissions: Vec<crate::Permission>,
    /// When set, the token sees and changes only this product and what belongs to it.
    pub product_id: Option<i64>,
    /// Cryptolens key lock: the one license (by id) the token may touch; `-1` means the caller
    /// must name a key on every call (and may mint key-locked tokens with `auth/KeyLock`).
    #[serde(default)]
    pub key_lock: Option<i64>,
    /// Cryptolens feature lock, as the license fields Activate and GetKey hide from this
    /// token's callers (`FieldsToReturn` bits; 0 hides nothing).
    #[serde(default)]
    pub feature_lock: i64,
    pub expires: Option<chrono::DateTime<chrono::Utc>>,
    pub created: chrono::DateTime<chrono::Utc>,
    pub revoked: Option<chrono::DateTime<chrono::Utc>>,
}

/// An unguessable identifier for public URLs (payment forms): 128 random bits, lower-case
/// base32 without padding.
pub fn public_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(26);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}
