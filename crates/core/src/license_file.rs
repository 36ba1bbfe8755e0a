//! Offline license files: a license's terms, signed with the product's Ed25519 key and optionally
//! encrypted for one machine, as text a program verifies with no network.
//!
//! ```text
//! -----BEGIN LICENSE FILE-----
//! Format: keyturn-license-file/1
//! Signature: <base64 Ed25519 signature>
//!
//! <base64 of the envelope JSON, 64 characters a line>
//! -----END LICENSE FILE-----
//! ```
//!
//! The signature covers `keyturn-license-file/1\n` followed by the exact envelope bytes, so a
//! file cannot be confused with a signed API reply. The envelope is
//! `{"encryption":"none","payload":"<base64 terms JSON>"}` or, when encrypted,
//! `{"encryption":"chacha20poly1305","nonce":…,"slots":[{"component":…,"nonce":…,"key":…}],"payload":"<base64 ciphertext>"}`.
//!
//! An encrypted file's terms are sealed with ChaCha20-Poly1305 under a random content key. That
//! key is wrapped once per identifying component of the machine's fingerprint, each time under a
//! key derived with HKDF-SHA256 from the license key and that component; so the machine the file
//! was issued for opens it even after one of its components changed, and no other machine does.
//! The verifying side lives in `keyturn-client`, which must not depend on this crate.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::names::{fingerprint_components, STRONG_COMPONENTS};
use crate::{DomainError, Fingerprint, License, ProductSigner};

/// The first line of a license file.
pub const BEGIN: &str = "-----BEGIN LICENSE FILE-----";
/// The last line of a license file.
pub const END: &str = "-----END LICENSE FILE-----";
/// The format name: the `Format:` header, the signature's domain separator and the HKDF salt.
pub const FORMAT: &str = "keyturn-license-file/1";
/// The longest time a license file may be valid for.
pub const MAX_TTL_DAYS: i64 = 3650;

/// The license as a file states it: what a program may check offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileLicense {
    /// The license's id.
    pub id: i64,
    /// The license key.
    pub key: String,
    /// The product the license is for.
    pub product_id: i64,
    /// When the license ends; `None` for a perpetual license.
    pub expires: Option<DateTime<Utc>>,
    /// The features the license grants.
    pub features: Vec<String>,
    /// How many machines may use the license; 0 means unlimited.
    pub max_machines: i64,
    /// Whether the license was blocked when the file was issued (files are not issued for
    /// blocked licenses, so this is `false` in practice).
    pub blocked: bool,
    /// Whether this is a trial license.
    pub trial: bool,
    /// The vendor's data about the license that its product makes public
    /// (`public_metadata`).
    pub metadata: serde_json::Value,
}

/// What a license file grants, and to which machine, for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseFileTerms {
    /// Always [`FORMAT`].
    pub format: String,
    /// The license, as it stands when the file is issued.
    pub license: FileLicense,
    /// The machine the file is bound to; `None` for a file any machine may use.
    pub fingerprint: Option<String>,
    /// When the server issued the file.
    pub issued: DateTime<Utc>,
    /// The file is refused from this instant on, whatever the license's own expiry.
    pub valid_until: DateTime<Utc>,
}

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

#[derive(Serialize)]
struct Envelope<'a> {
    encryption: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    slots: Vec<Slot>,
    payload: String,
}

#[derive(Serialize)]
struct Slot {
    component: String,
    nonce: String,
    key: String,
}

