//! Refunds and disputes: kept even when they arrive before the payment they reverse, and checked
//! whenever a payment is recorded or linked to a license; they block what the payment bought.

use keyturn_core::payment::{Money, Payment, Reversal};
use keyturn_core::AuditAction;
use keyturn_store::Session;
use serde_json::json;

use crate::{AppError, Result};

use super::money::{lock_money, money_refs, money_refs_of, save_payment};
use super::{save, Ctx};

pub(super) async fn reversed(
    s: &mut Session,
    ctx: &Ctx<'_>,
    reversal: Reversal,
    money: &Money,
) -> Result<String> {
    let kind = reversal.as_str();
    let refs = money_refs(money);
    if refs.is_empty() {
        return Err(AppError::invalid(
            "payment",
            "the reversal names no payment",
        ));
    }
    lock_money(s, ctx, money).await?;
    for r in &refs {
        s.insert_reversal(ctx.provider, r, reversal, ctx.event_id, ctx.at)
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
            blocked.extend(block_paid_licenses(s, ctx, &mut payment, reversal).await?);
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
pub(super) async fn reverse_if_reported(
    s: &mut Session,
    ctx: &Ctx<'_>,
    payment: &Payment,
) -> Result<String> {
    for r in money_refs_of(payment) {
        if let Some(reversal) = s.reversal(ctx.provider, r).await? {
            if payment.status == reversal.status() {
                return Ok(String::new());
            }
            let mut payment = payment.clone();
            payment.license_ids = s.payment_license_ids(payment.id).await?;
            let blocked = block_paid_licenses(s, ctx, &mut payment, reversal).await?;
            let kind = reversal.as_str();
            return Ok(format!("; already {kind}: blocked license(s) {blocked:?}"));
        }
    }
    Ok(String::new())
}

pub(super) async fn block_paid_licenses(
    s: &mut Session,
    ctx: &Ctx<'_>,
    payment: &mut Payment,
    reversal: Reversal,
) -> Result<Vec<i64>> {
    let was = payment.status;
    payment.status = reversal.status();
    payment.event_id = ctx.event_id.to_owned();
    save_payment(s, ctx, payment, was).await?;
    let mut blocked = Vec::new();
    for id in payment.license_ids.clone() {
        if let Some(mut license) = s.lock_license(id).await? {
            if !license.blocked {
                license.blocked = true;
                save(
                    s,
                    ctx,
                    &license,
                    AuditAction::Blocked,
                    json!({"reason": reversal.as_str(), "payment_id": payment.id}),
                )
                .await?;
                blocked.push(id);
            }
        }
    }
    Ok(blocked)
}
