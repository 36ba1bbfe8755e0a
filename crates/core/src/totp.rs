//! The console's optional second factor: time-based one-time passwords (RFC 6238) as every
//! authenticator app makes them — HMAC-SHA-1 over the number of 30-second steps since the Unix
//! epoch, six digits.
//!
//! Invariants:
//!
//! * A secret is 160 random bits (the length RFC 4226 recommends); its `Debug` never shows it,
//!   and it leaves this module only as the base32 text or `otpauth://` URI an authenticator
//!   app is given once, at enrolment, and as the stored form the caller seals.
//! * A code is accepted for its own step and one step either side (clocks drift, people type
//!   slowly), and only for a step later than the last step accepted for the same secret
//!   ([`accepted_step`]): a code seen once — over a shoulder, in a replayed request — never
//!   works again, and neither does any older one.
//! * Times are passed in: nothing here reads a clock.

use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::DomainError;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps either side of the current one whose codes are accepted.
const SKEW: i64 = 1;
/// Secret length in bytes.
const SECRET_BYTES: usize = 20;
/// The issuer authenticator apps show next to the account.
pub const ISSUER: &str = "Keyturn";

/// A TOTP secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret as base32 without padding: what authenticator apps take when typed in, and
    /// the form it is stored in (before sealing).
    pub fn to_base32(&self) -> String {
        Secret::Raw(self.0.clone()).to_encoded().to_string()
    }

    /// A secret from its base32 form.
    pub fn from_base32(text: &str) -> Result<Self, DomainError> {
        Secret::Encoded(text.trim().trim_end_matches('=').to_ascii_uppercase())
            .to_bytes()
            .ok()
            .filter(|b| b.len() >= 16)
            .map(Self)
            .ok_or_else(|| {
                DomainError::new("totp_secret", "is not a base32 secret of 128 bits or more")
            })
    }

    fn totp(&self, account: &str) -> Option<TOTP> {
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            0,
            STEP_SECONDS as u64,
            self.0.clone(),
            Some(ISSUER.to_owned()),
            account.replace(':', "_"),
        )
        .ok()
    }

    /// The code for step `step`.
    pub fn code_at_step(&self, step: i64) -> String {
        let time = u64::try_from(step.max(0))
            .unwrap_or(0)
            .saturating_mul(STEP_SECONDS as u64);
        self.totp("").map(|t| t.generate(time)).unwrap_or_default()
    }

    /// The code an authenticator shows at `at`.
    pub fn code_at(&self, at: DateTime<Utc>) -> String {
        self.code_at_step(step_of(at))
    }

    /// The `otpauth://totp/…` URI that enrols this secret for `account` (shown as text and as
    /// a QR code).
    pub fn otpauth_uri(&self, account: &str) -> String {
        self.totp(account).map(|t| t.get_url()).unwrap_or_default()
    }
}

/// The step `at` falls in (0 before the epoch).
pub fn step_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().max(0) / STEP_SECONDS
}

/// What a typed code looks like once spaces are gone: exactly [`DIGITS`] digits.
pub fn normalize_code(typed: &str) -> Option<String> {
    let code: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// The step a code typed at `at` belongs to, if it is right for a step within the skew that is
/// later than `last_step` (the step of the last code accepted for this secret). The caller
/// stores the returned step as the new last one, in the same transaction.
pub fn accepted_step(
    secret: &TotpSecret,
    typed: &str,
    at: DateTime<Utc>,
    last_step: Option<i64>,
) -> Option<i64> {
    let code = normalize_code(typed)?;
    let now = step_of(at);
    // Every candidate is computed and compared, so the time taken says nothing about which.
    let mut found = None;
    for step in (now - SKEW)..=(now + SKEW) {
        let right = bool::from(secret.code_at_step(step).as_bytes().ct_eq(code.as_bytes()));
        if right && found.is_none() && last_step.is_none_or(|last| step > last) {
            found = Some(step);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// RFC 6238, appendix B: the SHA-1 secret is the ASCII of "12345678901234567890"; the
    /// eight-digit codes there end in the six digits checked here.
    #[test]
    fn codes_are_rfc_6238s() {
        let secret = TotpSecret(b"12345678901234567890".to_vec());
        for (unix, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let at = Utc.timestamp_opt(unix, 0).unwrap();
            assert_eq!(secret.code_at(at), code, "at {unix}");
        }
    }

    #[test]
    fn a_code_counts_once_and_only_near_its_time() {
        let secret = TotpSecret::generate();
        let at = Utc.with_ymd_and_hms(2031, 3, 1, 12, 0, 10).unwrap();
        let code = secret.code_at(at);
        let step = accepted_step(&secret, &code, at, None).expect("the current code");
        assert_eq!(step, step_of(at));
        assert_eq!(
            accepted_step(&secret, &code, at, Some(step)),
            None,
            "never twice"
        );
        // Typed a little late, or on a clock a little ahead: still the same step.
        let late = at + chrono::Duration::seconds(30);
        assert_eq!(accepted_step(&secret, &code, late, None), Some(step));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(accepted_step(&secret, &spaced, at, None), Some(step));
        // Too late, a wrong code, and a code older than the last one accepted.
        let stale = at + chrono::Duration::seconds(90);
        assert_eq!(accepted_step(&secret, &code, stale, None), None);
        let wrong = if code == "000000" { "000001" } else { "000000" };
        assert_eq!(accepted_step(&secret, wrong, at, None), None);
        let next = secret.code_at(late);
        assert_eq!(accepted_step(&secret, &code, late, Some(step + 1)), None);
        assert_eq!(
            accepted_step(&secret, &next, late, Some(step)),
            Some(step + 1)
        );
        for bad in ["", "12345", "1234567", "abcdef", "12345x"] {
            assert_eq!(accepted_step(&secret, bad, at, None), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_round_trip_through_base32_and_enrol_by_uri() {
        let secret = TotpSecret::generate();
        let text = secret.to_base32();
        assert_eq!(text.len(), 32);
        assert_eq!(TotpSecret::from_base32(&text).unwrap(), secret);
        assert_eq!(
            TotpSecret::from_base32(&text.to_lowercase()).unwrap(),
            secret
        );
        assert!(TotpSecret::from_base32("AAAA").is_err(), "too short");
        assert!(TotpSecret::from_base32("not base32!").is_err());
        assert_eq!(
            TotpSecret(b"foobarfoobarfoobar".to_vec()).to_base32(),
            "MZXW6YTBOJTG633CMFZGM33PMJQXE"
        );
        let uri = secret.otpauth_uri("ann@example.com");
        assert!(
            uri.starts_with("otpauth://totp/Keyturn:ann%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={text}")), "{uri}");
        assert!(uri.contains("issuer=Keyturn"), "{uri}");
        assert!(!format!("{secret:?}").contains(&text));
    }
}
