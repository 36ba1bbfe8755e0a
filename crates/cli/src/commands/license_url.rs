use clap::Subcommand;

use crate::output::{self, ListArgs};

use super::Context;

#[derive(Subcommand)]
pub enum LicenseUrl {
    /// Create one and print its path (the secret in it is shown only now).
    Create {
        #[arg(long)]
        plan: i64,
        /// sendowl, dpd or generic: the parameter names the store sends.
        #[arg(long, default_value = "generic")]
        store: String,
        #[arg(long, default_value = "store")]
        name: String,
        /// Name of the order id parameter, when the store sends another.
        #[arg(long)]
        order_id_param: Option<String>,
        #[arg(long)]
        email_buyer: bool,
    },
    /// List the license URLs (without their secrets).
    List(ListArgs),
    /// Replace the secret; the old URL stops working.
    Rotate { id: i64 },
}

impl LicenseUrl {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let s = ctx.app().await?;
        match self {
            LicenseUrl::Create {
                plan,
                store,
                name,
                order_id_param,
                email_buyer,
            } => {
                let new = keyturn_app::NewLicenseUrl {
                    plan_id: plan,
                    name,
                    store,
                    order_id_param,
                    email_buyer,
                    ..Default::default()
                };
                let created = s.app.create_license_url(&s.me, new).await?;
                eprintln!(
                    "license URL {} for plan {}",
                    created.url.id, created.url.plan_id
                );
                output::line(created.path)
            }
            LicenseUrl::List(list) => output::list(
                &list,
                &s.app.license_urls(&s.me).await?,
                None,
                &["id", "plan_id", "name", "store", "email_buyer", "rotated"],
            ),
            LicenseUrl::Rotate { id } => {
                output::line(s.app.rotate_license_url(&s.me, id).await?.path)
            }
        }
    }
}
