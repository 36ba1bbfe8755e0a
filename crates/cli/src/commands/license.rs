use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use keyturn_app::{Extension, LicenseFileRequest, LicenseQuery, LicenseSpec};

use crate::output::{self, ListArgs, PageArgs};

use super::Context;

#[derive(Subcommand)]
pub enum License {
    Create {
        #[arg(long)]
        product: Option<i64>,
        #[arg(long)]
        plan: Option<i64>,
        #[arg(long)]
        period_days: Option<i64>,
        #[arg(long)]
        max_machines: Option<i64>,
        #[arg(long = "feature")]
        features: Vec<String>,
        #[arg(long)]
        customer: Option<i64>,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long, default_value_t = 1)]
        quantity: i64,
    },
    /// List the licenses, or those of one product or one email.
    List {
        #[arg(long)]
        product: Option<i64>,
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show a license by id or key.
    Show {
        id_or_key: String,
    },
    Block {
        id: i64,
    },
    Unblock {
        id: i64,
    },
    Extend {
        id: i64,
        #[arg(long)]
        days: i64,
    },
    /// Issue a signed offline license file for a machine that cannot reach the server.
    File {
        /// The license key.
        #[arg(long)]
        key: String,
        /// The machine code the licensed program shows on that machine.
        #[arg(long)]
        machine: String,
        /// Days the file stays valid (default 30).
        #[arg(long)]
        ttl_days: Option<i64>,
        /// Encrypt the file so that only that machine can read it.
        #[arg(long)]
        encrypt: bool,
        /// Write the file here instead of to standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

impl License {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let s = ctx.app().await?;
        let (app, me) = (&s.app, &s.me);
        match self {
            License::Create {
                product,
                plan,
                period_days,
                max_machines,
                features,
                customer,
                notes,
                quantity,
            } => {
                let spec = LicenseSpec {
                    product_id: product,
                    plan_id: plan,
                    period_days,
                    max_machines,
                    features: (!features.is_empty()).then_some(features),
                    customer_id: customer,
                    notes,
                    quantity: Some(quantity),
                    ..Default::default()
                };
                output::json(&app.create_licenses(me, spec).await?)
            }
            License::List {
                product,
                email,
                page,
                list,
            } => {
                let query = LicenseQuery {
                    product_id: product,
                    email,
                    page: page.request(),
                    ..Default::default()
                };
                let page = app.licenses(me, query).await?;
                output::list(
                    &list,
                    &page.data,
                    page.next_cursor.as_deref(),
                    &[
                        "id",
                        "key",
                        "product_id",
                        "customer_id",
                        "expires",
                        "max_machines",
                        "blocked",
                    ],
                )
            }
            License::Show { id_or_key } => {
                let license = match id_or_key.parse::<i64>() {
                    Ok(id) => app.license(me, id).await?,
                    Err(_) => app.license_by_key(me, &id_or_key).await?,
                };
                output::json(&license)
            }
            License::Block { id } => output::json(&app.set_blocked(me, id, true).await?),
            License::Unblock { id } => output::json(&app.set_blocked(me, id, false).await?),
            License::Extend { id, days } => {
                output::json(&app.extend_license(me, id, Extension::Days(days)).await?)
            }
            License::File {
                key,
                machine,
                ttl_days,
                encrypt,
                output,
            } => {
                let license = app.license_by_key(me, &key).await?;
                let request = LicenseFileRequest {
                    fingerprint: Some(machine),
                    ttl_days,
                    encrypt,
                };
                let text = app.issue_license_file(me, license.id, request).await?;
                match output {
                    Some(path) => {
                        std::fs::write(&path, &text)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        eprintln!("wrote the license file to {}", path.display());
                        Ok(())
                    }
                    None => output::text(&text),
                }
            }
        }
    }
}
