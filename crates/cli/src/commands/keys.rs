use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use secrecy::SecretString;

use crate::config::secret;
use crate::output;

use super::{Context, Open};

#[derive(Subcommand)]
pub enum Keys {
    /// Print a new random master key. Keep it apart from the database and its backups.
    NewMasterKey,
    /// How many signing keys are sealed and how many are stored in plain text.
    Status,
    /// Seal every signing key with the master key (KEYTURN_MASTER_KEY or
    /// KEYTURN_MASTER_KEY_FILE). To rotate, also give the master key they are sealed with now.
    Seal {
        /// The master key the keys are sealed with now (when rotating to a new one).
        #[arg(long, env = "KEYTURN_OLD_MASTER_KEY", hide_env_values = true, value_parser = secret)]
        old_master_key: Option<SecretString>,
        /// A file holding the old master key.
        #[arg(long, env = "KEYTURN_OLD_MASTER_KEY_FILE")]
        old_master_key_file: Option<PathBuf>,
    },
    /// Store every signing key in plain text again, opened with the master key.
    Unseal,
}

impl Keys {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        if let Keys::NewMasterKey = self {
            return output::line(keyturn_core::MasterKey::generate().to_text());
        }
        let s = ctx.open(Open::KeysAsTheyAre).await?;
        match self {
            Keys::NewMasterKey => unreachable!("needs no installation"),
            Keys::Status => output::json(&s.app.signing_keys_status().await?),
            Keys::Seal {
                old_master_key,
                old_master_key_file,
            } => {
                let to = s.master_key.context(
                    "give the master key to seal with (KEYTURN_MASTER_KEY or KEYTURN_MASTER_KEY_FILE)",
                )?;
                let from = crate::config::master_key(
                    old_master_key.as_ref(),
                    old_master_key_file.as_deref(),
                    "KEYTURN_OLD_MASTER_KEY",
                )?;
                let report = s
                    .app
                    .reseal_signing_keys(&s.me, from.as_ref(), Some(&to))
                    .await?;
                output::json(&report)
            }
            Keys::Unseal => {
                let from = s.master_key.context(
                    "give the master key the keys are sealed with (KEYTURN_MASTER_KEY or KEYTURN_MASTER_KEY_FILE)",
                )?;
                output::json(&s.app.reseal_signing_keys(&s.me, Some(&from), None).await?)
            }
        }
    }
}
