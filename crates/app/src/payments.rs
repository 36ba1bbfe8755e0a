//! The payment pipeline: applies provider-neutral payment events to licenses.
//!
//! Each event is applied in one transaction together with the record of the event itself, so a
//! redelivery finds it applied and changes nothing. Effects are keyed by the business object
//! (checkout session, invoice, subscription) because providers report one fact in several events,
//! and a subscription's state is recorded with the provider's time of each report, so events that
//! arrive out of order converge on the state the newest report describes.

use chrono::{DateTime, Utc};
use keyturn_core::payment::{
    renewed_expiry, Buyer, CancelRule, DunningRule, Money, Payment, PaymentEvent, PlanRef,
    ProviderEvent, QuantityMode, Reversal, Subscription, SubscriptionStatus,
};
use keyturn_core::{Email, License, Permission, Plan};
use keyturn_store::{IncomingEvent, NewPayment, Session, StoreError};
use serde_json::json;

use crate::licenses::{insert_with_fresh_key, license_from_plan, record};
use crate::{now, Actor, App, AppError, Page, PageRequest, Principal, Result};

/// An inbound webhook, verified by its adapter.
#[derive(Debug, Clone)]
pub struct EventEnvelope {
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    /// The provider's time for the event; orders reports about one subscription.
    pub created: DateTime<Utc>,
    /// The raw body, kept for the record.
    pub payload: String,
    /// Whether the integration wants new keys mailed to the buyer.
    pub notify_buyer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Applied now; the text says what it did.
    Applied(String),
    /// A type Keyturn does not act on; recorded.
    Ignored,
    /// Seen before and already handled: nothing changed.
    Duplicate,
}

/// How many times an event that raced a concurrent one is applied before giving up.
const ATTEMPTS: u32 = 3;

struct Ctx<'a> {
    provider: &'a str,
    event_id: &'a str,
    created: DateTime<Utc>,
    actor: Actor,
    at: DateTime<Utc>,
    notify_buyer: bool,
}

