//! Reading license files: the text the server issues at `POST /v1/licenses/{id}/file` (or
//! `keyturn license file`) for machines that cannot reach it. The format is
//! `keyturn_protocol::license_file`, which the server issues with.

use keyturn_protocol::license_file::{open_envelope, signed_message, unframe, FileError};

pub use keyturn_protocol::license_file::{BEGIN, END, FORMAT};

use crate::{Error, Fingerprint};

/// What a verified license file grants: the license as it stood when the file was issued, the
/// machine it is bound to (`None` for any machine), when it was issued and until when it holds.
pub use keyturn_protocol::license_file::Terms as LicenseFile;

fn bad(why: &str) -> Error {
    Error::BadLicenseFile(why.to_owned())
}

impl From<FileError> for Error {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Malformed(why) => bad(why),
            FileError::WrongMachine => Error::WrongMachine,
        }
    }
}

/// Checks the signature with `verify` and returns the file's terms, decrypting them with the
/// license key and this machine's components when the file is encrypted.
pub(crate) fn read(
    text: &str,
    license_key: &str,
    machine: &Fingerprint,
    verify: impl Fn(&[u8], &str) -> bool,
) -> Result<LicenseFile, Error> {
    let (signature, envelope) = unframe(text)?;
    if !verify(&signed_message(&envelope), &signature) {
        return Err(Error::BadSignature);
    }
    let machine: Vec<(&str, &str)> = machine
        .components()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let terms = open_envelope(&envelope, license_key, &machine)?;
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
