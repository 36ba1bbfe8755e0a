//! `keyturn backup`, `keyturn restore` and `keyturn export`: see `crate::transfer`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use keyturn_store::Store;
use serde_json::json;

use crate::output;
use crate::startup::open_store;
use crate::transfer::{self, counts_json, create_private};

use super::{Context, Open};

/// A backup of a large database takes longer than a request may: its statements get this long.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(3600);

/// Writes a consistent copy of the installation to FILE while the server keeps running.
#[derive(Args)]
pub struct Backup {
    /// The file to write (it must not exist yet).
    file: PathBuf,
}

impl Backup {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let mut settings = ctx.store.resolve()?;
        settings.options.timeout = BACKUP_TIMEOUT;
        // Opened as it is, never migrated: a backup taken before an upgrade must be of the
        // database as the old version left it.
        let store = match &settings.database_url {
            Some(url) => Store::connect(url, &settings.options).await,
            None => {
                anyhow::ensure!(
                    Store::sqlite_file(&settings.data_dir).exists(),
                    "no Keyturn database in {}: give the installation's --data-dir",
                    settings.data_dir.display()
                );
                Store::open_sqlite(&settings.data_dir, &settings.options).await
            }
        }
        .context("cannot open the database")?;
        let file = match create_private(&self.file) {
            Ok(file) => file,
            Err(e) => {
                store.close(Duration::from_secs(5)).await;
                return Err(e);
            }
        };
        let done = self.write(&store, file).await;
        store.close(Duration::from_secs(5)).await;
        let summary = match done {
            Ok(summary) => summary,
            Err(e) => {
                // A half-written backup (this command created the file) must not pass for one.
                let _ = std::fs::remove_file(&self.file);
                return Err(e);
            }
        };
        output::json(&summary)?;
        eprintln!(
            "The signing keys are in the backup as stored: if they are sealed, restoring needs \
             the same master key. Keep the backup private."
        );
        Ok(())
    }

    async fn write(&self, store: &Store, file: std::fs::File) -> anyhow::Result<serde_json::Value> {
        match store.dialect() {
            keyturn_store::Dialect::Sqlite => {
                // Created empty (owner only) above; SQLite fills it, keeping its permissions.
                drop(file);
                store
                    .backup_sqlite_into(&self.file)
                    .await
                    .context("cannot copy the database")?;
                Ok(json!({ "file": self.file, "kind": "sqlite" }))
            }
            keyturn_store::Dialect::Postgres => {
                let counts = transfer::export(store, file).await?;
                Ok(json!({
                    "file": self.file,
                    "kind": "export",
                    "rows": counts_json(&counts),
                }))
            }
        }
    }
}

/// Restores a backup into an empty installation: a SQLite backup into an empty --data-dir, an
/// export (what `keyturn backup` writes on PostgreSQL) into the configured database.
#[derive(Args)]
pub struct Restore {
    /// The backup file.
    file: PathBuf,
}

impl Restore {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let settings = ctx.store.resolve()?;
        if transfer::is_export(&self.file)? {
            let store = open_store(&settings).await?;
            let counts = transfer::import(&store, &self.file).await;
            store.close(Duration::from_secs(5)).await;
            output::json(&json!({ "restored": "export", "rows": counts_json(&counts?) }))?;
        } else {
            anyhow::ensure!(
                settings.database_url.is_none(),
                "{} is a SQLite backup: restore it into a --data-dir (to move into PostgreSQL, \
                 restore it, then `keyturn export` and `keyturn import jsonl`)",
                self.file.display()
            );
            let checked = transfer::restore_sqlite(&self.file, &settings.data_dir).await?;
            output::json(&json!({
                "restored": "sqlite",
                "data_dir": settings.data_dir,
                "products": checked.products,
                "licenses": checked.licenses,
                "migrations_to_apply": checked.pending,
            }))?;
        }
        // The keys came as they were stored: say now, not at the next start, when they cannot
        // be used with this configuration's master key.
        ctx.open(Open::Existing).await.context(
            "restored, but the signing keys cannot be used: start with the master key the \
             backup was made with",
        )?;
        Ok(())
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// JSON Lines: a header line, then one row a line.
    Jsonl,
}

/// Writes products (with their signing keys as stored), plans, customers, licenses and
/// machines, to move them to another database with `keyturn import jsonl`.
#[derive(Args)]
pub struct Export {
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// The file to write (it must not exist yet); standard output when not given.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Export {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let Format::Jsonl = self.format;
        let s = ctx.open(Open::KeysAsTheyAre).await?;
        let counts = match &self.out {
            Some(path) => {
                let file = create_private(path)?;
                let written = transfer::export(s.app.store(), file).await;
                if written.is_err() {
                    let _ = std::fs::remove_file(path);
                }
                written?
            }
            None => transfer::export(s.app.store(), std::io::stdout()).await?,
        };
        eprintln!("exported: {}", counts_json(&counts));
        Ok(())
    }
}
