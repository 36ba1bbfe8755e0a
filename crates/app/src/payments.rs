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
use keyturn_core::payment::{
    format_hundredths, paid_expiry, Buyer, CancelRule, DunningRule, Money, Payment, PaymentEvent,
    PlanRef, ProviderEvent, QuantityMode, Reversal, Subscription, SubscriptionStatus,
};
use keyturn_core::provider::{EventEnvelope, EventOutcome, SubscriptionLabel};
use keyturn_core::{Email, License, Permission, Plan};
use keyturn_store::{IncomingEvent, NewPayment, Session, StoreError};
use serde_json::json;

use crate::licenses::{insert_with_fresh_key, license_from_plan, record};
use crate::{
    Actor, App, AppError, Page, PageRequest, PaymentGateway, Principal, Result, SyncReport,
};

/// How many times an event that raced a concurrent one is applied before giving up.
const ATTEMPTS: u32 = 3;

struct Ctx<'a> {
    provider: &'a str,
    event_id: &'a str,
    created: DateTime<Utc>,
    actor: Actor,
    at: DateTime<Utc>,
    notify_buyer: bool,
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
            if status == "applied" || status == "ignored" {
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
            subscription_label: envelope.subscription_label,
        };
        let applied = match envelope.event.clone() {
            None => Ok(None),
            Some(event) => apply(&mut session, &ctx, event).await.map(Some),
        };
        match applied {
            Ok(detail) => {
                let status = if detail.is_some() {
                    "applied"
                } else {
                    "ignored"
                };
                let detail = detail.unwrap_or_default();
                session
                    .finish_provider_event(ctx.provider, ctx.event_id, status, &detail)
                    .await?;
                session.commit().await?;
                // Neither the event id nor what it did: both can name a checkout, whose id
                // opens the page that shows its keys. They are kept in the event's record.
                tracing::info!(provider = ctx.provider, kind = %envelope.event_type, status, "provider event");
                Ok(match status {
                    "applied" => EventOutcome::Applied(detail),
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
                    session.commit().await?;
                }
                tracing::warn!(provider = ctx.provider, kind = %envelope.event_type, error = %e, "provider event not applied");
                Err(e)
            }
        }
    }

    pub async fn payments(
        &self,
        principal: &Principal,
        license_id: Option<i64>,
        page: &PageRequest,
    ) -> Result<Page<Payment>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let (after, limit) = page.resolve()?;
        let rows = self
            .store
            .read()
            .await?
            .payments(license_id, after, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |p| p.id))
    }

    pub async fn payment(&self, principal: &Principal, id: i64) -> Result<Payment> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        self.store
            .read()
            .await?
            .payment(id)
            .await?
            .ok_or(AppError::NotFound("payment"))
    }

    /// Newest first. The cursor is the provider time (ms) of the last event of the previous page.
    pub async fn provider_events(
        &self,
        principal: &Principal,
        provider: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ProviderEvent>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let (before, limit) = page.resolve()?;
        let rows = self
            .store
            .read()
            .await?
            .provider_events(provider, before, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |e| {
            e.created.timestamp_millis()
        }))
    }

    pub async fn provider_event(
        &self,
        principal: &Principal,
        provider: &str,
        event_id: &str,
    ) -> Result<ProviderEvent> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        self.store
            .read()
            .await?
            .provider_event(provider, event_id)
            .await?
            .ok_or(AppError::NotFound("provider event"))
    }

    /// A provider's subscription as Keyturn last recorded it.
    pub async fn subscription(
        &self,
        principal: &Principal,
        provider: &str,
        subscription_id: &str,
    ) -> Result<Subscription> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        self.store
            .read()
            .await?
            .subscription(provider, subscription_id)
            .await?
            .ok_or(AppError::NotFound("subscription"))
    }

    /// Whether an event is already handled (sync skips those without fetching more).
    async fn provider_event_handled(&self, provider: &str, event_id: &str) -> Result<bool> {
        Ok(self
            .store
            .read()
            .await?
            .provider_event(provider, event_id)
            .await?
            .is_some_and(|e| e.status == "applied" || e.status == "ignored"))
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
        } => purchased(s, ctx, &order, &buyer, &plan, quantity, &money).await,
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
            let mut sub = s
                .claim_subscription(ctx.provider, &subscription, ctx.at)
                .await?;
            lock_money(s, ctx, &money).await?;
            let customer_id = customer(s, &buyer, ctx.at).await?;
            // A checkout Keyturn started says what it sells; otherwise the purchased ids do.
            let shape = match checkout_of(s, ctx, order.as_deref()).await? {
                Some(c) => Some((c.plan_id, c.quantity)),
                None => shape_of(s, &plan, quantity).await?,
            };
            let report = Report {
                shape,
                status: Some(status),
                cancel_at_period_end: Some(false),
                period_end,
                paid_through,
                order: order.as_deref(),
                ..Report::default()
            };
            observe(&mut sub, ctx, &report);
            sub.customer_id = sub.customer_id.or(customer_id);
            let mut recorded = None;
            if let Some(order) = &order {
                let mut p = new_payment(ctx, "order", order, "paid", &sub, &money);
                p.plan_id = shape.map(|(plan, _)| plan).or(sub.plan_id);
                let (mut payment, new) = s.upsert_payment(&p, ctx.at).await?;
                if !new && fill_money(&mut payment, &money) {
                    s.update_payment(&payment, ctx.at).await?;
                }
                recorded = Some(payment);
            }
            let mut detail = settle(s, ctx, &mut sub, &buyer, recorded).await?;
            detail.insert_str(0, &format!("subscription {subscription}"));
            s.update_subscription(&sub, ctx.at).await?;
            Ok(detail)
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
            let mut sub = s
                .claim_subscription(ctx.provider, &subscription, ctx.at)
                .await?;
            let money = with_link(s, ctx, "invoice", &invoice, money).await?;
            lock_money(s, ctx, &money).await?;
            let (mut payment, new) = s
                .upsert_payment(
                    &new_payment(ctx, "invoice", &invoice, "paid", &sub, &money),
                    ctx.at,
                )
                .await?;
            if !new && payment.status != "failed" {
                return Ok(format!("invoice {invoice} was already applied"));
            }
            let customer_id = customer(s, &buyer, ctx.at).await?;
            let shape = shape_of(s, &plan, quantity).await?;
            // An invoice says nothing about the subscription's status, only that it is paid,
            // and for which period.
            let report = Report {
                shape,
                period_end,
                paid_through: period_end,
                paid: true,
                ..Report::default()
            };
            observe(&mut sub, ctx, &report);
            sub.customer_id = sub.customer_id.or(customer_id);
            payment.status = "paid".into();
            payment.customer_id = payment.customer_id.or(customer_id);
            payment.plan_id = shape.map(|(plan, _)| plan).or(sub.plan_id);
            payment.event_id = ctx.event_id.to_owned();
            fill_money(&mut payment, &money);
            s.update_payment(&payment, ctx.at).await?;
            let mut detail = settle(s, ctx, &mut sub, &buyer, Some(payment)).await?;
            detail.insert_str(
                0,
                &format!("invoice {invoice} of subscription {subscription}"),
            );
            s.update_subscription(&sub, ctx.at).await?;
            Ok(detail)
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
            let mut sub = s
                .claim_subscription(ctx.provider, &subscription, ctx.at)
                .await?;
            let report = Report {
                shape: shape_of(s, &plan, quantity).await?,
                status: Some(status),
                cancel_at_period_end: Some(cancel_at_period_end),
                period_end,
                paid_through,
                order: order.as_deref(),
                ..Report::default()
            };
            observe(&mut sub, ctx, &report);
            let mut detail = settle(s, ctx, &mut sub, &Buyer::default(), None).await?;
            detail.insert_str(0, &format!("subscription {subscription}"));
            s.update_subscription(&sub, ctx.at).await?;
            Ok(detail)
        }
        PaymentEvent::Cancelled {
            subscription,
            period_end,
        } => {
            let mut sub = s
                .claim_subscription(ctx.provider, &subscription, ctx.at)
                .await?;
            // An ended subscription stays ended whatever report arrives after this one, so the
            // cancellation needs no place among the dated reports.
            let report = Report {
                ended: true,
                period_end,
                ..Report::default()
            };
            observe(&mut sub, ctx, &report);
            let mut detail = settle(s, ctx, &mut sub, &Buyer::default(), None).await?;
            detail.insert_str(0, &format!("subscription {subscription} ended"));
            s.update_subscription(&sub, ctx.at).await?;
            Ok(detail)
        }
        PaymentEvent::PaymentFailed {
            subscription,
            invoice,
            money,
        } => {
            let mut p = new_payment_fields(ctx, "invoice", &invoice, "failed", &money);
            p.subscription_id = subscription;
            let (payment, new) = s.upsert_payment(&p, ctx.at).await?;
            Ok(if new {
                format!(
                    "payment of invoice {invoice} failed (payment {}); license not extended",
                    payment.id
                )
            } else {
                format!("invoice {invoice} already recorded as {}", payment.status)
            })
        }
        PaymentEvent::Reversed { reversal, money } => reversed(s, ctx, reversal, &money).await,
        PaymentEvent::InvoiceSettled { invoice, money } => {
            s.lock_name(&object_lock(ctx, "invoice", &invoice)).await?;
            lock_money(s, ctx, &money).await?;
            s.insert_payment_link(
                ctx.provider,
                "invoice",
                &invoice,
                money.payment_intent.as_deref(),
                money.charge.as_deref(),
                ctx.at,
            )
            .await?;
            let Some(mut payment) = s.payment_for(ctx.provider, "invoice", &invoice).await? else {
                return Ok(format!(
                    "invoice {invoice} is settled; its payment is linked when it arrives"
                ));
            };
            if fill_money(&mut payment, &money) {
                s.update_payment(&payment, ctx.at).await?;
            }
            let reversed = reverse_if_reported(s, ctx, &payment).await?;
            Ok(format!(
                "invoice {invoice} (payment {}) settled{reversed}",
                payment.id
            ))
        }
    }
}

