//! Payment records: one per business object, the references (intent, charge) refunds find them
//! by, and the locks that keep recording and reversing a payment from interleaving.

use keyturn_core::payment::{Money, ObjectKind, Payment, PaymentStatus, Subscription};
use keyturn_core::webhook::EventType;
use keyturn_store::{NewPayment, Session};

use crate::Result;

use super::reversals::reverse_if_reported;
use super::Ctx;

/// Records a payment unless one exists for its business object (returned either way, with
/// whether it is new); a new one is announced (`payment.succeeded` or `payment.failed`). The
/// pipeline writes payments only through this and [`save_payment`].
pub(super) async fn upsert_payment(
    s: &mut Session,
    ctx: &Ctx<'_>,
    p: &NewPayment,
) -> Result<(Payment, bool)> {
    let (payment, new) = s.upsert_payment(p, ctx.at).await?;
    if new {
        crate::webhooks::emit::payment(s, None, &payment, ctx.at).await?;
    }
    Ok((payment, new))
}

/// Saves what an event learned about a payment; a change of status from `was` is announced.
pub(super) async fn save_payment(
    s: &mut Session,
    ctx: &Ctx<'_>,
    payment: &Payment,
    was: PaymentStatus,
) -> Result<()> {
    s.update_payment(payment, ctx.at).await?;
    crate::webhooks::emit::payment(s, Some(was), payment, ctx.at).await
}

/// Saves a subscription's record; a change a receiver could see is announced
/// (`subscription.updated`, or `subscription.cancelled` when it ends). The record as stored
/// before is read only when an endpoint wants to hear of it. The pipeline writes subscriptions
/// only through this.
pub(super) async fn save_subscription(
    s: &mut Session,
    ctx: &Ctx<'_>,
    sub: &Subscription,
) -> Result<()> {
    let wanted = crate::webhooks::emit::wants_any(
        s,
        &[
            EventType::SubscriptionUpdated,
            EventType::SubscriptionCancelled,
        ],
    )
    .await?;
    let before = if wanted {
        s.subscription(&sub.provider, &sub.subscription_id).await?
    } else {
        None
    };
    s.update_subscription(sub, ctx.at).await?;
    if let Some(before) = before {
        crate::webhooks::emit::subscription(s, &before, sub, ctx.at).await?;
    }
    Ok(())
}

/// The payment intent and charge a payment is known by, where refunds and disputes find it.
pub(super) fn money_refs(money: &Money) -> Vec<&String> {
    [&money.payment_intent, &money.charge]
        .into_iter()
        .flatten()
        .collect()
}

pub(super) fn money_refs_of(payment: &Payment) -> Vec<&String> {
    [&payment.payment_intent, &payment.charge]
        .into_iter()
        .flatten()
        .collect()
}

/// Holds the locks of a payment's references, so recording it and reversing it never
/// interleave (each would miss the other).
pub(super) async fn lock_money(s: &mut Session, ctx: &Ctx<'_>, money: &Money) -> Result<()> {
    let mut refs = money_refs(money);
    refs.sort();
    for r in refs {
        s.lock_name(&format!("payment:{}:{r}", ctx.provider))
            .await?;
    }
    Ok(())
}

/// Holds the lock of a store order before anything else, when an event names one. A store
/// (Lemon Squeezy) reports the order and the subscription it starts as separate events that may
/// run at once; each looks for the other to adopt one license between them, and without a
/// common lock both can miss the other and issue a license each. Locks are always taken in the
/// order order → subscription → money, so no two events wait on each other.
pub(super) async fn lock_order(s: &mut Session, ctx: &Ctx<'_>, order: Option<&str>) -> Result<()> {
    if let Some(order) = order {
        s.lock_name(&object_lock(ctx, ObjectKind::Order, order))
            .await?;
    }
    Ok(())
}

pub(super) fn object_lock(ctx: &Ctx<'_>, kind: ObjectKind, id: &str) -> String {
    format!("object:{}:{}:{id}", ctx.provider, kind.as_str())
}

/// An invoice's money with what a separate report said settled it (Stripe no longer puts the
/// payment intent on the invoice).
pub(super) async fn with_link(
    s: &mut Session,
    ctx: &Ctx<'_>,
    kind: ObjectKind,
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
pub(super) fn fill_money(payment: &mut Payment, money: &Money) -> bool {
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

pub(super) fn new_payment_fields(
    ctx: &Ctx<'_>,
    kind: ObjectKind,
    object_id: &str,
    status: PaymentStatus,
    money: &Money,
) -> NewPayment {
    NewPayment {
        provider: ctx.provider.to_owned(),
        object_kind: kind,
        object_id: object_id.to_owned(),
        status,
        customer_id: None,
        plan_id: None,
        subscription_id: None,
        payment_intent: money.payment_intent.clone(),
        charge: money.charge.clone(),
        amount: money.amount,
        currency: money.currency.clone(),
        event_id: ctx.event_id.to_owned(),
    }
}

pub(super) fn new_payment(
    ctx: &Ctx<'_>,
    kind: ObjectKind,
    object_id: &str,
    status: PaymentStatus,
    sub: &Subscription,
    money: &Money,
) -> NewPayment {
    let mut p = new_payment_fields(ctx, kind, object_id, status, money);
    p.subscription_id = Some(sub.subscription_id.clone());
    p.customer_id = sub.customer_id;
    p.plan_id = sub.plan_id;
    p
}

/// What settled an invoice, for reports of the invoice that do not say: linked, so a refund of
/// that payment finds the invoice's licenses.
pub(super) async fn invoice_settled(
    s: &mut Session,
    ctx: &Ctx<'_>,
    invoice: String,
    money: Money,
) -> Result<String> {
    s.lock_name(&object_lock(ctx, ObjectKind::Invoice, &invoice))
        .await?;
    lock_money(s, ctx, &money).await?;
    s.insert_payment_link(
        ctx.provider,
        ObjectKind::Invoice,
        &invoice,
        money.payment_intent.as_deref(),
        money.charge.as_deref(),
        ctx.at,
    )
    .await?;
    let Some(mut payment) = s
        .payment_for(ctx.provider, ObjectKind::Invoice, &invoice)
        .await?
    else {
        return Ok(format!(
            "invoice {invoice} is settled; its payment is linked when it arrives"
        ));
    };
    if fill_money(&mut payment, &money) {
        let was = payment.status;
        save_payment(s, ctx, &payment, was).await?;
    }
    let reversed = reverse_if_reported(s, ctx, &payment).await?;
    Ok(format!(
        "invoice {invoice} (payment {}) settled{reversed}",
        payment.id
    ))
}
