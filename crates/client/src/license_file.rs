//! Reading license files: the text the server issues at `POST /v1/licenses/{id}/file` (or
//! `keyturn license file`) for machines that cannot reach it.
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
//! The signature covers `keyturn-license-file/1\n` followed by the envelope bytes. The envelope
//! carries the terms (license, bound fingerprint, issue time, end of validity) either as base64
//! JSON (`"encryption":"none"`) or sealed with ChaCha20-Poly1305 (`"encryption":"chacha20poly1305"`)
//! under a content key that is wrapped once per strong component of the bound machine's
//! fingerprint, with a key derived by HKDF-SHA256 from the license key and that component.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use serde::Deserialize;
use sha2::Sha256;

use crate::{Error, Fingerprint, License};

/// The first line of a license file.
pub const BEGIN: &str = "-----BEGIN LICENSE FILE-----";
/// The last line of a license file.
pub const END: &str = "-----END LICENSE FILE-----";
/// The format this SDK reads.
pub const FORMAT: &str = "keyturn-license-file/1";

/// What a verified license file grants.
#[derive(Debug, Clone, Deserialize)]
pub struct LicenseFile {
    /// The license, as it stood when the file was issued.
    pub license: License,
    /// The machine the file is bound to; `None` for a file any machine may use.
    pub fingerprint: Option<String>,
    /// When the server issued the file.
    pub issued: DateTime<Utc>,
    /// The file is refused from this instant on.
    pub valid_until: DateTime<Utc>,
    format: String,
}

#[derive(Deserialize)]
struct Envelope {
    encryption: String,
    nonce: Option<String>,
    #[serde(default)]
    slots: Vec<Slot>,
    payload: String,
}

#[derive(Deserialize)]
struct Slot {
    component: String,
    nonce: String,
    key: String,
}

fn bad(why: &str) -> Error {
    Error::BadLicenseFile(why.to_owned())
}

/// Splits the text into the signature and the envelope bytes.
fn unframe(text: &str) -> Result<(String, Vec<u8>), Error> {
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
            _ => return Err(bad("unexpected header line")),
        }
    }
    if format != Some(FORMAT) {
        return Err(bad("not a keyturn-license-file/1 file"));
    }
    let signature = signature.ok_or_else(|| bad("no signature"))?;
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
        return Err(bad("no END line"));
    }
    let envelope = B64
        .decode(body)
        .map_err(|_| bad("the body is not base64"))?;
    Ok((signature, envelope))
}

fn open(key: &[u8; 32], nonce: &str, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
    let nonce = B64.decode(nonce).ok().filter(|n| n.len() == 12)?;
    let sealed = B64.decode(sealed).ok()?;
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &sealed, aad })
        .ok()
}

/// The key that wraps the content key for one machine component. The same derivation as the
/// issuer's (`keyturn_core::license_file::slot_key`): this crate stays free of server crates, and
/// the integration tests check that both sides agree.
fn slot_key(license_key: &str, component: &str, value: &str) -> [u8; 32] {
    let ikm = format!("{license_key}\0{component}={value}");
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(FORMAT.as_bytes()), ikm.as_bytes())
        .expand(b"license file slot key", &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// Checks the signature with `verify` and returns the file's terms, decrypting them with the
/// license key and this machine's components when the file is encrypted.
pub(crate) fn read(
    text: &str,
    license_key: &str,
    machine: &Fingerprint,
    verify: impl Fn(&[u8], &str) -> bool,
) -> Result<LicenseFile, Error> {
    let (signature, envelope_bytes) = unframe(text)?;
    let mut message = Vec::with_capacity(FORMAT.len() + 1 + envelope_bytes.len());
    message.extend_from_slice(FORMAT.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(&envelope_bytes);
    if !verify(&message, &signature) {
        return Err(Error::BadSignature);
    }
    let envelope: Envelope =
        serde_json::from_slice(&envelope_bytes).map_err(|_| bad("the envelope is not JSON"))?;
    let terms = match envelope.encryption.as_str() {
        "none" => B64
            .decode(&envelope.payload)
            .map_err(|_| bad("the payload is not base64"))?,
        "chacha20poly1305" => {
            let license_key = license_key.trim().to_ascii_uppercase();
            let content_key = envelope
                .slots
                .iter()
                .find_map(|slot| {
                    let (name, value) = machine
                        .components()
                        .iter()
                        .find(|(n, _)| *n == slot.component)?;
                    open(
                        &slot_key(&license_key, name, value),
                        &slot.nonce,
                        &slot.key,
                        name.as_bytes(),
                    )
                })
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .ok_or(Error::WrongMachine)?;
            let nonce = envelope.nonce.as_deref().ok_or_else(|| bad("no nonce"))?;
            open(&content_key, nonce, &envelope.payload, FORMAT.as_bytes())
                .ok_or_else(|| bad("the payload does not decrypt"))?
        }
        _ => return Err(bad("unknown encryption")),
    };
    let file: LicenseFile =
        serde_json::from_slice(&terms).map_err(|e| bad(&format!("bad terms: {e}")))?;
    if file.format != FORMAT {
        return Err(bad("the terms are of another format"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_errors_are_named() {
        let machine = Fingerprint::parse("m");
        let yes = |_: &[u8], _: &str| true;
        for (text, needle) in [
            ("hello", "not a keyturn"),
            (
                "-----BEGIN LICENSE FILE-----\nFormat: keyturn-license-file/1\n\nAAAA\n-----END LICENSE FILE-----\n",
                "no signature",
            ),
            (
                "-----BEGIN LICENSE FILE-----\nFormat: keyturn-license-file/1\nSignature: x\n\nAAAA\n",
                "no END",
            ),
            (
                "-----BEGIN LICENSE FILE-----\nFormat: keyturn-license-file/1\nSignature: x\n\n!!!\n-----END LICENSE FILE-----\n",
                "not base64",
            ),
        ] {
            match read(text, "K", &machine, yes) {
                Err(Error::BadLicenseFile(why)) => assert!(why.contains(needle), "{why}"),
                other => panic!("expected a bad file, got {other:?}"),
            }
        }
        let signed_but_forged = "-----BEGIN LICENSE FILE-----\nFormat: keyturn-license-file/1\nSignature: x\n\nAAAA\n-----END LICENSE FILE-----\n";
        assert!(matches!(
            read(signed_but_forged, "K", &machine, |_, _| false),
            Err(Error::BadSignature)
        ));
    }
}
