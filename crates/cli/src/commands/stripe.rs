use anyhow::Context as _;
use clap::Subcommand;

use crate::config::providers::StripeApiArgs;
use crate::output;

use super::Context;

#[derive(Subcommand)]
pub enum Stripe {
    /// Fetch the events Stripe sent since the last one seen and apply any that were missed.
    Sync(StripeApiArgs),
}

impl Stripe {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self {
            Stripe::Sync(api) => {
                let api = api
                    .client()
                    .context("Stripe is not configured (set KEYTURN_STRIPE_API_KEY)")?;
                let s = ctx.app().await?;
                let gateway = keyturn_http::StripeGateway(Some(api));
                output::json(&s.app.sync(&gateway).await?)
            }
        }
    }
}
