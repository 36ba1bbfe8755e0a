use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};

use crate::config::secret;
use crate::import::{import_cryptolens, CryptolensSource};
use crate::output;

use super::{Context, Open};

#[derive(Subcommand)]
pub enum Import {
    /// What `keyturn export` (or `keyturn backup` on PostgreSQL) wrote, into an installation
    /// that has no products, customers or licenses yet; ids and key strings are kept, signing
    /// keys arrive as they were stored. All or nothing: a failed import stores no row.
    Jsonl {
        /// The export file.
        file: std::path::PathBuf,
    },
    /// A product's keys (features, expiry, notes, block, machine limit, activated machines,
    /// data objects) and customers, through the Cryptolens Web API of a Cryptolens-compatible
    /// server. Running it again updates what changed and adds what is new; keys keep their key
    /// strings. Prints a summary; progress goes to stderr.
    Cryptolens {
        /// The server's address, e.g. https://app.cryptolens.io
        #[arg(long)]
        from: String,
        /// An access token of that server allowed GetProducts, GetKeys, GetCustomers and
        /// ListDataObjects.
        #[arg(long, env = "KEYTURN_IMPORT_TOKEN", hide_env_values = true, value_parser = secret)]
        token: SecretString,
        /// The product's id on that server.
        #[arg(long)]
        product: i64,
        /// Import into this existing product (default: the product a previous import made,
        /// or a new one).
        #[arg(long)]
        into: Option<i64>,
    },
}

impl Import {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self {
            Import::Jsonl { file } => {
                // A new installation is the usual target: created here like `migrate` does.
                let s = ctx.open(Open::CreateOrMigrate).await?;
                let counts = crate::transfer::import(s.app.store(), &file).await?;
                output::json(&crate::transfer::counts_json(&counts))?;
                Ok(())
            }
            Import::Cryptolens {
                from,
                token,
                product,
                into,
            } => {
                let source = CryptolensSource::new(&from, token.expose_secret().to_owned())?;
                let s = ctx.app().await?;
                let summary = import_cryptolens(&s.app, &s.me, &source, product, into).await?;
                output::json(&summary)?;
                eprintln!(
                    "keys: {} created, {} updated, {} unchanged, {} failed; machines added: {}; \
                     customers created: {}",
                    summary.keys.created,
                    summary.keys.updated,
                    summary.keys.unchanged,
                    summary.keys_failed,
                    summary.machines_added,
                    summary.customers.created
                );
                anyhow::ensure!(
                    summary.keys_failed == 0,
                    "{} key(s) were not imported (see above); run the import again once fixed",
                    summary.keys_failed
                );
                Ok(())
            }
        }
    }
}
