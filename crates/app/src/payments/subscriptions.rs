//! Subscriptions: each report adds to the subscription's record, which converges whatever the
//! delivery order, and the record decides its license (issued once a plan and paid time are
//! known, or adopted from the store order that started it; shaped by the current plan; running to
//! paid time plus grace; blocked and unblocked by the plan's rules).

use chrono::{DateTime, Utc};
use keyturn_core::payment::{
    paid_expiry, Buyer, CancelRule, DunningRule, Money, ObjectKind, Payment, PaymentStatus,
    PlanRef, Subscription, SubscriptionStatus,
};
use keyturn_core::AuditAction;
use keyturn_core::{License, Plan};
use keyturn_store::Session;
use serde_json::json;

use crate::licenses::new_license;
use crate::Result;

use super::buyers::{customer, notify};
use super::money::{
    fill_money, lock_money, lock_order, new_payment, new_payment_fields, save_payment,
    save_subscription, upsert_payment, with_link,
};
use super::orders::checkout_of;
use super::reversals::reverse_if_reported;
use super::{issue, machines, save, shape_of, Ctx};

/// A subscription exists: its record learns what the report says (a checkout Keyturn started
/// says what it sells), the sale that started it is recorded, and its license follows.
#[allow(clippy::too_many_arguments)]
pub(super) async fn started(
    s: &mut Session,
    ctx: &Ctx<'_>,
    subscription: String,
    order: Option<String>,
    buyer: Buyer,
    plan: PlanRef,
    quantity: i64,
    status: SubscriptionStatus,
    period_end: Option<DateTime<Utc>>,
    paid_through: Option<DateTime<Utc>>,
    money: Money,
) -> Result<String> {
    lock_order(s, ctx, order.as_deref()).await?;
    let mut sub = s
        .claim_subscription(ctx.provider, &subscription, ctx.at)
        .await?;
    lock_money(s, ctx, &money).await?;
    let customer_id = customer(s, ctx, &buyer).await?;
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
        let mut p = new_payment(
            ctx,
            ObjectKind::Order,
            order,
            PaymentStatus::Paid,
            &sub,
            &money,
        );
        p.plan_id = shape.map(|(plan, _)| plan).or(sub.plan_id);
        let (mut payment, new) = upsert_payment(s, ctx, &p).await?;
        if !new && fill_money(&mut payment, &money) {
            let was = payment.status;
            save_payment(s, ctx, &payment, was).await?;
        }
        recorded = Some(payment);
    }
    let mut detail = settle(s, ctx, &mut sub, &buyer, recorded).await?;
    detail.insert_str(0, &format!("subscription {subscription}"));
    save_subscription(s, ctx, &sub).await?;
    Ok(detail)
}

/// An invoice of the subscription was paid, for the period it names; applied once per invoice.
#[allow(clippy::too_many_arguments)]
pub(super) async fn renewed(
    s: &mut Session,
    ctx: &Ctx<'_>,
    subscription: String,
    invoice: String,
    buyer: Buyer,
    plan: PlanRef,
    quantity: i64,
    period_end: Option<DateTime<Utc>>,
    money: Money,
) -> Result<String> {
    let mut sub = s
        .claim_subscription(ctx.provider, &subscription, ctx.at)
        .await?;
    let money = with_link(s, ctx, ObjectKind::Invoice, &invoice, money).await?;
    lock_money(s, ctx, &money).await?;
    let (mut payment, new) = upsert_payment(
        s,
        ctx,
        &new_payment(
            ctx,
            ObjectKind::Invoice,
            &invoice,
            PaymentStatus::Paid,
            &sub,
            &money,
        ),
    )
    .await?;
    if !new && payment.status != PaymentStatus::Failed {
        return Ok(format!("invoice {invoice} was already applied"));
    }
    let customer_id = customer(s, ctx, &buyer).await?;
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
    let was = if new {
        PaymentStatus::Paid
    } else {
        payment.status
    };
    payment.status = PaymentStatus::Paid;
    payment.customer_id = payment.customer_id.or(customer_id);
    payment.plan_id = shape.map(|(plan, _)| plan).or(sub.plan_id);
    payment.event_id = ctx.event_id.to_owned();
    fill_money(&mut payment, &money);
    save_payment(s, ctx, &payment, was).await?;
    let mut detail = settle(s, ctx, &mut sub, &buyer, Some(payment)).await?;
    detail.insert_str(
        0,
        &format!("invoice {invoice} of subscription {subscription}"),
    );
    save_subscription(s, ctx, &sub).await?;
    Ok(detail)
}

/// The subscription's plan, quantity, status or cancellation setting changed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn changed(
    s: &mut Session,
    ctx: &Ctx<'_>,
    subscription: String,
    order: Option<String>,
    plan: PlanRef,
    quantity: i64,
    status: SubscriptionStatus,
    cancel_at_period_end: bool,
    period_end: Option<DateTime<Utc>>,
    paid_through: Option<DateTime<Utc>>,
) -> Result<String> {
    lock_order(s, ctx, order.as_deref()).await?;
    let sub = s
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
    follow(s, ctx, sub, &report, format!("subscription {subscription}")).await
}

