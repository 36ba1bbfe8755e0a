use clap::Subcommand;
use keyturn_app::NewPlanInput;
use keyturn_core::payment::{CancelRule, DunningRule, QuantityMode};
use keyturn_core::BuyerRulesPatch;

use crate::output::{self, ListArgs};

use super::Context;

#[derive(Subcommand)]
pub enum Plan {
    Create(Box<NewPlan>),
    /// List the plans, of one product or all.
    List {
        #[arg(long)]
        product: Option<i64>,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(clap::Args)]
pub struct NewPlan {
    #[arg(long)]
    product: i64,
    #[arg(long)]
    name: String,
    /// Omit for a perpetual plan.
    #[arg(long)]
    period_days: Option<i64>,
    #[arg(long, default_value_t = 0)]
    max_machines: i64,
    #[arg(long = "feature")]
    features: Vec<String>,
    #[arg(long)]
    floating_lease_seconds: Option<i64>,
    #[arg(long)]
    trial: bool,
    #[arg(long)]
    grace_days: Option<i64>,
    /// Mail buyers this many days before a license that does not renew itself expires.
    #[arg(long)]
    expiry_reminder_days: Option<i64>,
    /// A Stripe price, plan or product id that buys this plan (repeat for several).
    #[arg(long = "stripe-price")]
    stripe_price_ids: Vec<String>,
    /// Another store's product id, prefixed with the store (`paddle:pri_…`, repeat for several).
    #[arg(long = "store-product")]
    store_product_ids: Vec<String>,
    /// A quantity above one buys that many keys, or one key with that many seats.
    #[arg(long, value_enum, default_value = "keys")]
    quantity_mode: QuantityArg,
    /// When a subscription is overdue: keep the license until it expires, or block it.
    #[arg(long, value_enum, default_value = "keep")]
    dunning: DunningArg,
    /// When a subscription is cancelled: block at once, or let it expire.
    #[arg(long, value_enum, default_value = "block")]
    on_cancel: CancelArg,
    /// Whether buyers may free a machine in the customer portal (default true).
    #[arg(long)]
    buyers_may_free_machines: Option<bool>,
    /// Machines a buyer may free per license within --buyer-frees-days (default 3).
    #[arg(long)]
    buyer_frees_max: Option<i64>,
    /// The window frees are counted in, in days (default 30).
    #[arg(long)]
    buyer_frees_days: Option<i64>,
    /// Whether buyers may download an offline license file in the portal (default false).
    #[arg(long)]
    buyers_may_download_files: Option<bool>,
    /// Days such a file lasts, never past the license's expiry (default 30).
    #[arg(long)]
    buyer_file_days: Option<i64>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum QuantityArg {
    Keys,
    Seats,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DunningArg {
    Keep,
    Block,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CancelArg {
    Block,
    Expire,
}

impl NewPlan {
    fn input(self) -> NewPlanInput {
        NewPlanInput {
            product_id: self.product,
            name: self.name,
            period_days: self.period_days,
            features: self.features,
            max_machines: self.max_machines,
            floating_lease_seconds: self.floating_lease_seconds,
            trial: self.trial,
            grace_days: self.grace_days,
            stripe_price_ids: self.stripe_price_ids,
            store_product_ids: self.store_product_ids,
            quantity_mode: match self.quantity_mode {
                QuantityArg::Keys => QuantityMode::Keys,
                QuantityArg::Seats => QuantityMode::Seats,
            },
            dunning: match self.dunning {
                DunningArg::Keep => DunningRule::Keep,
                DunningArg::Block => DunningRule::Block,
            },
            on_cancel: match self.on_cancel {
                CancelArg::Block => CancelRule::Block,
                CancelArg::Expire => CancelRule::Expire,
            },
            buyers: BuyerRulesPatch {
                buyers_may_free_machines: self.buyers_may_free_machines,
                buyer_frees_max: self.buyer_frees_max,
                buyer_frees_days: self.buyer_frees_days,
                buyers_may_download_files: self.buyers_may_download_files,
                buyer_file_days: self.buyer_file_days,
            },
            expiry_reminder_days: self.expiry_reminder_days,
        }
    }
}

impl Plan {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let s = ctx.app().await?;
        match self {
            Plan::Create(new) => output::json(&s.app.create_plan(&s.me, new.input()).await?),
            Plan::List { product, list } => output::list(
                &list,
                &s.app.plans(&s.me, product).await?,
                None,
                &[
                    "id",
                    "product_id",
                    "name",
                    "period_days",
                    "max_machines",
                    "features",
                    "trial",
                ],
            ),
        }
    }
}
