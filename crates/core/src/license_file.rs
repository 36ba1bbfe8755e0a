//! Issuing offline license files: a license's terms, signed with the product's Ed25519 key and
//! optionally encrypted for one machine. The format — framing, envelope, what the signature
//! covers, how a sealed file's content key is wrapped — is `keyturn_protocol::license_file`,
//! shared with the client that reads the files.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use keyturn_protocol::fingerprint;
use keyturn_protocol::license_file::{
    frame, seal, signed_message, slot_key, Envelope, Slot, Terms, FORMAT, PLAIN, SEALED,
};
use rand::rngs::OsRng;
use rand::RngCore;

use crate::{DomainError, Fingerprint, License, ProductSigner};

/// The longest time a license file may be valid for.
pub const MAX_TTL_DAYS: i64 = 3650;

/// How a file should be issued.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// The machine to bind the file to; `None` for a file any machine may use.
    pub fingerprint: Option<Fingerprint>,
    /// Days the file stays valid from its issue.
    pub ttl_days: i64,
    /// Seal the terms so that only the bound machine can read them.
    pub encrypt: bool,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Checks the requested validity period.
pub fn check_ttl_days(days: i64) -> Result<(), DomainError> {
    if (1..=MAX_TTL_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(DomainError::new(
            "ttl_days",
            format!("must be between 1 and {MAX_TTL_DAYS}"),
        ))
    }
}

/// The terms a file issued now for `license` grants.
pub fn terms(license: &License, options: &FileOptions, issued: DateTime<Utc>) -> Terms {
    Terms {
        format: FORMAT.to_owned(),
        license: keyturn_protocol::License {
            id: license.id,
            key: license.key.clone(),
            product_id: license.product_id,
            expires: license.expires,
            features: license.features.clone(),
            max_machines: license.max_machines,
            blocked: license.blocked,
            trial: license.trial,
            metadata: license.metadata.clone(),
        },
        fingerprint: options.fingerprint.as_ref().map(|f| f.as_str().to_owned()),
        issued,
        valid_until: crate::dates::later_by_days(issued, options.ttl_days),
    }
}

/// Renders signed (and, when asked, encrypted) terms as the text of a license file.
pub fn render(terms: &Terms, signer: &ProductSigner, encrypt: bool) -> Result<String, DomainError> {
    let plain = serde_json::to_vec(terms).expect("terms always serialise");
    let envelope = if encrypt {
        let bound = terms.fingerprint.as_deref().ok_or_else(|| {
            DomainError::new(
                "encrypt",
                "an encrypted file is bound to a machine: give its fingerprint",
            )
        })?;
        let content_key = random::<32>();
        let (nonce, payload) = seal(&content_key, random(), FORMAT.as_bytes(), &plain);
        // Only strong components open the file when there are any: the host name alone must
        // not be enough to read another machine's file.
        let components = fingerprint::components(bound);
        let strong = components
            .iter()
            .any(|(name, _)| fingerprint::is_strong(name));
        let slots = components
            .iter()
            .filter(|(name, _)| !strong || fingerprint::is_strong(name))
            .map(|(name, value)| {
                let (nonce, key) = seal(
                    &slot_key(&terms.license.key, name, value),
                    random(),
                    name.as_bytes(),
                    &content_key,
                );
                Slot {
                    component: (*name).to_owned(),
                    nonce,
                    key,
                }
            })
            .collect();
        Envelope {
            encryption: SEALED.to_owned(),
            nonce: Some(nonce),
            slots,
            payload,
        }
    } else {
        Envelope {
            encryption: PLAIN.to_owned(),
            nonce: None,
            slots: Vec::new(),
            payload: B64.encode(&plain),
        }
    };
    let envelope = serde_json::to_vec(&envelope).expect("envelopes always serialise");
    let signature = signer.sign(&signed_message(&envelope));
    Ok(frame(&signature, &envelope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::fixtures::license;
    use chrono::Duration;
    use keyturn_protocol::license_file::{open_envelope, unframe, FileError};

    #[test]
    fn plain_files_are_signed_terms() {
        let now = Utc::now();
        let signer = ProductSigner::generate();
        let options = FileOptions {
            fingerprint: None,
            ttl_days: 10,
            encrypt: false,
        };
        let t = terms(&license(now), &options, now);
        assert_eq!(t.valid_until, now + Duration::days(10));
        let text = render(&t, &signer, false).unwrap();
        assert!(text.starts_with("-----BEGIN LICENSE FILE-----\nFormat: keyturn-license-file/1\n"));
        assert!(text.ends_with("-----END LICENSE FILE-----\n"));
        assert!(text.lines().all(|l| l.len() <= 100));
        let (signature, envelope) = unframe(&text).unwrap();
        assert!(signer
            .public_key()
            .verify(&signed_message(&envelope), &signature));
        assert!(!signer.public_key().verify(&envelope, &signature));
        let parsed: Envelope = serde_json::from_slice(&envelope).unwrap();
        assert_eq!(parsed.encryption, PLAIN);
        let plain = open_envelope(&envelope, "any key", &[]).unwrap();
        let back: Terms = serde_json::from_slice(&plain).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn encrypted_files_need_a_machine_and_open_with_any_strong_component() {
        let now = Utc::now();
        let signer = ProductSigner::generate();
        let mut options = FileOptions {
            fingerprint: None,
            ttl_days: 10,
            encrypt: true,
        };
        let lic = license(now);
        assert!(render(&terms(&lic, &options, now), &signer, true).is_err());
        let fp = "ktfp1:mid=aaaa;mac=bbbb;hst=cccc";
        options.fingerprint = Some(Fingerprint::parse(fp).unwrap());
        let text = render(&terms(&lic, &options, now), &signer, true).unwrap();
        let (_, envelope) = unframe(&text).unwrap();
        let parsed: Envelope = serde_json::from_slice(&envelope).unwrap();
        assert_eq!(parsed.encryption, SEALED);
        let names: Vec<&str> = parsed.slots.iter().map(|s| s.component.as_str()).collect();
        assert_eq!(names, ["mid", "mac"], "the host name alone opens nothing");
        let plain = open_envelope(&envelope, &lic.key, &[("mac", "bbbb"), ("mid", "zzzz")])
            .expect("the right machine with one changed component");
        let back: Terms = serde_json::from_slice(&plain).unwrap();
        assert_eq!(back.fingerprint.as_deref(), Some(fp));
        for (key, machine) in [
            (lic.key.as_str(), [("mac", "ffff"), ("hst", "cccc")]),
            ("OTHER-KEY", [("mac", "bbbb"), ("mid", "aaaa")]),
        ] {
            assert_eq!(
                open_envelope(&envelope, key, &machine),
                Err(FileError::WrongMachine)
            );
        }
    }

    #[test]
    fn validity_periods_are_bounded() {
        assert!(check_ttl_days(0).is_err());
        assert!(check_ttl_days(MAX_TTL_DAYS + 1).is_err());
        assert!(check_ttl_days(30).is_ok());
    }
}
