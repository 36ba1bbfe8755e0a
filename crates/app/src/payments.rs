//! The payment pipeline: applies provider-neutral payment events to licenses.
//!
//! Each event is applied in one transaction together with the record of the event itself, so a
//! redelivery finds it applied and changes nothing. Effects are keyed by the business object
//! (checkout session, invoice, order) because providers report one fact in several events.
//!
//! Money is exact whatever order the events arrive in:
//! - What a sale buys is decided by Keyturn's own record of a checkout it started, by the plan a
//!   vendor configured for a license URL, or by the price, variant and product ids actually
//!   purchased. Data the buyer can set (custom data, custom ids, metadata of checkouts Keyturn did
//!   not create) never picks a plan or a quantity.
//! - A subscription's record gathers what its events report; each part converges on its own
//!   (see [`Subscription`]). Its license is derived from the record after every event: it exists
//!   once a plan and some paid time are known (or a store order it adopts exists), runs to the end
//!   of the paid time plus the plan's grace days, and has the plan's shape. A reported period is
//!   never paid time: only payments and reports that attest payment extend it.
//! - A refund or dispute is kept even when it arrives before the payment it reverses, and a
//!   payment is checked against it whenever it is recorded or linked to a license.
//!
//! Work that must not interleave takes its locks in one order: the subscription, then the
//! reported object (invoice), then the payment references (intent, charge), then licenses.

use chrono::{DateTime, Utc};
use keyturn_core::payment::{PaymentEvent, PlanRef, QuantityMode};
use keyturn_core::provider::{EventEnvelope, EventOutcome, ProviderEventStatus, SubscriptionLabel};
use keyturn_core::AuditAction;
use keyturn_core::{License, Plan};
use keyturn_store::{IncomingEvent, NewLicense, Session, StoreError};

mod buyers;
mod money;
mod orders;
mod queries;
mod reversals;
mod subscriptions;

use crate::licenses::{insert_with_fresh_key, record};
use crate::{Actor, App, AppError, PaymentGateway, Result, SyncReport};

/// How many times an event that raced a concurrent one is applied before giving up.
const ATTEMPTS: u32 = 3;

struct Ctx<'a> {
    provider: &'a str,
    event_id: &'a str,
    created: DateTime<Utc>,
    actor: Actor,
    at: DateTime<Utc>,
    notify_buyer: bool,
    /// The portal's address key mails link to.
    portal: Option<&'a str>,
    subscription_label: SubscriptionLabel,
}