/// What one event reports about a subscription.
#[derive(Default)]
struct Report<'a> {
    /// The plan and quantity it names, resolved.
    shape: Option<(i64, i64)>,
    /// The subscription's status, from a report of the subscription itself.
    status: Option<SubscriptionStatus>,
    cancel_at_period_end: Option<bool>,
    /// The subscription has ended (whenever that was reported).
    ended: bool,
    period_end: Option<DateTime<Utc>>,
    /// Paid up to this time.
    paid_through: Option<DateTime<Utc>>,
    /// The event is a payment.
    paid: bool,
    /// The store order that started the subscription.
    order: Option<&'a str>,
}

/// An ended status is final; between two ended statuses a cancellation wins, so the record says
/// the same whichever arrived first.
fn ended_status(current: SubscriptionStatus, reported: SubscriptionStatus) -> SubscriptionStatus {
    if current.is_ended() && (current == SubscriptionStatus::Canceled || !reported.is_ended()) {
        current
    } else {
        reported
    }
}

/// Adds what an event reports to the subscription's record. Every part converges whatever order
/// the reports arrive in: dated parts keep the newest report, the rest only ever grow.
fn observe(sub: &mut Subscription, ctx: &Ctx<'_>, report: &Report<'_>) {
    if let Some((plan, quantity)) = report.shape {
        if sub.plan_id.is_none() || sub.is_newer_shape(ctx.created, ctx.event_id) {
            sub.plan_id = Some(plan);
            sub.quantity = quantity.max(1);
            sub.shape_at = ctx.created;
            sub.shape_event = ctx.event_id.to_owned();
        }
    }
    if let Some(status) = report.status {
        if sub.is_newer_state(ctx.created, ctx.event_id) {
            if let Some(c) = report.cancel_at_period_end {
                sub.cancel_at_period_end = c;
            }
            sub.state_at = ctx.created;
            sub.state_event = ctx.event_id.to_owned();
            sub.status = ended_status(sub.status, status);
        } else if status.is_ended() {
            sub.status = ended_status(sub.status, status);
        }
    }
    if report.ended {
        sub.status = ended_status(sub.status, SubscriptionStatus::Canceled);
    }
    let later = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| a.max(b);
    sub.period_end = later(sub.period_end, report.period_end);
    sub.paid_through = later(sub.paid_through, report.paid_through);
    if report.paid {
        sub.paid_at = later(sub.paid_at, Some(ctx.created));
    }
    if sub.order_id.is_none() {
        sub.order_id = report.order.map(str::to_owned);
    }
}

