//! Stripe prices set up the Cryptolens way (`skm_product_id` on the Stripe product, `skm`
//! `CreateKey` parameters on the price; [`keyturn_core::skm`]), as an alternative to naming
//! prices on plans.
//!
//! The first time such a price is sold, it becomes a plan: one that lists the price and has
//! the metadata's terms. From then on the price is a plan's like any other, so renewals,
//! upgrades, refunds and disputes find it the same way, and the vendor can see and adjust it
//! (name, grace days, dunning). The metadata is the vendor's, set on Stripe's side, never the
//! buyer's: it picks a plan as a price named on a plan would.

use keyturn_core::payment::{PaymentEvent, PlanRef};
use keyturn_core::provider::EventEnvelope;
use keyturn_core::skm::SkmTerms;
use keyturn_core::{MachineLimit, PeriodDays, Plan};
use keyturn_store::NewPlan;

use crate::catalog::{product_features, DEFAULT_GRACE_DAYS};
use crate::{App, AppError, PaymentGateway, Result};

/// What an event says was bought, when it names what was purchased.
fn bought(event: Option<&PaymentEvent>) -> Option<&PlanRef> {
    match event? {
        PaymentEvent::Purchased { plan, .. }
        | PaymentEvent::SubscriptionStarted { plan, .. }
        | PaymentEvent::Renewed { plan, .. }
        | PaymentEvent::SubscriptionChanged { plan, .. } => {
            Some(plan).filter(|p| !p.is_empty() && p.configured.is_none())
        }
        _ => None,
    }
}

impl App {
    /// Before an event is applied: when what it bought is sold by no plan, asks the provider
    /// whether a purchased price is set up the Cryptolens way and makes it a plan. Failures are
    /// logged, not returned: the event then fails as for any price no plan sells, with the
    /// reason, and a redelivery tries again.
    pub(crate) async fn adopt_cryptolens_prices(
        &self,
        gateway: &dyn PaymentGateway,
        envelope: &EventEnvelope,
    ) {
        let Some(plan) = bought(envelope.event.as_ref()) else {
            return;
        };
        match self.plan_sells_any(&plan.provider_ids).await {
            Ok(false) => {}
            Ok(true) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for a plan that sells the purchased price");
                return;
            }
        }
        match gateway.cryptolens_terms(&plan.provider_ids).await {
            Ok(Some((price, terms))) => {
                if let Err(e) = self.adopt_skm_price(&price, &terms).await {
                    tracing::warn!(error = %e, %price, "a price's Cryptolens metadata names no plan this server can make");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the purchased price's metadata"),
        }
    }

    /// Whether a plan sells one of `ids` (Stripe price, plan or product ids).
    pub async fn plan_sells_any(&self, ids: &[String]) -> Result<bool> {
        let plans = self.store.read().await?.plans(None).await?;
        Ok(plans
            .iter()
            .any(|p| p.stripe_price_ids.iter().any(|id| ids.contains(id))))
    }

    /// The plan that sells Stripe price `price_id` on the terms its metadata gives: the one
    /// made when it was first sold, or a new one. The product is the one imported from
    /// Cryptolens under the metadata's product id, or else this server's product with that id.
    pub async fn adopt_skm_price(&self, price_id: &str, terms: &SkmTerms) -> Result<Plan> {
        PeriodDays::parse_optional(terms.period_days)?;
        MachineLimit::parse(terms.max_machines)?;
        let mut session = self.store.write().await?;
        // Deliveries about one sale arrive together: one of them makes the plan.
        session
            .lock_name(&format!("stripe price {price_id}"))
            .await?;
        if let Some(plan) = session
            .plans(None)
            .await?
            .into_iter()
            .find(|p| p.stripe_price_ids.iter().any(|id| id == price_id))
        {
            return Ok(plan);
        }
        let source_id = terms.product_id.to_string();
        let product_id = match session
            .imported_from_any("cryptolens", "product", &source_id)
            .await?
            .as_slice()
        {
            [one] => *one,
            [] => terms.product_id,
            several => {
                return Err(AppError::invalid(
                    "skm_product_id",
                    format!(
                        "Cryptolens product {source_id} was imported into products {several:?}; \
                         name the product on a plan instead"
                    ),
                ))
            }
        };
        let product = session.product(product_id).await?.ok_or_else(|| {
            AppError::invalid(
                "skm_product_id",
                format!(
                    "Stripe price {price_id} names product {source_id}, which is neither a \
                     product imported from Cryptolens nor a product here"
                ),
            )
        })?;
        let wanted: Vec<String> = (0..8)
            .filter(|i| terms.features[*i])
            .map(|i| {
                product.features.get(i).cloned().ok_or_else(|| {
                    AppError::invalid(
                        "skm",
                        format!(
                            "F{} is asked for, but product {} has {} features",
                            i + 1,
                            product.id,
                            product.features.len()
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let features = product_features(&product, &wanted)?;
        let plan = session
            .insert_plan(
                &NewPlan {
                    product_id: product.id,
                    name: format!("Stripe {price_id}"),
                    period_days: terms.period_days,
                    features,
                    max_machines: terms.max_machines,
                    floating_lease_seconds: None,
                    trial: false,
                    grace_days: DEFAULT_GRACE_DAYS,
                    stripe_price_ids: vec![price_id.to_owned()],
                    store_product_ids: Vec::new(),
                    quantity_mode: Default::default(),
                    dunning: Default::default(),
                    on_cancel: Default::default(),
                    buyers: Default::default(),
                },
                self.now(),
            )
            .await?;
        session.commit().await?;
        tracing::info!(plan.id = plan.id, %price_id, "a Stripe price with Cryptolens metadata became a plan");
        Ok(plan)
    }
}
