//! The offline license file: a license's terms, signed with the product's Ed25519 key and
//! optionally encrypted for one machine, as text a program checks with no network.
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
//! The signature covers `keyturn-license-file/1\n` followed by the exact envelope bytes
//! ([`signed_message`]), so a file can never pass for a signed API reply or the other way round.
//! The envelope ([`Envelope`]) is `{"encryption":"none","payload":"<base64 terms JSON>"}` or, when
//! encrypted, `{"encryption":"chacha20poly1305","nonce":…,"slots":[{"component":…,"nonce":…,
//! "key":…}],"payload":"<base64 ciphertext>"}`.
//!
//! An encrypted file's terms are sealed with ChaCha20-Poly1305 under a random content key (the
//! format name as associated data). That key is wrapped once per identifying component of the
//! bound machine's fingerprint, each under [`slot_key`] — HKDF-SHA256 of the license key and that
//! component, the component's name as associated data — so the machine the file was issued for
//! opens it even after one component changed, and no other machine does.
//!
//! The server issues files (`keyturn-core`), the client reads them (`keyturn-client`); both go
//! through the functions here.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::License;

/// The first line of a license file.
pub const BEGIN: &str = "-----BEGIN LICENSE FILE-----";
/// The last line of a license file.
pub const END: &str = "-----END LICENSE FILE-----";
/// The format name: the `Format:` header, the signature's domain separator and the HKDF salt.
pub const FORMAT: &str = "keyturn-license-file/1";
/// The envelope's `encryption` for a file anyone holding it may read.
pub const PLAIN: &str = "none";
/// The envelope's `encryption` for a file sealed for one machine.
pub const SEALED: &str = "chacha20poly1305";

/// What a license file grants, and to which machine, for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    /// Always [`FORMAT`].
    pub format: String,
    /// The license, as it stood when the file was issued.
    pub license: License,
    /// The machine the file is bound to; `None` for a file any machine may use.
    pub fingerprint: Option<String>,
    /// When the server issued the file.
    pub issued: DateTime<Utc>,
    /// The file is refused from this instant on, whatever the license's own expiry.
    pub valid_until: DateTime<Utc>,
}

/// The signed part of a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`PLAIN`] or [`SEALED`].
    pub encryption: String,
    /// The payload's nonce (base64), for a sealed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The content key, wrapped once per machine component, for a sealed file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<Slot>,
    /// The terms JSON (base64), sealed or not.
    pub payload: String,
}

/// The content key wrapped for one machine component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// The component's name (`mid`, `mac`, …).
    pub component: String,
    /// The nonce (base64).
    pub nonce: String,
    /// The wrapped content key (base64).
    pub key: String,
}

/// Why a file's text or envelope cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the license file is malformed: {0}")]
    Malformed(&'static str),
    #[error("the license file is sealed for another machine")]
    WrongMachine,
}

/// The key that wraps the content key for one machine component. License keys are compared
/// in upper case, so the key is upper-cased here for both sides.
pub fn slot_key(license_key: &str, component: &str, value: &str) -> [u8; 32] {
    let license_key = license_key.trim().to_ascii_uppercase();
    let ikm = format!("{license_key}\0{component}={value}");
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(FORMAT.as_bytes()), ikm.as_bytes())
        .expand(b"license file slot key", &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// The exact bytes a license file's signature covers.
pub fn signed_message(envelope: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(FORMAT.len() + 1 + envelope.len());
    message.extend_from_slice(FORMAT.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(envelope);
    message
}

/// Seals `plaintext` under `key` with the given 12-byte `nonce`; returns (nonce, ciphertext) in
/// base64. The caller supplies a fresh random nonce: this crate has no source of randomness.
pub fn seal(key: &[u8; 32], nonce: [u8; 12], aad: &[u8], plaintext: &[u8]) -> (String, String) {
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

/// Opens what [`seal`] sealed; `None` when the key, nonce or associated data do not fit.
pub fn open(key: &[u8; 32], nonce: &str, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
    let nonce = B64.decode(nonce).ok().filter(|n| n.len() == 12)?;
    let sealed = B64.decode(sealed).ok()?;
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &sealed, aad })
        .ok()
}

/// The text of a file: the header, then the envelope in base64 lines of 64 characters.
pub fn frame(signature: &str, envelope: &[u8]) -> String {
    let body = B64.encode(envelope);
    let mut text = format!("{BEGIN}\nFormat: {FORMAT}\nSignature: {signature}\n\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(END);
    text.push('\n');
    text
}

/// Splits a file's text into its signature and the envelope bytes. Text before the BEGIN line
/// (a mail's greeting, say) is ignored, as is surrounding whitespace on each line.
pub fn unframe(text: &str) -> Result<(String, Vec<u8>), FileError> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != BEGIN)
        .skip(1);
    let (mut format, mut signature) = (None, None);
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        match line.split_once(':') {
            Some(("Format", v)) => format = Some(v.trim()),
            Some(("Signature", v)) => signature = Some(v.trim().to_owned()),
            _ => return Err(FileError::Malformed("unexpected header line")),
        }
    }
    if format != Some(FORMAT) {
        return Err(FileError::Malformed("not a keyturn-license-file/1 file"));
    }
    let signature = signature.ok_or(FileError::Malformed("no signature"))?;
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == END {
            ended = true;
            break;
        }
        body.push_str(line);
    }
    if !ended {
        return Err(FileError::Malformed("no END line"));
    }
    let envelope = B64
        .decode(body)
        .map_err(|_| FileError::Malformed("the body is not base64"))?;
    Ok((signature, envelope))
}