/// Brings the subscription's license in line with its record: adopts the store order's license
/// or issues one once there is something to issue, then gives it the plan's shape, the paid
/// time and the status rules. `payment` is the payment this event recorded.
async fn settle(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &mut Subscription,
    buyer: &Buyer,
    payment: Option<Payment>,
) -> Result<String> {
    let mut detail = String::new();
    let mut license = match sub.license_id {
        Some(id) => s.lock_license(id).await?,
        None => None,
    };
    let mut attached = false;
    if license.is_none() {
        license = adopt_order_license(s, ctx, sub).await?;
        if let Some(l) = &license {
            detail.push_str(&format!(" adopted the order's license {}", l.id));
            attached = true;
        }
    }
    let plan = match sub.plan_id {
        Some(id) => s.plan(id).await?,
        None => None,
    };
    let Some(plan) = plan else {
        detail.push_str(": waiting for an event that names what it sells");
        return Ok(detail);
    };
    if license.is_none() {
        if let Some(paid) = sub.paid_through {
            let l = issue_subscription_license(s, ctx, sub, &plan, paid).await?;
            detail.push_str(&format!(" → license {}", l.id));
            detail.push_str(&notify(s, ctx, buyer, &l, sub.order_id.as_deref()).await?);
            license = Some(l);
            attached = true;
        }
    }
    let Some(mut license) = license else {
        detail.push_str(": waiting for its first payment");
        return Ok(detail);
    };
    sub.license_id = Some(license.id);
    if !attached {
        detail.push_str(&format!(" (license {})", license.id));
    }

    if license.customer_id.is_none() && sub.customer_id.is_some() {
        license.customer_id = sub.customer_id;
        save(
            s,
            ctx,
            &license,
            "customer_changed",
            json!({"customer_id": sub.customer_id}),
        )
        .await?;
    }
    detail.push_str(&align_shape(s, ctx, sub, &plan, &mut license).await?);
    detail.push_str(&align_expiry(s, ctx, sub, &plan, &mut license).await?);
    detail.push_str(&enforce_status(s, ctx, sub, &plan, &mut license).await?);

    // Payments that arrived before the license existed buy it too, and may have been reversed.
    let payments = if attached {
        s.link_subscription_payments(ctx.provider, &sub.subscription_id, license.id)
            .await?
    } else if let Some(p) = payment.filter(|p| p.status != "failed") {
        s.link_payment_license(p.id, license.id).await?;
        vec![p]
    } else {
        Vec::new()
    };
    for p in payments {
        detail.push_str(&reverse_if_reported(s, ctx, &p).await?);
    }
    Ok(detail)
}