/// The key that wraps the content key for one machine component.
pub fn slot_key(license_key: &str, component: &str, value: &str) -> [u8; 32] {
    let ikm = format!("{license_key}\0{component}={value}");
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(FORMAT.as_bytes()), ikm.as_bytes())
        .expand(b"license file slot key", &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> (String, String) {
    let nonce = random::<12>();
    let sealed = ChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("ChaCha20-Poly1305 encrypts any message that fits in memory");
    (B64.encode(nonce), B64.encode(sealed))
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
pub fn terms(license: &License, options: &FileOptions, issued: DateTime<Utc>) -> LicenseFileTerms {
    LicenseFileTerms {
        format: FORMAT.to_owned(),
        license: FileLicense {
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
pub fn render(
    terms: &LicenseFileTerms,
    signer: &ProductSigner,
    encrypt: bool,
) -> Result<String, DomainError> {
    let plain = serde_json::to_vec(terms).expect("terms always serialise");
    let envelope = if encrypt {
        let fingerprint = terms.fingerprint.as_deref().ok_or_else(|| {
            DomainError::new(
                "encrypt",
                "an encrypted file is bound to a machine: give its fingerprint",
            )
        })?;
        let content_key = random::<32>();
        let (nonce, payload) = seal(&content_key, FORMAT.as_bytes(), &plain);
        let components = fingerprint_components(fingerprint);
        let strong = components
            .iter()
            .any(|(name, _)| STRONG_COMPONENTS.contains(name));
        let slots = components
            .iter()
            .filter(|(name, _)| !strong || STRONG_COMPONENTS.contains(name))
            .map(|(name, value)| {
                let (nonce, key) = seal(
                    &slot_key(&terms.license.key, name, value),
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
            encryption: "chacha20poly1305",
            nonce: Some(nonce),
            slots,
            payload,
        }
    } else {
        Envelope {
            encryption: "none",
            nonce: None,
            slots: Vec::new(),
            payload: B64.encode(&plain),
        }
    };
    let envelope = serde_json::to_vec(&envelope).expect("envelopes always serialise");
    let signature = signer.sign(&signed_message(&envelope));
    let body = B64.encode(&envelope);
    let mut text = format!("{BEGIN}\nFormat: {FORMAT}\nSignature: {signature}\n\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(END);
    text.push('\n');
    Ok(text)
}

/// The exact bytes a license file's signature covers.
pub fn signed_message(envelope: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(FORMAT.len() + 1 + envelope.len());
    message.extend_from_slice(FORMAT.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(envelope);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::fixtures::license;
    use chrono::Duration;

    fn parts(text: &str) -> (String, Vec<u8>) {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(BEGIN));
        assert_eq!(lines.next(), Some("Format: keyturn-license-file/1"));
        let signature = lines
            .next()
            .unwrap()
            .strip_prefix("Signature: ")
            .unwrap()
            .to_owned();
        assert_eq!(lines.next(), Some(""));
        let body: String = lines.take_while(|l| *l != END).collect();
        (signature, B64.decode(body).unwrap())
    }

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
        assert!(text.ends_with("-----END LICENSE FILE-----\n"));
        assert!(text.lines().all(|l| l.len() <= 100));
        let (signature, envelope) = parts(&text);
        assert!(signer
            .public_key()
            .verify(&signed_message(&envelope), &signature));
        assert!(!signer.public_key().verify(&envelope, &signature));
        let envelope: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        assert_eq!(envelope["encryption"], "none");
        let payload = B64.decode(envelope["payload"].as_str().unwrap()).unwrap();
        let back: LicenseFileTerms = serde_json::from_slice(&payload).unwrap();
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
        let (_, envelope) = parts(&text);
        let envelope: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        assert_eq!(envelope["encryption"], "chacha20poly1305");
        let slots = envelope["slots"].as_array().unwrap();
        let names: Vec<&str> = slots
            .iter()
            .map(|s| s["component"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["mid", "mac"], "the host name alone opens nothing");
        let slot = &slots[1];
        let open = |key: [u8; 32]| {
            ChaCha20Poly1305::new(Key::from_slice(&key))
                .decrypt(
                    Nonce::from_slice(&B64.decode(slot["nonce"].as_str().unwrap()).unwrap()),
                    Payload {
                        msg: &B64.decode(slot["key"].as_str().unwrap()).unwrap(),
                        aad: b"mac",
                    },
                )
                .ok()
        };
        let content_key = open(slot_key(&lic.key, "mac", "bbbb")).expect("the right machine");
        assert!(open(slot_key(&lic.key, "mac", "ffff")).is_none());
        assert!(open(slot_key("OTHER-KEY", "mac", "bbbb")).is_none());
        let plain = ChaCha20Poly1305::new(Key::from_slice(&content_key))
            .decrypt(
                Nonce::from_slice(&B64.decode(envelope["nonce"].as_str().unwrap()).unwrap()),
                Payload {
                    msg: &B64.decode(envelope["payload"].as_str().unwrap()).unwrap(),
                    aad: FORMAT.as_bytes(),
                },
            )
            .unwrap();
        let back: LicenseFileTerms = serde_json::from_slice(&plain).unwrap();
        assert_eq!(back.fingerprint.as_deref(), Some(fp));
    }

    #[test]
    fn fingerprints_split_into_components() {
        assert_eq!(
            fingerprint_components("ktfp1:mid=1;mac=2"),
            [("mid", "1"), ("mac", "2")]
        );
        assert_eq!(fingerprint_components("machine-a"), [("raw", "machine-a")]);
        assert!(check_ttl_days(0).is_err());
        assert!(check_ttl_days(MAX_TTL_DAYS + 1).is_err());
        assert!(check_ttl_days(30).is_ok());
    }
}
