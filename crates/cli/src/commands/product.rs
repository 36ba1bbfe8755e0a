use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use keyturn_app::{NewProductInput, ProductPatch};

use crate::output::{self, ListArgs};

use super::Context;

#[derive(Subcommand)]
pub enum Product {
    Create {
        #[arg(long)]
        name: String,
        /// A feature name (repeat for several; order gives Cryptolens F1..F8).
        #[arg(long = "feature")]
        features: Vec<String>,
        /// On the Cryptolens API, answer expired licenses as blocked (Cryptolens's "block
        /// expired licenses"); otherwise they are returned and the program checks the expiry.
        #[arg(long)]
        block_expired_licenses: bool,
    },
    /// Change a product's settings.
    Update {
        id: i64,
        #[arg(long)]
        name: Option<String>,
        /// `true` or `false` (see `create`).
        #[arg(long)]
        block_expired_licenses: Option<bool>,
    },
    /// List the products.
    List(ListArgs),
    /// Replace the product's RSA key (the Cryptolens-compatible API's) with an existing key
    /// pair, so programs shipped with its public key keep verifying: a file holding the .NET
    /// <RSAKeyValue> XML with private parts, or a PEM private key (PKCS#1 or PKCS#8).
    ImportRsaKey { id: i64, file: PathBuf },
    /// Print a product's public key.
    PublicKey {
        id: i64,
        /// `ed25519` (base64; PEM on stderr) or `rsa-xml` (the <RSAKeyValue> the Cryptolens
        /// SDKs take).
        #[arg(long, default_value = "ed25519")]
        format: KeyFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum KeyFormat {
    Ed25519,
    RsaXml,
}

impl Product {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let s = ctx.app().await?;
        let (app, me) = (&s.app, &s.me);
        match self {
            Product::Create {
                name,
                features,
                block_expired_licenses,
            } => {
                let input = NewProductInput {
                    name,
                    features,
                    block_expired_licenses,
                    ..Default::default()
                };
                output::json(&app.create_product(me, input).await?)
            }
            Product::Update {
                id,
                name,
                block_expired_licenses,
            } => {
                let patch = ProductPatch {
                    name,
                    block_expired_licenses,
                    ..Default::default()
                };
                output::json(&app.update_product(me, id, patch).await?)
            }
            Product::List(list) => output::list(
                &list,
                &app.products(me).await?,
                None,
                &[
                    "id",
                    "name",
                    "features",
                    "block_expired_licenses",
                    "created",
                ],
            ),
            Product::ImportRsaKey { id, file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let public = app.import_rsa_key(me, id, &text).await?;
                eprintln!("product {id} now signs Cryptolens replies with the imported key");
                output::line(public.to_xml())
            }
            Product::PublicKey { id, format } => match format {
                KeyFormat::Ed25519 => {
                    let key = app.public_key(id).await?;
                    output::line(key.to_base64())?;
                    eprint!("{}", key.to_pem());
                    Ok(())
                }
                KeyFormat::RsaXml => output::line(app.rsa_public_key(id).await?.to_xml()),
            },
        }
    }
}