/// The subscription's license carries its current plan's features and limits.
async fn align_shape(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &Subscription,
    plan: &Plan,
    license: &mut License,
) -> Result<String> {
    let max_machines = machines(plan, sub.quantity);
    if license.plan_id == Some(plan.id)
        && license.features == plan.features
        && license.max_machines == max_machines
        && license.floating_lease_seconds == plan.floating_lease_seconds
    {
        return Ok(String::new());
    }
    let from = json!({"plan_id": license.plan_id, "features": license.features, "max_machines": license.max_machines});
    license.plan_id = Some(plan.id);
    license.features = plan.features.clone();
    license.max_machines = max_machines;
    license.floating_lease_seconds = plan.floating_lease_seconds;
    let to = json!({"plan_id": license.plan_id, "features": license.features, "max_machines": license.max_machines});
    save(
        s,
        ctx,
        license,
        "plan_changed",
        json!({"from": from, "to": to}),
    )
    .await?;
    Ok(format!(
        "; now plan {} with {} seat(s)",
        plan.id, sub.quantity
    ))
}

/// The subscription's license runs to the end of its paid time plus the plan's grace days:
/// derived from the record, never from the last event alone, so no delivery order licenses
/// more (or less) than was paid for. What a vendor added by hand stands (see
/// [`Subscription::license_expiry`]).
async fn align_expiry(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &mut Subscription,
    plan: &Plan,
    license: &mut License,
) -> Result<String> {
    let Some(expiry) = sub.license_expiry(license.expires, plan.grace_days)? else {
        return Ok(String::new());
    };
    sub.license_expires = Some(expiry.paid);
    let to = expiry.expires;
    let from = license.expires;
    if from == Some(to) {
        return Ok(String::new());
    }
    license.expires = Some(to);
    let action = if from.is_some_and(|f| f < to) {
        "renewed"
    } else {
        "expiry_changed"
    };
    save(
        s,
        ctx,
        license,
        action,
        json!({"paid_through": sub.paid_through, "from": from, "to": to}),
    )
    .await?;
    Ok(format!("; license {} runs until {to}", license.id))
}

/// Applies the plan's dunning and cancellation rules to the subscription's record. The block
/// these rules put there follows the record (and the current plan's rules) whatever order the
/// events came in; it is lifted only when they no longer call for it, and never from a license
/// a vendor blocked or whose payment was refunded or disputed.
async fn enforce_status(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &mut Subscription,
    plan: &Plan,
    license: &mut License,
) -> Result<String> {
    let ended = sub.status.is_ended();
    let cancelled = ended && plan.on_cancel == CancelRule::Block;
    let overdue = !ended && plan.dunning == DunningRule::Block && sub.overdue();
    if cancelled || overdue {
        if license.blocked {
            return Ok(String::new());
        }
        license.blocked = true;
        sub.dunning_blocked = true;
        let (reason, detail) = if cancelled {
            (
                "subscription cancelled",
                "; blocked: subscription cancelled".to_owned(),
            )
        } else {
            (
                "payment overdue",
                format!("; blocked: subscription {}", sub.status.as_str()),
            )
        };
        save(s, ctx, license, "blocked", json!({"reason": reason, "subscription": sub.subscription_id, "status": sub.status.as_str()})).await?;
        return Ok(detail);
    }
    let mut detail = String::new();
    if ended {
        detail.push_str("; subscription cancelled: the license runs out at its expiry");
    }
    if sub.dunning_blocked {
        sub.dunning_blocked = false;
        if license.blocked && !s.license_reversed(license.id).await? {
            license.blocked = false;
            let reason = if ended {
                "runs out at its expiry"
            } else {
                "payment received"
            };
            save(
                s,
                ctx,
                license,
                "unblocked",
                json!({"reason": reason, "subscription": sub.subscription_id}),
            )
            .await?;
            detail.push_str(&format!("; unblocked: {reason}"));
        }
    }
    Ok(detail)
}

