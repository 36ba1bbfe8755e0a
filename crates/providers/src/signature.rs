//! The two HMAC-SHA256 schemes providers sign webhooks with, written once: a MAC of the raw body
//! in a header (Lemon Squeezy, FastSpring), and a MAC of a timestamp joined to the body, with
//! the timestamp and any number of signatures in one header (Stripe, Paddle). Every comparison
//! is constant-time and any configured secret may match (several during a rotation).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{ProviderError, Verified};

/// Why a signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Missing,
    Malformed,
    Stale,
    NoMatch,
}

pub(crate) fn hmac_sha256(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Whether any candidate equals the MAC of `parts` under any of `secrets`, in constant time.
fn matches(secrets: &[String], parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
    secrets.iter().any(|s| {
        let expected = hmac_sha256(s, parts);
        candidates
            .iter()
            .any(|c| bool::from(c.as_slice().ct_eq(&expected)))
    })
}

/// A store's body whose `header` holds the MAC of the raw body under one of `secrets`, in the
/// encoding `decode` reads; verified at `now`.
pub(crate) fn body_signed<'a>(
    header: Option<&str>,
    body: &'a [u8],
    secrets: &[String],
    now: DateTime<Utc>,
    decode: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Verified<'a>, ProviderError> {
    if secrets.is_empty() {
        return Err(not_configured());
    }
    let candidate = decode(header.ok_or(Failure::Missing)?.trim()).ok_or(Failure::NoMatch)?;
    if matches(secrets, &[body], &[candidate]) {
        Ok(Verified::new(body, now))
    } else {
        Err(Failure::NoMatch.into())
    }
}

/// `<t>=<unix><separator><v>=<hex>[<separator><v>=<hex>…]`, each `v` the hex MAC of
/// `"<unix><joiner><raw body>"`; other keys (Stripe's `v0`) and parts are ignored.
pub(crate) struct Timestamped {
    pub separator: char,
    pub timestamp: &'static str,
    pub signature: &'static str,
    pub joiner: &'static [u8],
}

impl Timestamped {
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        secrets: &[String],
        tolerance: Duration,
        now: i64,
    ) -> Result<(), Failure> {
        let header = header.ok_or(Failure::Missing)?;
        let mut timestamp = None;
        let mut candidates = Vec::new();
        for part in header.split(self.separator) {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            if key == self.timestamp {
                timestamp = Some(value);
            } else if key == self.signature {
                candidates.push(hex::decode(value).map_err(|_| Failure::Malformed)?);
            }
        }
        let timestamp = timestamp.ok_or(Failure::Malformed)?;
        let t: i64 = timestamp.parse().map_err(|_| Failure::Malformed)?;
        if candidates.is_empty() {
            return Err(Failure::NoMatch);
        }
        if now.abs_diff(t) > tolerance.as_secs() {
            return Err(Failure::Stale);
        }
        if matches(
            secrets,
            &[timestamp.as_bytes(), self.joiner, body],
            &candidates,
        ) {
            Ok(())
        } else {
            Err(Failure::NoMatch)
        }
    }

    /// The header for `body` at time `t`, as the provider makes it (for tests and tools).
    pub fn sign(&self, secret: &str, t: i64, body: &[u8]) -> String {
        let ts = t.to_string();
        let mac = hmac_sha256(secret, &[ts.as_bytes(), self.joiner, body]);
        format!(
            "{}={ts}{}{}={}",
            self.timestamp,
            self.separator,
            self.signature,
            hex::encode(mac)
        )
    }
}

/// The stores' wording of a failure.
impl From<Failure> for ProviderError {
    fn from(f: Failure) -> Self {
        ProviderError::BadSignature(
            match f {
                Failure::Missing => "the signature is missing",
                Failure::Malformed | Failure::NoMatch => "the signature does not verify",
                Failure::Stale => "the signature's timestamp is outside the tolerance",
            }
            .into(),
        )
    }
}

/// A store without a webhook secret on this server.
pub(crate) fn not_configured() -> ProviderError {
    ProviderError::NotConfigured("this store's webhooks are not configured".into())
}

/// A body that is not `store`'s notification.
pub(crate) fn unparsable(store: &str, message: impl std::fmt::Display) -> ProviderError {
    ProviderError::Malformed(format!("the body is not a {store} notification: {message}"))
}