/// The terms JSON inside a (verified) envelope, decrypted with the license key and the machine's
/// components when the file is sealed.
pub fn open_envelope(
    envelope: &[u8],
    license_key: &str,
    machine: &[(&str, &str)],
) -> Result<Vec<u8>, FileError> {
    let envelope: Envelope = serde_json::from_slice(envelope)
        .map_err(|_| FileError::Malformed("the envelope is not JSON"))?;
    match envelope.encryption.as_str() {
        PLAIN => B64
            .decode(&envelope.payload)
            .map_err(|_| FileError::Malformed("the payload is not base64")),
        SEALED => {
            let content_key = envelope
                .slots
                .iter()
                .find_map(|slot| {
                    let (name, value) = machine.iter().find(|(n, _)| *n == slot.component)?;
                    open(
                        &slot_key(license_key, name, value),
                        &slot.nonce,
                        &slot.key,
                        name.as_bytes(),
                    )
                })
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .ok_or(FileError::WrongMachine)?;
            let nonce = envelope
                .nonce
                .as_deref()
                .ok_or(FileError::Malformed("no nonce"))?;
            open(&content_key, nonce, &envelope.payload, FORMAT.as_bytes())
                .ok_or(FileError::Malformed("the payload does not decrypt"))
        }
        _ => Err(FileError::Malformed("unknown encryption")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed_envelope(license_key: &str, machine: &[(&str, &str)], plain: &[u8]) -> Vec<u8> {
        let content_key = [7u8; 32];
        let (nonce, payload) = seal(&content_key, [1; 12], FORMAT.as_bytes(), plain);
        let slots = machine
            .iter()
            .enumerate()
            .map(|(i, (name, value))| {
                let (nonce, key) = seal(
                    &slot_key(license_key, name, value),
                    [i as u8 + 2; 12],
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
        serde_json::to_vec(&Envelope {
            encryption: SEALED.to_owned(),
            nonce: Some(nonce),
            slots,
            payload,
        })
        .unwrap()
    }

    #[test]
    fn frames_round_trip() {
        let envelope = br#"{"encryption":"none","payload":"e30="}"#.repeat(5);
        let text = frame("c2ln", &envelope);
        assert!(text
            .lines()
            .all(|l| l.len() <= 64 || l.starts_with("Signature")));
        assert_eq!(
            unframe(&text).unwrap(),
            ("c2ln".to_owned(), envelope.clone())
        );
        let mailed = format!("Dear buyer,\n\n{}", text.replace('\n', "  \r\n"));
        assert_eq!(unframe(&mailed).unwrap(), ("c2ln".to_owned(), envelope));
    }

    #[test]
    fn framing_errors_are_named() {
        for (text, why) in [
            ("hello", "not a keyturn-license-file/1 file"),
            (
                "-----BEGIN LICENSE FILE-----\nFormat: keyturn-license-file/1\n\nAAAA\n-----END LICENSE FILE-----\n",
                "no signature",
            ),
            (
                "-----BEGIN LICENSE FILE-----\nFormat: keyturn-license-file/1\nSignature: x\n\nAAAA\n",
                "no END line",
            ),
            (
                "-----BEGIN LICENSE FILE-----\nFormat: keyturn-license-file/1\nSignature: x\n\n!!!\n-----END LICENSE FILE-----\n",
                "the body is not base64",
            ),
        ] {
            assert_eq!(unframe(text), Err(FileError::Malformed(why)));
        }
    }

    #[test]
    fn sealed_payloads_open_only_on_the_machine() {
        let machine = [("mid", "aaaa"), ("mac", "bbbb")];
        let envelope = sealed_envelope("KEY-1", &machine, b"{\"terms\":1}");
        let opened = open_envelope(&envelope, "key-1", &[("mac", "bbbb"), ("hst", "x")]);
        assert_eq!(opened.unwrap(), b"{\"terms\":1}");
        assert_eq!(
            open_envelope(&envelope, "KEY-1", &[("mac", "ffff"), ("hst", "x")]),
            Err(FileError::WrongMachine)
        );
        assert_eq!(
            open_envelope(&envelope, "OTHER", &machine),
            Err(FileError::WrongMachine)
        );
        let plain = serde_json::to_vec(&Envelope {
            encryption: PLAIN.to_owned(),
            nonce: None,
            slots: vec![],
            payload: B64.encode(b"{}"),
        })
        .unwrap();
        assert_eq!(open_envelope(&plain, "any", &[]).unwrap(), b"{}");
    }

    #[test]
    fn the_signature_covers_the_format_name() {
        assert_eq!(signed_message(b"{}"), b"keyturn-license-file/1\n{}");
    }
}