fn machines(plan: &Plan, quantity: i64) -> i64 {
    match plan.quantity_mode {
        QuantityMode::Seats => plan.max_machines.saturating_mul(quantity.max(1)),
        QuantityMode::Keys => plan.max_machines,
    }
}

async fn issue_subscription_license(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &Subscription,
    plan: &Plan,
    paid_through: DateTime<Utc>,
) -> Result<License> {
    let mut new = license_from_plan(plan, ctx.at);
    new.customer_id = sub.customer_id;
    new.max_machines = machines(plan, sub.quantity);
    new.metadata = subscription_metadata(ctx, sub);
    new.expires = Some(paid_expiry(paid_through, plan.grace_days)?);
    let license = insert_with_fresh_key(s, new, ctx.at).await?;
    s.set_license_subscription(license.id, &sub.subscription_id)
        .await?;
    record(
        s,
        license.id,
        &ctx.actor,
        "created",
        json!({"subscription": sub.subscription_id, "plan_id": plan.id, "expires": license.expires, "max_machines": license.max_machines}),
        ctx.at,
    )
    .await?;
    Ok(license)
}

async fn product_name(s: &mut Session, product_id: i64) -> Result<String> {
    Ok(s.product(product_id)
        .await?
        .map(|p| p.name)
        .unwrap_or_else(|| "your software".into()))
}

/// A payment form's mail, when the sale was a checkout started on one.
async fn form_template(s: &mut Session, order: &str) -> Result<Option<(String, String)>> {
    let Some(checkout) = s.checkout(order).await? else {
        return Ok(None);
    };
    Ok(s.form(checkout.form_id)
        .await?
        .map(|f| (f.email_subject, f.email_body)))
}

/// Mails a new subscription license to the buyer when the integration asks for it. An event
/// that does not describe the buyer mails whom the license's customer record names.
async fn notify(
    s: &mut Session,
    ctx: &Ctx<'_>,
    buyer: &Buyer,
    license: &License,
    order: Option<&str>,
) -> Result<String> {
    if !ctx.notify_buyer {
        return Ok(String::new());
    }
    let known = match (&buyer.email, license.customer_id) {
        (None, Some(id)) => s.customer(id).await?,
        _ => None,
    };
    let (to, name) = match &known {
        Some(c) => (c.email.as_deref(), Some(c.name.as_str())),
        None => (buyer.email.as_deref(), buyer.name.as_deref()),
    };
    let product = product_name(s, license.product_id).await?;
    let template = match order {
        Some(o) => form_template(s, o).await?,
        None => None,
    };
    let mail = crate::mail::KeyMail {
        to,
        name,
        product: &product,
        template,
    };
    let queued =
        crate::mail::queue_keys(s, mail, std::slice::from_ref(&license.key), ctx.at).await?;
    Ok(if queued {
        "; key mail queued".into()
    } else {
        String::new()
    })
}

fn subscription_metadata(ctx: &Ctx<'_>, sub: &Subscription) -> serde_json::Value {
    ctx.subscription_label
        .metadata(ctx.provider, &sub.subscription_id)
}

/// Stores that report a subscription's first sale as an order too: the license that order
/// issued becomes the subscription's, so one sale never yields two licenses, whichever of the
/// order and the subscription's reports arrives first.
async fn adopt_order_license(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &mut Subscription,
) -> Result<Option<License>> {
    let Some(order) = sub.order_id.clone() else {
        return Ok(None);
    };
    let Some(payment) = s.payment_for(ctx.provider, "order", &order).await? else {
        return Ok(None);
    };
    let Some(&license_id) = payment.license_ids.first() else {
        return Ok(None);
    };
    let Some(mut license) = s.lock_license(license_id).await? else {
        return Ok(None);
    };
    sub.license_id = Some(license.id);
    s.set_license_subscription(license.id, &sub.subscription_id)
        .await?;
    if let serde_json::Value::Object(extra) = subscription_metadata(ctx, sub) {
        if let serde_json::Value::Object(m) = &mut license.metadata {
            m.extend(extra);
        }
    }
    save(
        s,
        ctx,
        &license,
        "subscribed",
        json!({"subscription": sub.subscription_id, "order": order}),
    )
    .await?;
    Ok(Some(license))
}

