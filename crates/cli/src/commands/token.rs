use chrono::Utc;
use clap::Subcommand;
use keyturn_app::NewTokenInput;
use keyturn_core::Permission;

use crate::output::{self, ListArgs};

use super::Context;

#[derive(Subcommand)]
pub enum Token {
    /// Create a token and print it (it is shown only this once).
    Create {
        /// Allow everything.
        #[arg(long)]
        admin: bool,
        #[arg(long, default_value = "cli")]
        name: String,
        /// A permission such as licenses:read or cryptolens:activate (repeat for several).
        #[arg(long = "permission")]
        permissions: Vec<Permission>,
        /// A Cryptolens Web API method the token may call, e.g. Activate, GetKey, CreateKey
        /// (repeat for several; same as --permission cryptolens:<method>).
        #[arg(long = "cryptolens", value_parser = cryptolens_method)]
        cryptolens: Vec<Permission>,
        /// Limit the token to one product.
        #[arg(long)]
        product: Option<i64>,
        /// Cryptolens key lock: limit the token to one license (by id), or -1 to make callers
        /// name the key on every call (and allow auth/KeyLock).
        #[arg(long, allow_hyphen_values = true)]
        key_lock: Option<i64>,
        /// Cryptolens feature lock: the license fields Activate and GetKey hide from the
        /// token's callers (FieldsToReturn bits, e.g. 32 hides the customer).
        #[arg(long, default_value_t = 0)]
        feature_lock: i64,
        /// Expire after this many days.
        #[arg(long)]
        expires_days: Option<i64>,
    },
    /// List the tokens (never their secrets).
    List(ListArgs),
    Revoke {
        id: i64,
    },
}

fn cryptolens_method(s: &str) -> Result<Permission, String> {
    Permission::cryptolens_method(s.trim())
        .ok_or_else(|| format!("{s:?} is not a Cryptolens method Keyturn serves"))
}

impl Token {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let s = ctx.app().await?;
        match self {
            Token::Create {
                admin,
                name,
                mut permissions,
                cryptolens,
                product,
                key_lock,
                feature_lock,
                expires_days,
            } => {
                if admin {
                    permissions.push(Permission::Admin);
                }
                permissions.extend(cryptolens);
                anyhow::ensure!(
                    !permissions.is_empty(),
                    "give --admin, --cryptolens or at least one --permission"
                );
                let expires = expires_days
                    .map(|d| keyturn_core::dates::add_days("expires_days", Utc::now(), d))
                    .transpose()?;
                let input = NewTokenInput {
                    name,
                    permissions,
                    product_id: product,
                    key_lock,
                    feature_lock,
                    expires,
                };
                let (details, secret) = s.app.create_token(&s.me, input).await?;
                eprintln!("created token {} ({})", details.id, details.name);
                output::line(secret.expose())
            }
            Token::List(list) => output::list(
                &list,
                &s.app.tokens(&s.me).await?,
                None,
                &[
                    "id",
                    "name",
                    "permissions",
                    "product_id",
                    "expires",
                    "revoked",
                ],
            ),
            Token::Revoke { id } => output::json(&s.app.revoke_token(&s.me, id).await?),
        }
    }
}
