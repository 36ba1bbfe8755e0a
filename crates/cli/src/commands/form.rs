use anyhow::Context as _;
use clap::Subcommand;
use keyturn_core::payment::{Offer, OfferMode};

use crate::config::providers::{PaypalApiArgs, StripeApiArgs};
use crate::config::PublicUrlArgs;
use crate::output::{self, ListArgs};

use super::Context;

#[derive(Subcommand)]
pub enum Form {
    /// Create a form and print its path.
    Create(Box<NewForm>),
    /// List the payment forms.
    List(ListArgs),
}

#[derive(clap::Args)]
pub struct NewForm {
    #[arg(long)]
    product: i64,
    #[arg(long)]
    name: String,
    /// An offer as plan_id:stripe_price_id:mode:label:price, e.g.
    /// `2:price_1Pro:subscription:Pro monthly:€15 / month` (repeat for several).
    #[arg(long = "offer", required = true, value_parser = parse_offer)]
    offers: Vec<Offer>,
    /// What is sold, shown on the buy page.
    #[arg(long)]
    description: Option<String>,
    /// Shown under the prices, e.g. "Prices include VAT".
    #[arg(long)]
    tax_note: Option<String>,
    #[arg(long)]
    success_text: Option<String>,
    // The form is checked against the settings `serve` runs with.
    #[command(flatten)]
    public: PublicUrlArgs,
    #[command(flatten)]
    stripe: StripeApiArgs,
    #[command(flatten)]
    paypal: PaypalApiArgs,
}

fn parse_offer(s: &str) -> anyhow::Result<Offer> {
    let parts: Vec<&str> = s.splitn(5, ':').collect();
    anyhow::ensure!(
        parts.len() == 5,
        "an offer is plan_id:stripe_price_id:mode:label:price, not {s:?}"
    );
    Ok(Offer {
        plan_id: parts[0].trim().parse().context("the offer's plan id")?,
        stripe_price_id: parts[1].trim().into(),
        mode: OfferMode::parse(parts[2].trim())
            .context("the offer's mode is payment or subscription")?,
        label: parts[3].trim().into(),
        price: parts[4].trim().into(),
        paypal_amount: None,
        currency: None,
    })
}

impl Form {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let s = ctx.app().await?;
        match self {
            Form::Create(new) => {
                let NewForm {
                    product,
                    name,
                    offers,
                    description,
                    tax_note,
                    success_text,
                    public,
                    stripe,
                    paypal,
                } = *new;
                let setup = keyturn_app::PaymentSetup {
                    stripe: stripe.client().is_some(),
                    paypal: paypal.is_set(),
                    public_url: public.is_set(),
                };
                let new = keyturn_app::NewPaymentForm {
                    name,
                    product_id: product,
                    offers,
                    description,
                    tax_note,
                    success_text,
                    ..Default::default()
                };
                let form = s.app.create_payment_form(&s.me, new, setup).await?;
                eprintln!("payment form {} ({})", form.id, form.name);
                output::line(format!("/buy/{}", form.public_id))
            }
            Form::List(list) => output::list(
                &list,
                &s.app.payment_forms(&s.me).await?,
                None,
                &["id", "name", "product_id", "public_id", "created"],
            ),
        }
    }
}