/// The checkout Keyturn started under this id with this provider, if it did.
async fn checkout_of(
    s: &mut Session,
    ctx: &Ctx<'_>,
    order: Option<&str>,
) -> Result<Option<keyturn_core::payment::Checkout>> {
    let Some(order) = order else {
        return Ok(None);
    };
    Ok(s.checkout(order)
        .await?
        .filter(|c| c.provider == ctx.provider))
}

/// A PayPal capture pays for the order Keyturn created only when it took the full amount.
fn check_captured(
    order: &str,
    expected: &keyturn_core::payment::Checkout,
    money: &Money,
) -> Result<()> {
    let Some(amount) = expected.amount else {
        return Ok(());
    };
    let currency = expected.currency.as_deref().unwrap_or("");
    let paid = money.amount == Some(amount)
        && money
            .currency
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(currency));
    if paid {
        return Ok(());
    }
    let captured = match (money.amount, money.currency.as_deref()) {
        (Some(a), Some(c)) => format!("{} {c}", format_hundredths(a)),
        _ => "an unknown amount".into(),
    };
    Err(AppError::invalid(
        "amount",
        format!(
            "order {order} captured {captured} but was for {} {currency}; nothing was issued",
            format_hundredths(amount)
        ),
    ))
}

async fn purchased(
    s: &mut Session,
    ctx: &Ctx<'_>,
    order: &str,
    buyer: &Buyer,
    plan_ref: &PlanRef,
    quantity: i64,
    money: &Money,
) -> Result<String> {
    // What the sale buys: the checkout Keyturn started, the license URL's plan, or what the
    // provider says was purchased. Never what data the buyer can set names.
    let checkout = checkout_of(s, ctx, Some(order)).await?;
    let (plan, quantity) = match (&checkout, plan_ref.configured) {
        (Some(c), _) => {
            check_captured(order, c, money)?;
            (c.plan_id, c.quantity)
        }
        (None, Some(plan)) => (plan, quantity),
        (None, None) => (resolve_plan(s, plan_ref).await?.id, quantity),
    };
    let plan = s
        .plan(plan)
        .await?
        .ok_or_else(|| AppError::invalid("plan", format!("plan {plan} does not exist")))?;
    // A store that also reports the order as the start of a subscription: the subscription
    // holds its lock first, as its own events do.
    let mut sub = match s.subscription_by_order(ctx.provider, order).await? {
        Some(id) => Some(s.claim_subscription(ctx.provider, &id, ctx.at).await?),
        None => None,
    };
    lock_money(s, ctx, money).await?;
    // A provider that does not report the buyer (a PayPal capture) sold through a payment form,
    // where the buyer told us who they are.
    let from_form;
    let buyer = match (&buyer.email, &checkout) {
        (None, Some(c)) => {
            from_form = Buyer {
                name: Some(c.buyer_name.clone()),
                email: Some(c.buyer_email.clone()),
                provider_customer_id: None,
            };
            &from_form
        }
        _ => buyer,
    };
    let customer_id = customer(s, buyer, ctx.at).await?;
    let mut p = new_payment_fields(ctx, "order", order, "paid", money);
    p.customer_id = customer_id;
    p.plan_id = Some(plan.id);
    p.subscription_id = sub.as_ref().map(|sub| sub.subscription_id.clone());
    let (mut payment, new) = s.upsert_payment(&p, ctx.at).await?;
    if !new {
        // Already fulfilled, perhaps by its subscription's report, which knew less of the money.
        let filled = fill_money(&mut payment, money);
        if filled || payment.customer_id.is_none() {
            payment.customer_id = payment.customer_id.or(customer_id);
            s.update_payment(&payment, ctx.at).await?;
        }
        let reversed = reverse_if_reported(s, ctx, &payment).await?;
        return Ok(format!(
            "order {order} was already fulfilled (payment {}){reversed}",
            payment.id
        ));
    }
    if let Some(sub) = sub.as_mut() {
        sub.customer_id = sub.customer_id.or(customer_id);
    }
    if let Some(sub) = sub.as_mut().filter(|sub| sub.license_id.is_some()) {
        // The subscription's license is this order's too.
        let mut detail = settle(s, ctx, sub, buyer, Some(payment)).await?;
        detail.insert_str(
            0,
            &format!(
                "order {order} belongs to subscription {}",
                sub.subscription_id
            ),
        );
        s.update_subscription(sub, ctx.at).await?;
        return Ok(detail);
    }
    let quantity = quantity.clamp(1, crate::licenses::MAX_QUANTITY);
    let (count, seats) = match plan.quantity_mode {
        QuantityMode::Keys => (quantity, 1),
        QuantityMode::Seats => (1, quantity),
    };
    let mut new_license = license_from_plan(&plan, ctx.at);
    new_license.customer_id = customer_id;
    new_license.max_machines = machines(&plan, seats);
    new_license.metadata = json!({"order": order});
    let mut ids = Vec::new();
    for _ in 0..count {
        let license = insert_with_fresh_key(s, new_license.clone(), ctx.at).await?;
        record(
            s,
            license.id,
            &ctx.actor,
            "created",
            json!({"order": order, "plan_id": plan.id, "payment_id": payment.id}),
            ctx.at,
        )
        .await?;
        s.link_payment_license(payment.id, license.id).await?;
        ids.push(license.id);
    }
    let mut detail = format!("order {order} → license(s) {ids:?}");
    if ctx.notify_buyer {
        let mut keys = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(l) = s.license(*id).await? {
                keys.push(l.key);
            }
        }
        let product = product_name(s, plan.product_id).await?;
        let mail = crate::mail::KeyMail {
            to: buyer.email.as_deref(),
            name: buyer.name.as_deref(),
            product: &product,
            template: form_template(s, order).await?,
        };
        if crate::mail::queue_keys(s, mail, &keys, ctx.at).await? {
            detail.push_str("; key mail queued");
        }
    }
    payment.license_ids = ids;
    detail.push_str(&reverse_if_reported(s, ctx, &payment).await?);
    if let Some(sub) = sub.as_mut() {
        // Reported before its license existed: the subscription adopts the new one now.
        detail.push_str(&settle(s, ctx, sub, buyer, None).await?);
        s.update_subscription(sub, ctx.at).await?;
    }
    Ok(detail)
}

