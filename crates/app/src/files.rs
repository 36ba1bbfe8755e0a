//! Offline license files, for machines that cannot reach the server.

use keyturn_core::license_file::{self, check_ttl_days, FileOptions};
use keyturn_core::validation::admit_known_machine;
use keyturn_core::AuditAction;
use keyturn_core::{Fingerprint, Permission};
use serde_json::json;

use crate::licenses::record;
use crate::{now, App, AppError, Principal, Result};

/// How long a license file stays valid when the request does not say.
pub const DEFAULT_FILE_TTL_DAYS: i64 = 30;

/// What a license file should be: bound to a machine or not, valid for how long, encrypted or not.
#[derive(Debug, Clone, Default)]
pub struct LicenseFileRequest {
    /// The machine's fingerprint (the program's machine code); required to encrypt.
    pub fingerprint: Option<String>,
    /// Days the file stays valid; [`DEFAULT_FILE_TTL_DAYS`] when `None`.
    pub ttl_days: Option<i64>,
    /// Encrypt the terms so that only the machine with this fingerprint can read them.
    pub encrypt: bool,
}

impl App {
    /// Issues a signed license file for license `id`. Issuing lets a machine use the license
    /// offline, so it needs `licenses:write`; blocked and expired licenses get no file. Every
    /// file issued is recorded in the license's audit log.
    pub async fn issue_license_file(
        &self,
        principal: &Principal,
        id: i64,
        req: LicenseFileRequest,
    ) -> Result<String> {
        let fingerprint = req
            .fingerprint
            .as_deref()
            .map(Fingerprint::parse)
            .transpose()?;
        let ttl_days = req.ttl_days.unwrap_or(DEFAULT_FILE_TTL_DAYS);
        check_ttl_days(ttl_days)?;
        let (mut session, license) = self
            .locked(principal, id, Permission::LicensesWrite)
            .await?;
        let at = now();
        admit_known_machine(&license, None, keyturn_core::ExpiryRule::Refuse, at)
            .map_err(AppError::Refused)?;
        let options = FileOptions {
            fingerprint,
            ttl_days,
            encrypt: req.encrypt,
        };
        let text = self
            .write_license_file(&mut session, &license, &principal.actor, &options, at)
            .await?;
        session.commit().await?;
        Ok(text)
    }

    /// Signs a file for `license` (locked in `session`, already admitted) and records it in
    /// the license's audit log under `actor`: the one way a file is made, whoever asks.
    pub(crate) async fn write_license_file(
        &self,
        session: &mut keyturn_store::Session,
        license: &keyturn_core::License,
        actor: &crate::Actor,
        options: &FileOptions,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<String> {
        let signer = self.signer(license.product_id).await?;
        // The file goes to the licensee: it shows what its product makes public, as replies do.
        let shown = self.licensee_view(license).await?;
        let terms = license_file::terms(&shown, options, at);
        let text = license_file::render(&terms, &signer, options.encrypt)?;
        record(
            session,
            license.id,
            actor,
            AuditAction::LicenseFileIssued,
            json!({
                "fingerprint": terms.fingerprint,
                "valid_until": terms.valid_until,
                "encrypted": options.encrypt,
            }),
            at,
        )
        .await?;
        Ok(text)
    }
}
