//! The signature on Keyturn's outgoing webhooks, written once for the server that signs and for
//! the receivers (a vendor's CRM bridge, written with `keyturn-client` or by hand) that verify.
//!
//! A delivery is an HTTP POST whose body is the event's JSON, with two headers:
//!
//! - [`SIGNATURE_HEADER`]: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, the MAC keyed
//!   with the endpoint's signing secret (the whole `whsec_…` text, as bytes). While a rotated
//!   secret's overlap lasts there is one `v1=` per secret, newest first, so a receiver that still
//!   knows only the old secret keeps verifying;
//! - [`EVENT_ID_HEADER`]: the event's id (also in the body), the same on every attempt, for a
//!   receiver to drop the deliveries it has already handled.
//!
//! The timestamp is part of what is signed, so a receiver that refuses old timestamps
//! ([`DEFAULT_TOLERANCE_SECONDS`]) cannot be fed a captured delivery again later.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header that carries the timestamp and the signatures.
pub const SIGNATURE_HEADER: &str = "Keyturn-Webhook-Signature";
/// The header that carries the event's id.
pub const EVENT_ID_HEADER: &str = "Keyturn-Event-Id";
/// How far a receiver should let a delivery's timestamp be from its own clock.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;
/// How an endpoint's signing secret begins.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a delivery does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is missing or malformed")]
    Malformed,
    #[error("the timestamp is too far from now")]
    Stale,
    #[error("no signature matches the secret")]
    NoMatch,
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body))
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `timestamp`, signed with each of
/// `secrets` (the current one first).
pub fn header(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut out = format!("t={timestamp}");
    for secret in secrets {
        out.push_str(",v1=");
        out.push_str(&signature(secret, timestamp, body));
    }
    out
}

/// Checks a delivery: `header` is the [`SIGNATURE_HEADER`] value, `body` the exact bytes
/// received, `now` the receiver's Unix time. Any `v1=` made with `secret` verifies; the
/// comparison is constant-time.
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &str,
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if candidates.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance_seconds.unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    let expected = mac(secret, timestamp, body);
    if candidates
        .iter()
        .any(|c| bool::from(c.as_slice().ct_eq(&expected)))
    {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_with_either_secret_during_an_overlap() {
        let body = br#"{"id":"evt_1","type":"license.created"}"#;
        let h = header(&["whsec_new", "whsec_old"], 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.matches("v1=").count(), 2);
        assert_eq!(verify(&h, body, "whsec_new", 1_700_000_010, 300), Ok(()));
        assert_eq!(verify(&h, body, "whsec_old", 1_700_000_010, 300), Ok(()));
        assert_eq!(
            verify(&h, body, "whsec_other", 1_700_000_010, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&h, b"{}", "whsec_new", 1_700_000_010, 300),
            Err(VerifyError::NoMatch),
            "another body"
        );
        assert_eq!(
            verify(&h, body, "whsec_new", 1_700_000_301, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify("v1=00", body, "whsec_new", 0, 300),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify("t=5", body, "whsec_new", 5, 300),
            Err(VerifyError::Malformed)
        );
    }

    /// The MAC is the one the README's snippets compute: HMAC-SHA256 over "t.body", keyed with
    /// the whole secret text.
    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // printf '%s' '1.{}' | openssl dgst -sha256 -hmac 'whsec_x'
        assert_eq!(
            signature("whsec_x", 1, b"{}"),
            "36ee2f7498f0c1777d1312b2a7361947fe5ad31223be30d0c62421f4ca753401"
        );
    }

    /// The README's Rust snippet, as printed there: it accepts what the server signs.
    #[test]
    fn the_readme_snippet_verifies_a_delivery() {
        // The same code in both places, whitespace aside.
        let function = |text: &str| {
            let start = text
                .find("fn verify(header: &str, body: &[u8], secret: &str, now: i64) -> bool {")
                .expect("the snippet");
            let end = start + text[start..].find("// constant-time").expect("its end");
            let end = end + text[end..].find('}').expect("its last brace");
            text[start..=end]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
        };
        assert_eq!(
            function(include_str!("../../../README.md")),
            function(
                include_str!("webhook.rs")
                    .rsplit("// The snippet, verbatim")
                    .next()
                    .unwrap_or("")
            ),
            "the README's snippet and this test's differ"
        );
        use hmac::{Hmac, Mac};
        use sha2::Sha256;
        // The snippet, verbatim from the README.
        fn verify(header: &str, body: &[u8], secret: &str, now: i64) -> bool {
            let fields: Vec<(&str, &str)> = header
                .split(',')
                .filter_map(|p| p.split_once('='))
                .collect();
            let t = fields
                .iter()
                .find(|(k, _)| *k == "t")
                .and_then(|(_, t)| t.parse::<i64>().ok());
            let Some(t) = t.filter(|t| now.abs_diff(*t) <= 300) else {
                return false;
            };
            let mut mac =
                Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
            mac.update(format!("{t}.").as_bytes());
            mac.update(body);
            fields
                .iter()
                .filter(|(k, _)| *k == "v1")
                .filter_map(|(_, v)| hex::decode(v).ok())
                .any(|sig| mac.clone().verify_slice(&sig).is_ok()) // constant-time
        }
        let body = br#"{"id":"evt_1"}"#;
        let h = header(&["whsec_new", "whsec_old"], 1_700_000_000, body);
        assert!(verify(&h, body, "whsec_old", 1_700_000_100));
        assert!(verify(&h, body, "whsec_new", 1_700_000_100));
        assert!(!verify(&h, body, "whsec_other", 1_700_000_100));
        assert!(!verify(&h, b"{}", "whsec_new", 1_700_000_100));
        assert!(!verify(&h, body, "whsec_new", 1_700_001_000));
    }
}