async fn reversed(
    s: &mut Session,
    ctx: &Ctx<'_>,
    reversal: Reversal,
    money: &Money,
) -> Result<String> {
    let kind = match reversal {
        Reversal::Refunded => "refunded",
        Reversal::Disputed => "disputed",
    };
    let refs = money_refs(money);
    if refs.is_empty() {
        return Err(AppError::invalid(
            "payment",
            "the reversal names no payment",
        ));
    }
    lock_money(s, ctx, money).await?;
    for r in &refs {
        s.insert_reversal(ctx.provider, r, kind, ctx.event_id, ctx.at)
            .await?;
    }
    let mut blocked = Vec::new();
    let mut seen = Vec::new();
    for r in refs {
        for mut payment in s.payments_by_money(ctx.provider, r).await? {
            if seen.contains(&payment.id) {
                continue;
            }
            seen.push(payment.id);
            blocked.extend(block_paid_licenses(s, ctx, &mut payment, kind).await?);
        }
    }
    Ok(if seen.is_empty() {
        format!("{kind}: no payment matches yet; it will be blocked when it arrives")
    } else {
        format!("{kind}: payment(s) {seen:?}, blocked license(s) {blocked:?}")
    })
}

/// A refund or dispute may arrive before the payment it reverses, or before the payment is
/// linked to its license: check whenever either happens.
async fn reverse_if_reported(s: &mut Session, ctx: &Ctx<'_>, payment: &Payment) -> Result<String> {
    for r in money_refs_of(payment) {
        if let Some(kind) = s.reversal(ctx.provider, r).await? {
            if payment.status == kind {
                return Ok(String::new());
            }
            let mut payment = payment.clone();
            payment.license_ids = s.payment_license_ids(payment.id).await?;
            let blocked = block_paid_licenses(s, ctx, &mut payment, &kind).await?;
            return Ok(format!("; already {kind}: blocked license(s) {blocked:?}"));
        }
    }
    Ok(String::new())
}

async fn block_paid_licenses(
    s: &mut Session,
    ctx: &Ctx<'_>,
    payment: &mut Payment,
    kind: &str,
) -> Result<Vec<i64>> {
    payment.status = kind.to_owned();
    payment.event_id = ctx.event_id.to_owned();
    s.update_payment(payment, ctx.at).await?;
    let mut blocked = Vec::new();
    for id in payment.license_ids.clone() {
        if let Some(mut license) = s.lock_license(id).await? {
            if !license.blocked {
                license.blocked = true;
                save(
                    s,
                    ctx,
                    &license,
                    "blocked",
                    json!({"reason": kind, "payment_id": payment.id}),
                )
                .await?;
                blocked.push(id);
            }
        }
    }
    Ok(blocked)
}

