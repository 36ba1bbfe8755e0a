//! One-time sales: what a sale buys (a checkout Keyturn started, a license URL's plan, or the
//! purchased ids), the licenses it issues once, and the order a store also reports as the start
//! of a subscription.

use keyturn_core::payment::{
    format_hundredths, Buyer, Money, ObjectKind, PaymentStatus, PlanRef, QuantityMode,
};
use keyturn_store::Session;
use serde_json::json;

use crate::licenses::new_license;
use crate::{AppError, Result};

use super::buyers::{customer, form_template, product_name};
use super::money::{
    fill_money, lock_money, lock_order, new_payment_fields, save_payment, save_subscription,
    upsert_payment,
};
use super::reversals::reverse_if_reported;
use super::subscriptions::settle;
use super::{issue, machines, resolve_plan, Ctx};

/// The checkout Keyturn started under this id with this provider, if it did.
pub(super) async fn checkout_of(
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
pub(super) fn check_captured(
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

pub(super) async fn purchased(
    s: &mut Session,
    ctx: &Ctx<'_>,
    order: &str,
    buyer: &Buyer,
    plan_ref: &PlanRef,
    quantity: i64,
    money: &Money,
) -> Result<String> {
    lock_order(s, ctx, Some(order)).await?;
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
    // holds its lock next (after the order's), as its own events do.
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
    let customer_id = customer(s, ctx, buyer).await?;
    let mut p = new_payment_fields(ctx, ObjectKind::Order, order, PaymentStatus::Paid, money);
    p.customer_id = customer_id;
    p.plan_id = Some(plan.id);
    p.subscription_id = sub.as_ref().map(|sub| sub.subscription_id.clone());
    let (mut payment, new) = upsert_payment(s, ctx, &p).await?;
    if !new {
        // Already fulfilled, perhaps by its subscription's report, which knew less of the money.
        let filled = fill_money(&mut payment, money);
        if filled || payment.customer_id.is_none() {
            payment.customer_id = payment.customer_id.or(customer_id);
            let was = payment.status;
            save_payment(s, ctx, &payment, was).await?;
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
        save_subscription(s, ctx, sub).await?;
        return Ok(detail);
    }
    let quantity = quantity.clamp(1, crate::licenses::MAX_QUANTITY);
    let (count, seats) = match plan.quantity_mode {
        QuantityMode::Keys => (quantity, 1),
        QuantityMode::Seats => (1, quantity),
    };
    let mut new = new_license(plan.product_id, Some(&plan), ctx.at);
    new.customer_id = customer_id;
    new.max_machines = machines(&plan, seats);
    new.metadata = json!({"order": order});
    let mut ids = Vec::new();
    for _ in 0..count {
        let details = json!({"order": order, "plan_id": plan.id, "payment_id": payment.id});
        let license = issue(s, ctx, new.clone(), details).await?;
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
            product_id: plan.product_id,
            template: form_template(s, order).await?,
            portal: ctx.portal,
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
        save_subscription(s, ctx, sub).await?;
    }
    Ok(detail)
}
