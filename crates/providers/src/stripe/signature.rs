use std::time::Duration;

use crate::signature::{Failure, Timestamped};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the event's timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches a configured secret")]
    NoMatch,
    #[error("no webhook secret is configured")]
    NoSecret,
}

const SCHEME: Timestamped = Timestamped {
    separator: ',',
    timestamp: "t",
    signature: "v1",
    joiner: b".",
};

/// Checks a `Stripe-Signature` header against the raw body with any of `secrets`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    tolerance: Duration,
    now: i64,
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    SCHEME
        .verify(header, body, secrets, tolerance, now)
        .map_err(|f| match f {
            Failure::Missing => SignatureError::Missing,
            Failure::Malformed => SignatureError::Malformed,
            Failure::Stale => SignatureError::Stale,
            Failure::NoMatch => SignatureError::NoMatch,
        })
}

/// A `Stripe-Signature` header for `body` at time `t`, as Stripe makes it (for tests and tools).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    SCHEME.sign(secret, t, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1"}"#;
    const TOL: Duration = Duration::from_secs(300);

    fn secrets() -> Vec<String> {
        vec!["whsec_old".into(), "whsec_new".into()]
    }

    #[test]
    fn a_signature_with_any_configured_secret_verifies() {
        let header = sign("whsec_new", 1000, BODY);
        assert_eq!(verify(Some(&header), BODY, &secrets(), TOL, 1000), Ok(()));
    }

    #[test]
    fn any_v1_of_several_may_match() {
        let good = sign("whsec_old", 1000, BODY);
        let v1 = good.split("v1=").nth(1).unwrap();
        let header = format!("t=1000,v1={},v1={v1},v0=abcd", "00".repeat(32));
        assert_eq!(verify(Some(&header), BODY, &secrets(), TOL, 1000), Ok(()));
    }

    #[test]
    fn tampering_wrong_secrets_and_v0_are_refused() {
        let header = sign("whsec_other", 1000, BODY);
        assert_eq!(
            verify(Some(&header), BODY, &secrets(), TOL, 1000),
            Err(SignatureError::NoMatch)
        );
        let header = sign("whsec_new", 1000, BODY);
        assert_eq!(
            verify(Some(&header), br#"{"id":"evt_2"}"#, &secrets(), TOL, 1000),
            Err(SignatureError::NoMatch)
        );
        let v0_only = header.replace("v1=", "v0=");
        assert_eq!(
            verify(Some(&v0_only), BODY, &secrets(), TOL, 1000),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let header = sign("whsec_new", 1000, BODY);
        assert_eq!(
            verify(Some(&header), BODY, &secrets(), TOL, 1301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&header), BODY, &secrets(), TOL, 699),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(Some(&header), BODY, &secrets(), TOL, 1300), Ok(()));
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        assert_eq!(
            verify(None, BODY, &secrets(), TOL, 1),
            Err(SignatureError::Missing)
        );
        for bad in ["", "garbage", "t=abc,v1=00", "v1=00", "t=1,v1=zz"] {
            assert_eq!(
                verify(Some(bad), BODY, &secrets(), TOL, 1),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify(Some("t=1"), BODY, &secrets(), TOL, 1),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some("t=1,v1=00"), BODY, &[], TOL, 1),
            Err(SignatureError::NoSecret)
        );
    }
}