async fn save(
    s: &mut Session,
    ctx: &Ctx<'_>,
    license: &License,
    action: &str,
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

/// The buyer's customer record: found by provider id, then by email, else created. Events
/// describe a buyer more or less fully (an older invoice has no name), so each fills in what the
/// record still lacks, whatever order they arrive in.
async fn customer(s: &mut Session, buyer: &Buyer, at: DateTime<Utc>) -> Result<Option<i64>> {
    let email = buyer
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .map(Email::into_string);
    let name: Option<String> = buyer
        .name
        .as_deref()
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let mut found = match &buyer.provider_customer_id {
        Some(stripe_id) => s.customer_by_stripe_id(stripe_id).await?,
        None => None,
    };
    if found.is_none() {
        if let Some(e) = &email {
            found = s.customer_by_email(e).await?;
        }
    }
    let id = match found {
        Some(id) => {
            if let Some(mut c) = s.customer(id).await? {
                let named_by_email = c.email.is_some() && Some(&c.name) == c.email.as_ref();
                let mut changed = false;
                if c.email.is_none() && email.is_some() {
                    c.email = email.clone();
                    changed = true;
                }
                if let Some(n) = name.as_ref().filter(|_| named_by_email) {
                    c.name = n.clone();
                    changed = true;
                }
                if changed {
                    s.update_customer(&c).await?;
                }
            }
            id
        }
        None => {
            // A bare provider id says nothing about the buyer: wait for an event that does.
            let Some(display) = name.clone().or(email.clone()) else {
                return Ok(None);
            };
            s.insert_customer(&display, email.as_deref(), None, at)
                .await?
                .id
        }
    };
    if let Some(stripe_id) = &buyer.provider_customer_id {
        s.set_customer_stripe_id(id, stripe_id).await?;
    }
    Ok(Some(id))
}

/// The payment intent and charge a payment is known by, where refunds and disputes find it.
fn money_refs(money: &Money) -> Vec<&String> {
    [&money.payment_intent, &money.charge]
        .into_iter()
        .flatten()
        .collect()
}

fn money_refs_of(payment: &Payment) -> Vec<&String> {
    [&payment.payment_intent, &payment.charge]
        .into_iter()
        .flatten()
        .collect()
}

/// Holds the locks of a payment's references, so recording it and reversing it never
/// interleave (each would miss the other).
async fn lock_money(s: &mut Session, ctx: &Ctx<'_>, money: &Money) -> Result<()> {
    let mut refs = money_refs(money);
    refs.sort();
    for r in refs {
        s.lock_name(&format!("payment:{}:{r}", ctx.provider))
            .await?;
    }
    Ok(())
}

fn object_lock(ctx: &Ctx<'_>, kind: &str, id: &str) -> String {
    format!("object:{}:{kind}:{id}", ctx.provider)
}

/// An invoice's money with what a separate report said settled it (Stripe no longer puts the
/// payment intent on the invoice).
async fn with_link(
    s: &mut Session,
    ctx: &Ctx<'_>,
    kind: &str,
    id: &str,
    mut money: Money,
) -> Result<Money> {
    s.lock_name(&object_lock(ctx, kind, id)).await?;
    if money.payment_intent.is_none() || money.charge.is_none() {
        if let Some((intent, charge)) = s.payment_link(ctx.provider, kind, id).await? {
            money.payment_intent = money.payment_intent.or(intent);
            money.charge = money.charge.or(charge);
        }
    }
    Ok(money)
}

/// Fills in what a payment's record lacks of `money`; whether anything changed.
fn fill_money(payment: &mut Payment, money: &Money) -> bool {
    let mut changed = false;
    let mut fill = |field: &mut Option<String>, value: &Option<String>| {
        if field.is_none() && value.is_some() {
            field.clone_from(value);
            changed = true;
        }
    };
    fill(&mut payment.payment_intent, &money.payment_intent);
    fill(&mut payment.charge, &money.charge);
    fill(&mut payment.currency, &money.currency);
    if payment.amount.is_none() && money.amount.is_some() {
        payment.amount = money.amount;
        changed = true;
    }
    changed
}

fn new_payment_fields(
    ctx: &Ctx<'_>,
    kind: &str,
    object_id: &str,
    status: &str,
    money: &Money,
) -> NewPayment {
    NewPayment {
        provider: ctx.provider.to_owned(),
        object_kind: kind.to_owned(),
        object_id: object_id.to_owned(),
        status: status.to_owned(),
        payment_intent: money.payment_intent.clone(),
        charge: money.charge.clone(),
        amount: money.amount,
        currency: money.currency.clone(),
        event_id: ctx.event_id.to_owned(),
        ..Default::default()
    }
}

fn new_payment(
    ctx: &Ctx<'_>,
    kind: &str,
    object_id: &str,
    status: &str,
    sub: &Subscription,
    money: &Money,
) -> NewPayment {
    let mut p = new_payment_fields(ctx, kind, object_id, status, money);
    p.subscription_id = Some(sub.subscription_id.clone());
    p.customer_id = sub.customer_id;
    p.plan_id = sub.plan_id;
    p
}