impl App {
    /// Applies a notification's events in order, each exactly once, and says what each did.
    /// `gateway` is the reporting provider's API, asked what a sale bought when its report does
    /// not say. On a failure (e.g. no plan sells the purchased price) nothing of that event is
    /// applied, it is kept as `failed` with the reason, a redelivery tries again, and the
    /// events after it wait for that redelivery.
    pub async fn apply_provider_events(
        &self,
        gateway: Option<&dyn PaymentGateway>,
        events: Vec<EventEnvelope>,
    ) -> Result<Vec<EventOutcome>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for mut envelope in events {
            if let Some(gateway) = gateway {
                complete(gateway, &mut envelope).await;
                self.adopt_cryptolens_prices(gateway, &envelope).await;
            }
            outcomes.push(self.apply_provider_event(&envelope).await?);
        }
        Ok(outcomes)
    }

    /// Fetches the events the provider reported since the newest one handled here and applies
    /// those that were missed, oldest first.
    pub async fn sync(&self, gateway: &dyn PaymentGateway) -> Result<SyncReport> {
        let provider = gateway.provider();
        let since = self
            .store
            .read()
            .await?
            .latest_handled_event(provider)
            .await?;
        let events = gateway.events_since(since, self.now()).await?;
        let mut report = SyncReport {
            fetched: events.len(),
            ..Default::default()
        };
        for mut envelope in events {
            if self
                .provider_event_handled(provider, &envelope.event_id)
                .await?
            {
                report.duplicates += 1;
                continue;
            }
            complete(gateway, &mut envelope).await;
            self.adopt_cryptolens_prices(gateway, &envelope).await;
            match self.apply_provider_event(&envelope).await {
                Ok(EventOutcome::Applied(_)) => report.applied += 1,
                Ok(EventOutcome::Ignored) => report.ignored += 1,
                Ok(EventOutcome::Duplicate) => report.duplicates += 1,
                Err(AppError::Store(e)) => return Err(AppError::Store(e)),
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }

    /// Applies one provider event exactly once, trying again when it raced another.
    pub(crate) async fn apply_provider_event(
        &self,
        envelope: &EventEnvelope,
    ) -> Result<EventOutcome> {
        let mut attempt = 1;
        loop {
            match self.apply_once(envelope).await {
                // Concurrent deliveries about one buyer or subscription (PostgreSQL): another
                // transaction committed a row this one was creating too; the next attempt
                // finds it.
                Err(AppError::Store(StoreError::Conflict(what))) if attempt < ATTEMPTS => {
                    tracing::debug!(provider = %envelope.provider, %what, attempt, "provider event raced another; trying again");
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn apply_once(&self, envelope: &EventEnvelope) -> Result<EventOutcome> {
        let at = self.now();
        let incoming = IncomingEvent {
            provider: &envelope.provider,
            event_id: &envelope.event_id,
            event_type: &envelope.event_type,
            created: envelope.created,
            payload: &envelope.payload,
        };
        let mut session = self.store.write().await?;
        if let Some(status) = session.claim_provider_event(&incoming, at).await? {
            if status.is_handled() {
                return Ok(EventOutcome::Duplicate);
            }
        }
        let ctx = Ctx {
            provider: &envelope.provider,
            event_id: &envelope.event_id,
            created: envelope.created,
            actor: Actor::ProviderEvent {
                provider: envelope.provider.clone(),
                event_id: envelope.event_id.clone(),
            },
            at,
            notify_buyer: envelope.notify_buyer,
            portal: self.portal_url(),
            subscription_label: envelope.subscription_label,
        };
        let applied = match envelope.event.clone() {
            None => Ok(None),
            Some(event) => apply(&mut session, &ctx, event).await.map(Some),
        };
        match applied {
            Ok(detail) => {
                let status = if detail.is_some() {
                    ProviderEventStatus::Applied
                } else {
                    ProviderEventStatus::Ignored
                };
                let detail = detail.unwrap_or_default();
                session
                    .finish_provider_event(ctx.provider, ctx.event_id, status, &detail)
                    .await?;
                session.commit().await?;
                // Neither the event id nor what it did: both can name a checkout, whose id
                // opens the page that shows its keys. They are kept in the event's record.
                tracing::info!(provider = ctx.provider, kind = %envelope.event_type, status = status.as_str(), "provider event");
                Ok(match status {
                    ProviderEventStatus::Applied => EventOutcome::Applied(detail),
                    _ => EventOutcome::Ignored,
                })
            }
            Err(e) => {
                drop(session);
                // Every event answered with an error is listed as failed with the reason,
                // unless the database cannot store anything now (the log says why).
                if !matches!(e, AppError::Store(StoreError::Unavailable(_))) {
                    let mut session = self.store.write().await?;
                    session
                        .record_failed_event(&incoming, &e.to_string(), at)
                        .await?;
                    // Announced when it first fails; the provider's redeliveries that fail
                    // again only count up its attempts.
                    if let Some(failed) = session
                        .provider_event(ctx.provider, ctx.event_id)
                        .await?
                        .filter(|f| f.attempts == 1)
                    {
                        crate::webhooks::emit::other(
                            &mut session,
                            keyturn_core::webhook::EventType::ProviderEventFailed,
                            &failed,
                            at,
                        )
                        .await?;
                    }
                    session.commit().await?;
                }
                tracing::warn!(provider = ctx.provider, kind = %envelope.event_type, error = %e, "provider event not applied");
                Err(e)
            }
        }
    }
}

/// A sale whose report names nothing purchased (a checkout's event does not list what was
/// bought): asks the provider what its order sold. A checkout Keyturn started is matched to its
/// record anyway, and an answer that does not come leaves the sale to fail with the reason.
async fn complete(gateway: &dyn PaymentGateway, envelope: &mut EventEnvelope) {
    let (order, plan, quantity) = match &mut envelope.event {
        Some(PaymentEvent::Purchased {
            order,
            plan,
            quantity,
            ..
        }) => (order.as_str(), plan, quantity),
        Some(PaymentEvent::SubscriptionStarted {
            order: Some(order),
            plan,
            quantity,
            ..
        }) => (order.as_str(), plan, quantity),
        _ => return,
    };
    if !plan.is_empty() || plan.configured.is_some() {
        return;
    }
    match gateway.line_items(order).await {
        Ok(Some(items)) => {
            plan.provider_ids = items.provider_ids;
            *quantity = items.quantity.max(1);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the checkout session's line items"),
    }
}

async fn apply(s: &mut Session, ctx: &Ctx<'_>, event: PaymentEvent) -> Result<String> {
    match event {
        PaymentEvent::Purchased {
            order,
            buyer,
            plan,
            quantity,
            money,
        } => orders::purchased(s, ctx, &order, &buyer, &plan, quantity, &money).await,
        PaymentEvent::SubscriptionStarted {
            subscription,
            order,
            buyer,
            plan,
            quantity,
            status,
            period_end,
            paid_through,
            money,
        } => {
            subscriptions::started(
                s,
                ctx,
                subscription,
                order,
                buyer,
                plan,
                quantity,
                status,
                period_end,
                paid_through,
                money,
            )
            .await
        }
        PaymentEvent::Renewed {
            subscription,
            invoice,
            buyer,
            plan,
            quantity,
            period_end,
            money,
        } => {
            subscriptions::renewed(
                s,
                ctx,
                subscription,
                invoice,
                buyer,
                plan,
                quantity,
                period_end,
                money,
            )
            .await
        }
        PaymentEvent::SubscriptionChanged {
            subscription,
            order,
            plan,
            quantity,
            status,
            cancel_at_period_end,
            period_end,
            paid_through,
        } => {
            subscriptions::changed(
                s,
                ctx,
                subscription,
                order,
                plan,
                quantity,
                status,
                cancel_at_period_end,
                period_end,
                paid_through,
            )
            .await
        }
        PaymentEvent::Cancelled {
            subscription,
            period_end,
        } => subscriptions::cancelled(s, ctx, subscription, period_end).await,
        PaymentEvent::PaymentFailed {
            subscription,
            invoice,
            money,
        } => subscriptions::payment_failed(s, ctx, subscription, invoice, money).await,
        PaymentEvent::Reversed { reversal, money } => {
            reversals::reversed(s, ctx, reversal, &money).await
        }
        PaymentEvent::InvoiceSettled { invoice, money } => {
            money::invoice_settled(s, ctx, invoice, money).await
        }
    }
}

fn machines(plan: &Plan, quantity: i64) -> i64 {
    match plan.quantity_mode {
        QuantityMode::Seats => plan.max_machines.saturating_mul(quantity.max(1)),
        QuantityMode::Keys => plan.max_machines,
    }
}

/// The pipeline's licenses are written here only, each with its audit entry under the event:
/// a new one, issued.
async fn issue(
    s: &mut Session,
    ctx: &Ctx<'_>,
    new: NewLicense,
    details: serde_json::Value,
) -> Result<License> {
    let license = insert_with_fresh_key(s, new, ctx.at).await?;
    record(
        s,
        license.id,
        &ctx.actor,
        AuditAction::Created,
        details,
        ctx.at,
    )
    .await?;
    Ok(license)
}

/// A changed license, saved with its audit entry under the event.
async fn save(
    s: &mut Session,
    ctx: &Ctx<'_>,
    license: &License,
    action: AuditAction,
    details: serde_json::Value,
) -> Result<()> {
    s.update_license(license, ctx.at).await?;
    record(s, license.id, &ctx.actor, action, details, ctx.at).await
}

/// The plan a sale buys, by what was purchased: the plans that sell the most specific purchased
/// id any plan sells. A hint (a plan id from data the buyer can set) may choose among those,
/// never add one: a buyer never picks a plan the price they paid does not sell.
async fn resolve_plan(s: &mut Session, plan_ref: &PlanRef) -> Result<Plan> {
    let plans = s.plans(None).await?;
    for id in &plan_ref.provider_ids {
        let sellers: Vec<&Plan> = plans
            .iter()
            .filter(|p| p.stripe_price_ids.contains(id) || p.store_product_ids.contains(id))
            .collect();
        match sellers.as_slice() {
            [] => continue,
            [one] => return Ok((*one).clone()),
            several => {
                if let Some(chosen) = plan_ref
                    .hint
                    .and_then(|h| several.iter().find(|p| p.id == h))
                {
                    return Ok((*chosen).clone());
                }
                let ids: Vec<i64> = several.iter().map(|p| p.id).collect();
                return Err(AppError::invalid(
                    "plan",
                    format!("{id} is sold by plans {ids:?}: list it on one plan only"),
                ));
            }
        }
    }
    Err(AppError::invalid(
        "plan",
        if plan_ref.provider_ids.is_empty() {
            "the sale names no price or product id, and is not a checkout Keyturn started; \
             a plan id in data the buyer can set is not enough"
                .to_owned()
        } else {
            format!(
                "no plan lists any of the purchased ids {:?} in stripe_price_ids or store_product_ids",
                plan_ref.provider_ids
            )
        },
    ))
}

/// The plan and quantity an event names, when it names what was purchased.
async fn shape_of(s: &mut Session, plan: &PlanRef, quantity: i64) -> Result<Option<(i64, i64)>> {
    if plan.is_empty() {
        return Ok(None);
    }
    Ok(Some((resolve_plan(s, plan).await?.id, quantity.max(1))))
}