impl App {
    /// Applies one provider event exactly once. `event` is `None` for types that do nothing.
    /// On a failure (e.g. no plan sells the purchased price) nothing is applied, the event is
    /// kept as `failed` with the reason, and a redelivery tries again.
    pub async fn apply_provider_event(
        &self,
        envelope: &EventEnvelope,
        event: Option<PaymentEvent>,
    ) -> Result<EventOutcome> {
        let mut attempt = 1;
        loop {
            match self.apply_once(envelope, event.clone()).await {
                // Concurrent deliveries about one buyer or subscription (PostgreSQL): another
                // transaction committed a row this one was creating too; the next attempt
                // finds it.
                Err(AppError::Store(StoreError::Conflict(what))) if attempt < ATTEMPTS => {
                    tracing::debug!(provider = %envelope.provider, event = %envelope.event_id, %what, attempt, "provider event raced another; trying again");
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn apply_once(
        &self,
        envelope: &EventEnvelope,
        event: Option<PaymentEvent>,
    ) -> Result<EventOutcome> {
        let at = now();
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
        };
        let applied = match event {
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

    /// The provider time of the newest event handled, where a sync of missed events starts.
    pub async fn latest_provider_event(&self, provider: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .store
            .read()
            .await?
            .latest_handled_event(provider)
            .await?)
    }

    /// Whether an event is already handled (sync skips those without fetching more).
    pub async fn provider_event_handled(&self, provider: &str, event_id: &str) -> Result<bool> {
        Ok(self
            .store
            .read()
            .await?
            .provider_event(provider, event_id)
            .await?
            .is_some_and(|e| e.status == "applied" || e.status == "ignored"))
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
            money,
        } => {
            let mut sub = s
                .claim_subscription(ctx.provider, &subscription, ctx.at)
                .await?;
            let customer_id = customer(s, &buyer, ctx.at).await?;
            if let (None, Some(order)) = (sub.license_id, &order) {
                adopt_order_license(s, ctx, &mut sub, order).await?;
            }
            let report = Report {
                plan: &plan,
                quantity: Some(quantity),
                status: Some(status),
                cancel_at_period_end: None,
                period_end,
            };
            let new_license = sub.license_id.is_none();
            let (license, mut detail) = observe(s, ctx, &mut sub, &report, customer_id).await?;
            if new_license {
                detail.push_str(&notify(s, ctx, &buyer, &license, order.as_deref()).await?);
            }
            if let Some(order) = order {
                let plan_id = paid_plan(s, &plan).await?.or(sub.plan_id);
                let payment =
                    record_payment(s, ctx, "order", &order, plan_id, &sub, &money).await?;
                s.link_payment_license(payment.id, license.id).await?;
                detail.push_str(&reverse_if_reported(s, ctx, &payment).await?);
            }
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
            let (payment, new) = s
                .upsert_payment(
                    &new_payment(ctx, "invoice", &invoice, "paid", &sub, &money),
                    ctx.at,
                )
                .await?;
            if !new && payment.status != "failed" {
                return Ok(format!("invoice {invoice} was already applied"));
            }
            let customer_id = customer(s, &buyer, ctx.at).await?;
            let paid_plan = paid_plan(s, &plan).await?;
            // An invoice says nothing about the subscription's status, only that it is paid.
            let report = Report {
                plan: &plan,
                quantity: Some(quantity).filter(|_| !plan.is_empty()),
                status: None,
                cancel_at_period_end: None,
                period_end,
            };
            let new_license = sub.license_id.is_none();
            let (mut license, mut detail) = observe(s, ctx, &mut sub, &report, customer_id).await?;
            if new_license {
                detail.push_str(&notify(s, ctx, &buyer, &license, None).await?);
            }
            let mut payment = payment;
            payment.status = "paid".into();
            payment.customer_id = payment.customer_id.or(customer_id);
            payment.plan_id = paid_plan.or(sub.plan_id);
            payment.event_id = ctx.event_id.to_owned();
            s.update_payment(&payment, ctx.at).await?;
            s.link_payment_license(payment.id, license.id).await?;
            // A provider whose payment notice carries no period has reported it on the
            // subscription; that is the period this payment pays for.
            if let Some(end) = period_end.or(sub.period_end) {
                detail.push_str(&extend_to(s, ctx, &sub, &mut license, end, &invoice).await?);
            }
            if sub.dunning_blocked && !sub.status.is_ended() {
                sub.dunning_blocked = false;
                if license.blocked {
                    license.blocked = false;
                    save(
                        s,
                        ctx,
                        &license,
                        "unblocked",
                        json!({"reason": "payment received", "invoice": invoice}),
                    )
                    .await?;
                }
            }
            detail.push_str(&reverse_if_reported(s, ctx, &payment).await?);
            s.update_subscription(&sub, ctx.at).await?;
            Ok(detail)
        }
        PaymentEvent::SubscriptionChanged {
            subscription,
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
                plan: &plan,
                quantity: Some(quantity),
                status: Some(status),
                cancel_at_period_end: Some(cancel_at_period_end),
                period_end,
            };
            let (mut license, mut detail) = observe(s, ctx, &mut sub, &report, None).await?;
            if let Some(end) = paid_through.filter(|_| !sub.status.is_ended()) {
                detail.push_str(&extend_to(s, ctx, &sub, &mut license, end, "paid_through").await?);
            }
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
            let report = Report {
                plan: &PlanRef::default(),
                quantity: None,
                status: Some(SubscriptionStatus::Canceled),
                cancel_at_period_end: None,
                period_end,
            };
            if sub.plan_id.is_none() {
                // Nothing to attach a license to yet: remember the cancellation for when the
                // subscription's other events arrive.
                sub.status = SubscriptionStatus::Canceled;
                s.update_subscription(&sub, ctx.at).await?;
                return Ok(format!(
                    "subscription {subscription} cancelled before its license was issued"
                ));
            }
            let (_, detail) = observe(s, ctx, &mut sub, &report, None).await?;
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
    }
}

/// What one event reports about a subscription.
struct Report<'a> {
    plan: &'a PlanRef,
    quantity: Option<i64>,
    status: Option<SubscriptionStatus>,
    cancel_at_period_end: Option<bool>,
    period_end: Option<DateTime<Utc>>,
}

/// Records what an event reports about a subscription (unless a newer report is already
/// recorded), makes sure its one license exists, and brings the license in line with the
/// recorded state. Returns the license and a description of what changed.
async fn observe(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &mut Subscription,
    report: &Report<'_>,
    customer_id: Option<i64>,
) -> Result<(License, String)> {
    // Only reports that say what the subscription buys (plan, quantity) order its state: a
    // cancellation is final whenever it arrives, and an invoice never changes the status.
    let shape_report = !report.plan.is_empty();
    let newest = ctx.created >= sub.state_at;
    let before = (sub.plan_id, sub.quantity, sub.status);
    if shape_report && (newest || sub.plan_id.is_none()) {
        sub.plan_id = Some(resolve_plan(s, report.plan).await?.id);
        if let Some(q) = report.quantity {
            sub.quantity = q.max(1);
        }
    }
    if sub.plan_id.is_none() {
        return Err(AppError::invalid(
            "plan",
            format!(
                "subscription {} names no plan this server sells",
                sub.subscription_id
            ),
        ));
    }
    if let Some(status) = report.status {
        // A subscription does not come back from cancellation.
        if !sub.status.is_ended() && (newest || status.is_ended()) {
            sub.status = status;
        }
    }
    if newest {
        if let Some(c) = report.cancel_at_period_end {
            sub.cancel_at_period_end = c;
        }
        if shape_report {
            sub.state_at = ctx.created;
        }
    }
    if let Some(end) = report.period_end {
        sub.period_end = Some(sub.period_end.map_or(end, |e| e.max(end)));
    }
    sub.customer_id = sub.customer_id.or(customer_id);
    let plan = plan_of(s, sub).await?;

    let (mut license, created) = match sub.license_id {
        Some(id) => match s.lock_license(id).await? {
            Some(l) => (l, false),
            None => (issue_subscription_license(s, ctx, sub, &plan).await?, true),
        },
        None => (issue_subscription_license(s, ctx, sub, &plan).await?, true),
    };
    sub.license_id = Some(license.id);
    let mut detail = if created {
        format!(
            "subscription {} → license {}",
            sub.subscription_id, license.id
        )
    } else {
        format!(
            "subscription {} (license {})",
            sub.subscription_id, license.id
        )
    };
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

    let shape_changed = (sub.plan_id, sub.quantity) != (before.0, before.1);
    if shape_changed
        && !created
        && (license.plan_id != sub.plan_id || license.max_machines != machines(&plan, sub.quantity))
    {
        let from = json!({"plan_id": license.plan_id, "features": license.features, "max_machines": license.max_machines});
        license.plan_id = Some(plan.id);
        license.features = plan.features.clone();
        license.max_machines = machines(&plan, sub.quantity);
        license.floating_lease_seconds = plan.floating_lease_seconds;
        let to = json!({"plan_id": license.plan_id, "features": license.features, "max_machines": license.max_machines});
        save(
            s,
            ctx,
            &license,
            "plan_changed",
            json!({"from": from, "to": to}),
        )
        .await?;
        detail.push_str(&format!(
            "; now plan {} with {} seat(s)",
            plan.id, sub.quantity
        ));
    }

    if created || sub.status != before.2 {
        detail.push_str(&enforce_status(s, ctx, sub, &plan, &mut license).await?);
    }
    Ok((license, detail))
}

/// Applies the plan's dunning and cancellation rules to the subscription's current status.
async fn enforce_status(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &mut Subscription,
    plan: &Plan,
    license: &mut License,
) -> Result<String> {
    let status = sub.status;
    if status.is_ended() {
        sub.dunning_blocked = false;
        return match plan.on_cancel {
            CancelRule::Block if !license.blocked => {
                license.blocked = true;
                save(s, ctx, license, "blocked", json!({"reason": "subscription cancelled", "subscription": sub.subscription_id})).await?;
                Ok("; blocked: subscription cancelled".into())
            }
            CancelRule::Block => Ok(String::new()),
            CancelRule::Expire => {
                Ok("; subscription cancelled: the license runs out at its expiry".into())
            }
        };
    }
    if status.is_delinquent() && plan.dunning == DunningRule::Block && !license.blocked {
        license.blocked = true;
        sub.dunning_blocked = true;
        save(
            s,
            ctx,
            license,
            "blocked",
            json!({"reason": "payment overdue", "status": status.as_str()}),
        )
        .await?;
        return Ok(format!("; blocked: subscription {}", status.as_str()));
    }
    if matches!(
        status,
        SubscriptionStatus::Active | SubscriptionStatus::Trialing
    ) && sub.dunning_blocked
    {
        sub.dunning_blocked = false;
        if license.blocked {
            license.blocked = false;
            save(
                s,
                ctx,
                license,
                "unblocked",
                json!({"reason": "subscription active again"}),
            )
            .await?;
            return Ok("; unblocked: subscription active again".into());
        }
    }
    Ok(String::new())
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
) -> Result<License> {
    let mut new = license_from_plan(plan, ctx.at);
    new.customer_id = sub.customer_id;
    new.max_machines = machines(plan, sub.quantity);
    new.metadata = subscription_metadata(ctx, sub);
    if let Some(end) = sub.period_end {
        new.expires = Some(renewed_expiry(None, end, plan.grace_days)?);
    } else if let Some(expires) = new.expires {
        new.expires = Some(keyturn_core::dates::add_days(
            "grace_days",
            expires,
            plan.grace_days,
        )?);
    }
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

/// Mails a new subscription license to the buyer when the integration asks for it.
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
    let product = product_name(s, license.product_id).await?;
    let template = match order {
        Some(o) => form_template(s, o).await?,
        None => None,
    };
    let mail = crate::mail::KeyMail {
        to: buyer.email.as_deref(),
        name: buyer.name.as_deref(),
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
    if ctx.provider == "stripe" {
        json!({"stripe_subscription_id": sub.subscription_id})
    } else {
        json!({"provider": ctx.provider, "subscription_id": sub.subscription_id})
    }
}

/// Runs the subscription's license to `end` plus the plan's grace days, never shorter.
async fn extend_to(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &Subscription,
    license: &mut License,
    end: DateTime<Utc>,
    paid_by: &str,
) -> Result<String> {
    let grace = plan_of(s, sub).await?.grace_days;
    let to = renewed_expiry(license.expires, end, grace)?;
    if license.expires == Some(to) {
        return Ok(String::new());
    }
    let from = license.expires;
    license.expires = Some(to);
    save(
        s,
        ctx,
        license,
        "renewed",
        json!({"paid_by": paid_by, "from": from, "to": to}),
    )
    .await?;
    Ok(format!("; license {} runs until {to}", license.id))
}

/// Stores that report a subscription's first sale as an order too: the license that order
/// issued becomes the subscription's, so one sale never yields two licenses.
async fn adopt_order_license(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &mut Subscription,
    order: &str,
) -> Result<()> {
    let Some(payment) = s.payment_for(ctx.provider, "order", order).await? else {
        return Ok(());
    };
    let Some(&license_id) = payment.license_ids.first() else {
        return Ok(());
    };
    let Some(mut license) = s.lock_license(license_id).await? else {
        return Ok(());
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
    .await
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
    let plan = resolve_plan(s, plan_ref).await?;
    // A provider that does not report the buyer (a PayPal capture) sold through a payment form,
    // where the buyer told us who they are.
    let from_form;
    let buyer = match (&buyer.email, s.checkout(order).await?) {
        (None, Some(c)) => {
            from_form = Buyer {
                name: Some(c.buyer_name),
                email: Some(c.buyer_email),
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
    let (payment, new) = s.upsert_payment(&p, ctx.at).await?;
    if !new {
        return Ok(format!(
            "order {order} was already fulfilled (payment {})",
            payment.id
        ));
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
    let mut payment = payment;
    payment.license_ids = ids;
    detail.push_str(&reverse_if_reported(s, ctx, &payment).await?);
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
    let refs: Vec<&String> = [&money.payment_intent, &money.charge]
        .into_iter()
        .flatten()
        .collect();
    if refs.is_empty() {
        return Err(AppError::invalid(
            "payment",
            "the reversal names no payment",
        ));
    }
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

/// A refund or dispute may arrive before the payment it reverses: check on recording one.
async fn reverse_if_reported(s: &mut Session, ctx: &Ctx<'_>, payment: &Payment) -> Result<String> {
    for r in [&payment.payment_intent, &payment.charge]
        .into_iter()
        .flatten()
    {
        if let Some(kind) = s.reversal(ctx.provider, r).await? {
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

async fn plan_of(s: &mut Session, sub: &Subscription) -> Result<Plan> {
    let id = sub.plan_id.ok_or(AppError::NotFound("plan"))?;
    s.plan(id).await?.ok_or(AppError::NotFound("plan"))
}

/// The plan a purchase names: explicitly, or through a provider id a plan lists.
async fn resolve_plan(s: &mut Session, plan_ref: &PlanRef) -> Result<Plan> {
    if let Some(id) = plan_ref.plan_id {
        return s
            .plan(id)
            .await?
            .ok_or_else(|| AppError::invalid("plan", format!("plan {id} does not exist")));
    }
    let plans = s.plans(None).await?;
    for id in &plan_ref.provider_ids {
        let sells = |p: &&Plan| p.stripe_price_ids.contains(id) || p.store_product_ids.contains(id);
        if let Some(plan) = plans.iter().find(sells) {
            return Ok(plan.clone());
        }
    }
    Err(AppError::invalid(
        "plan",
        format!(
            "no plan lists any of the purchased ids {:?} in stripe_price_ids",
            plan_ref.provider_ids
        ),
    ))
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

async fn record_payment(
    s: &mut Session,
    ctx: &Ctx<'_>,
    kind: &str,
    object_id: &str,
    plan_id: Option<i64>,
    sub: &Subscription,
    money: &Money,
) -> Result<Payment> {
    let mut new = new_payment(ctx, kind, object_id, "paid", sub, money);
    new.plan_id = plan_id;
    let (payment, _) = s.upsert_payment(&new, ctx.at).await?;
    Ok(payment)
}

/// The plan a payment itself names (a subscription may have moved to another plan since).
async fn paid_plan(s: &mut Session, plan: &PlanRef) -> Result<Option<i64>> {
    if plan.is_empty() {
        return Ok(None);
    }
    Ok(Some(resolve_plan(s, plan).await?.id))
}
