//! Client for programs licensed with Keyturn.
//!
//! Every reply that says something about a license is signed by the server with the product's
//! Ed25519 key; this client verifies that signature, and that the reply answers this very request
//! (a random nonce is sent and must come back), before it believes the reply.
//!
//! ```no_run
//! # async fn run() -> Result<(), keyturn_client::Error> {
//! let client = keyturn_client::Client::new("http://127.0.0.1:8080", 1, "BASE64-PUBLIC-KEY")?;
//! let activation = client.activate("ABCDE-FGHIJ-KLMNO-PQRST", "machine-1", None).await?;
//! let validation = client.validate("ABCDE-FGHIJ-KLMNO-PQRST", Some("machine-1"), &["pro"]).await?;
//! assert!(validation.valid);
//! # Ok(()) }
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The header that carries the signature of a reply's body.
pub const SIGNATURE_HEADER: &str = "keyturn-signature";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the license server: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the public key is not a base64 Ed25519 key")]
    BadPublicKey,
    #[error("the reply is not signed")]
    Unsigned,
    #[error("the reply's signature does not verify; it did not come from the license server")]
    BadSignature,
    #[error("the reply does not answer this request (nonce mismatch)")]
    Replayed,
    #[error("the reply is not what the server sends: {0}")]
    Malformed(String),
    /// The server refused, with its error code (e.g. `TOO_MANY_MACHINES`).
    #[error("the server refused ({status}): {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

/// A license as the server describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct License {
    pub id: i64,
    pub key: String,
    pub product_id: i64,
    pub expires: Option<String>,
    pub features: Vec<String>,
    pub max_machines: i64,
    pub blocked: bool,
    pub trial: bool,
    pub metadata: serde_json::Value,
}

/// The server's verdict on a key.
#[derive(Debug, Clone, Deserialize)]
pub struct Validation {
    pub valid: bool,
    /// One of VALID, NOT_FOUND, BLOCKED, EXPIRED, NOT_ACTIVATED, TOO_MANY_MACHINES,
    /// FEATURE_MISSING, WRONG_PRODUCT.
    pub code: String,
    pub detail: String,
    pub license: Option<License>,
    pub time: String,
    nonce: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Machine {
    pub id: i64,
    pub fingerprint: String,
    pub name: Option<String>,
    pub lease_expires: Option<String>,
}

/// A successful activation (or renewal of an existing one).
#[derive(Debug, Clone, Deserialize)]
pub struct Activation {
    /// `false` when this machine was already activated.
    pub created: bool,
    pub activation: Machine,
    pub license: License,
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    product_id: i64,
    public_key: VerifyingKey,
}

impl Client {
    /// `public_key` is the base64 key from `GET /v1/products/{id}/public-key`; embed it in the
    /// program rather than fetching it, or a forged server could hand out its own.
    pub fn new(server_url: &str, product_id: i64, public_key: &str) -> Result<Self, Error> {
        let bytes = B64
            .decode(public_key.trim())
            .map_err(|_| Error::BadPublicKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| Error::BadPublicKey)?;
        let public_key = VerifyingKey::from_bytes(&bytes).map_err(|_| Error::BadPublicKey)?;
        Ok(Self {
            http: reqwest::Client::new(),
            base: server_url.trim_end_matches('/').to_owned(),
            product_id,
            public_key,
        })
    }

    /// Checks that `signature` (base64) signs exactly `body` with the product's key.
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Ok(bytes) = B64.decode(signature.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.public_key.verify(body, &signature).is_ok()
    }

    pub async fn validate(
        &self,
        key: &str,
        fingerprint: Option<&str>,
        features: &[&str],
    ) -> Result<Validation, Error> {
        let nonce = new_nonce();
        let body = serde_json::json!({
            "key": key,
            "fingerprint": fingerprint,
            "features": features,
            "product_id": self.product_id,
            "nonce": nonce,
        });
        let reply: Validation = self.signed_post("/v1/validate", &body).await?;
        check_nonce(reply.nonce.as_deref(), &nonce)?;
        Ok(reply)
    }

    pub async fn activate(
        &self,
        key: &str,
        fingerprint: &str,
        name: Option<&str>,
    ) -> Result<Activation, Error> {
        let nonce = new_nonce();
        let body = serde_json::json!({
            "key": key,
            "fingerprint": fingerprint,
            "name": name,
            "product_id": self.product_id,
            "nonce": nonce,
        });
        let reply: Activation = self.signed_post("/v1/activations", &body).await?;
        check_nonce(reply.nonce.as_deref(), &nonce)?;
        Ok(reply)
    }

    /// Frees this machine's seat.
    pub async fn deactivate(&self, key: &str, fingerprint: &str) -> Result<(), Error> {
        let body = serde_json::json!({
            "key": key,
            "fingerprint": fingerprint,
            "product_id": self.product_id,
        });
        let response = self
            .http
            .post(format!("{}/v1/activations/deactivate", self.base))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(refusal(status.as_u16(), &bytes));
        }
        Ok(())
    }

    async fn signed_post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let signature = response
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(refusal(status.as_u16(), &bytes));
        }
        let signature = signature.ok_or(Error::Unsigned)?;
        if !self.verify(&bytes, &signature) {
            return Err(Error::BadSignature);
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Malformed(e.to_string()))
    }
}

fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64.encode(bytes)
}

fn check_nonce(got: Option<&str>, sent: &str) -> Result<(), Error> {
    if got == Some(sent) {
        Ok(())
    } else {
        Err(Error::Replayed)
    }
}

fn refusal(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => Error::Refused {
            status,
            code: e.error.code,
            message: e.error.message,
        },
        Err(_) => Error::Malformed(format!("status {status} without an error body")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn verification_accepts_only_the_signed_body() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let public = B64.encode(signing.verifying_key().to_bytes());
        let client = Client::new("http://127.0.0.1:1", 1, &public).unwrap();
        let body = br#"{"valid":true}"#;
        let sig = B64.encode(signing.sign(body).to_bytes());
        assert!(client.verify(body, &sig));
        assert!(!client.verify(br#"{"valid":fals}"#, &sig));
        assert!(!client.verify(body, "AAAA"));
    }

    #[test]
    fn bad_public_keys_are_refused() {
        assert!(matches!(
            Client::new("http://x", 1, "not-base64"),
            Err(Error::BadPublicKey)
        ));
        assert!(matches!(
            Client::new("http://x", 1, &B64.encode([1u8; 5])),
            Err(Error::BadPublicKey)
        ));
    }

    #[test]
    fn nonces_must_match() {
        assert!(check_nonce(Some("a"), "a").is_ok());
        assert!(matches!(check_nonce(Some("b"), "a"), Err(Error::Replayed)));
        assert!(matches!(check_nonce(None, "a"), Err(Error::Replayed)));
    }
}