/// The subscription ended.
pub(super) async fn cancelled(
    s: &mut Session,
    ctx: &Ctx<'_>,
    subscription: String,
    period_end: Option<DateTime<Utc>>,
) -> Result<String> {
    let sub = s
        .claim_subscription(ctx.provider, &subscription, ctx.at)
        .await?;
    // An ended subscription stays ended whatever report arrives after this one, so the
    // cancellation needs no place among the dated reports.
    let report = Report {
        ended: true,
        period_end,
        ..Report::default()
    };
    follow(
        s,
        ctx,
        sub,
        &report,
        format!("subscription {subscription} ended"),
    )
    .await
}

/// A report of the subscription itself, without payment or buyer: the record learns it and the
/// license follows; `heading` starts what it did.
async fn follow(
    s: &mut Session,
    ctx: &Ctx<'_>,
    mut sub: Subscription,
    report: &Report<'_>,
    heading: String,
) -> Result<String> {
    observe(&mut sub, ctx, report);
    let mut detail = settle(s, ctx, &mut sub, &Buyer::default(), None).await?;
    detail.insert_str(0, &heading);
    save_subscription(s, ctx, &sub).await?;
    Ok(detail)
}

/// An invoice could not be charged: recorded, the license is not extended.
pub(super) async fn payment_failed(
    s: &mut Session,
    ctx: &Ctx<'_>,
    subscription: Option<String>,
    invoice: String,
    money: Money,
) -> Result<String> {
    let mut p = new_payment_fields(
        ctx,
        ObjectKind::Invoice,
        &invoice,
        PaymentStatus::Failed,
        &money,
    );
    p.subscription_id = subscription;
    let (payment, new) = upsert_payment(s, ctx, &p).await?;
    Ok(if new {
        format!(
            "payment of invoice {invoice} failed (payment {}); license not extended",
            payment.id
        )
    } else {
        format!("invoice {invoice} already recorded as {}", payment.status)
    })
}

/// What one event reports about a subscription.
#[derive(Default)]
pub(super) struct Report<'a> {
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
pub(super) fn ended_status(
    current: SubscriptionStatus,
    reported: SubscriptionStatus,
) -> SubscriptionStatus {
    if current.is_ended() && (current == SubscriptionStatus::Canceled || !reported.is_ended()) {
        current
    } else {
        reported
    }
}

/// Adds what an event reports to the subscription's record. Every part converges whatever order
/// the reports arrive in: dated parts keep the newest report, the rest only ever grow.
pub(super) fn observe(sub: &mut Subscription, ctx: &Ctx<'_>, report: &Report<'_>) {
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
pub(super) async fn settle(
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
            AuditAction::CustomerChanged,
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
    } else if let Some(p) = payment.filter(|p| p.status != PaymentStatus::Failed) {
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
pub(super) async fn align_shape(
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
        AuditAction::PlanChanged,
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
pub(super) async fn align_expiry(
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
        AuditAction::Renewed
    } else {
        AuditAction::ExpiryChanged
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
pub(super) async fn enforce_status(
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
        save(s, ctx, license, AuditAction::Blocked, json!({"reason": reason, "subscription": sub.subscription_id, "status": sub.status.as_str()})).await?;
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
                AuditAction::Unblocked,
                json!({"reason": reason, "subscription": sub.subscription_id}),
            )
            .await?;
            detail.push_str(&format!("; unblocked: {reason}"));
        }
    }
    Ok(detail)
}

pub(super) async fn issue_subscription_license(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &Subscription,
    plan: &Plan,
    paid_through: DateTime<Utc>,
) -> Result<License> {
    let mut new = new_license(plan.product_id, Some(plan), ctx.at);
    new.customer_id = sub.customer_id;
    new.max_machines = machines(plan, sub.quantity);
    new.metadata = subscription_metadata(ctx, sub);
    new.expires = Some(paid_expiry(paid_through, plan.grace_days)?);
    let details = json!({"subscription": sub.subscription_id, "plan_id": plan.id, "expires": new.expires, "max_machines": new.max_machines});
    let license = issue(s, ctx, new, details).await?;
    Ok(license)
}

pub(super) fn subscription_metadata(ctx: &Ctx<'_>, sub: &Subscription) -> serde_json::Value {
    ctx.subscription_label
        .metadata(ctx.provider, &sub.subscription_id)
}

/// Stores that report a subscription's first sale as an order too: the license that order
/// issued becomes the subscription's, so one sale never yields two licenses, whichever of the
/// order and the subscription's reports arrives first.
pub(super) async fn adopt_order_license(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &mut Subscription,
) -> Result<Option<License>> {
    let Some(order) = sub.order_id.clone() else {
        return Ok(None);
    };
    let Some(payment) = s
        .payment_for(ctx.provider, ObjectKind::Order, &order)
        .await?
    else {
        return Ok(None);
    };
    let Some(&license_id) = payment.license_ids.first() else {
        return Ok(None);
    };
    let Some(mut license) = s.lock_license(license_id).await? else {
        return Ok(None);
    };
    sub.license_id = Some(license.id);
    if let serde_json::Value::Object(extra) = subscription_metadata(ctx, sub) {
        if let serde_json::Value::Object(m) = &mut license.metadata {
            m.extend(extra);
        }
    }
    save(
        s,
        ctx,
        &license,
        AuditAction::Subscribed,
        json!({"subscription": sub.subscription_id, "order": order}),
    )
    .await?;
    Ok(Some(license))
}
