//! Payments in provider-neutral terms. Every payment provider adapter translates its webhooks into
//! these events; one use case applies them to licenses, so every provider gets the same rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Who paid, as the provider describes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    pub name: Option<String>,
    pub email: Option<String>,
    /// The provider's own id for the customer (Stripe `cus_…`).
    pub provider_customer_id: Option<String>,
}

/// What was bought: an explicit Keyturn plan id (set by Keyturn's own payment forms) and/or the
/// provider's ids for the product (Stripe price, plan and product ids), which plans list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRef {
    pub plan_id: Option<i64>,
    pub provider_ids: Vec<String>,
}

impl PlanRef {
    pub fn is_empty(&self) -> bool {
        self.plan_id.is_none() && self.provider_ids.is_empty()
    }
}

/// How money moved, so a later refund or dispute can find what it bought.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub payment_intent: Option<String>,
    pub charge: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Trialing,
    PastDue,
    Unpaid,
    Canceled,
    Incomplete,
    IncompleteExpired,
    Paused,
    Unknown,
}

impl SubscriptionStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "trialing" => Self::Trialing,
            "past_due" => Self::PastDue,
            "unpaid" => Self::Unpaid,
            "canceled" => Self::Canceled,
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "paused" => Self::Paused,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Trialing => "trialing",
            Self::PastDue => "past_due",
            Self::Unpaid => "unpaid",
            Self::Canceled => "canceled",
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Paused => "paused",
            Self::Unknown => "unknown",
        }
    }

    /// Payment is overdue: the plan's dunning rule decides what happens to the license.
    pub fn is_delinquent(self) -> bool {
        matches!(self, Self::PastDue | Self::Unpaid)
    }

    pub fn is_ended(self) -> bool {
        matches!(self, Self::Canceled | Self::IncompleteExpired)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reversal {
    Refunded,
    Disputed,
}

/// One fact a payment provider reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaymentEvent {
    /// A one-time sale: `order` is the provider's id for it (Stripe checkout session).
    Purchased {
        order: String,
        buyer: Buyer,
        plan: PlanRef,
        quantity: i64,
        money: Money,
    },
    /// A subscription exists (checkout completed, or the provider announced it).
    SubscriptionStarted {
        subscription: String,
        order: Option<String>,
        buyer: Buyer,
        plan: PlanRef,
        quantity: i64,
        status: SubscriptionStatus,
        period_end: Option<DateTime<Utc>>,
        money: Money,
    },
    /// An invoice of a subscription was paid.
    Renewed {
        subscription: String,
        invoice: String,
        buyer: Buyer,
        plan: PlanRef,
        quantity: i64,
        period_end: Option<DateTime<Utc>>,
        money: Money,
    },
    /// Plan, quantity, status or cancellation setting of a subscription changed.
    SubscriptionChanged {
        subscription: String,
        plan: PlanRef,
        quantity: i64,
        status: SubscriptionStatus,
        cancel_at_period_end: bool,
        period_end: Option<DateTime<Utc>>,
        /// Set by providers whose subscription reports attest payment (their renewal notice
        /// carries no period): the license runs to this time plus grace, never shorter.
        paid_through: Option<DateTime<Utc>>,
    },
    /// An invoice could not be charged.
    PaymentFailed {
        subscription: Option<String>,
        invoice: String,
        money: Money,
    },
    /// The subscription ended.
    Cancelled {
        subscription: String,
        period_end: Option<DateTime<Utc>>,
    },
    /// Money came back: a full refund or a dispute.
    Reversed { reversal: Reversal, money: Money },
}

/// How a quantity above one is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantityMode {
    /// That many keys.
    #[default]
    Keys,
    /// One key whose machine limit is the plan's times the quantity.
    Seats,
}

/// What an overdue subscription does to its license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DunningRule {
    /// The license runs until its paid time (plus grace) is over.
    #[default]
    Keep,
    /// Blocked until a payment succeeds.
    Block,
}

/// What a cancelled subscription does to its license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelRule {
    /// Blocked at once.
    #[default]
    Block,
    /// Left to expire at the end of the paid period (plus grace).
    Expire,
}

/// The expiry after a paid period ending at `period_end`: its end plus the grace days, never
/// earlier than what the license already has (a late or repeated renewal never shortens it).
/// A period end a provider reports past the dates Keyturn accepts is an error.
pub fn renewed_expiry(
    current: Option<DateTime<Utc>>,
    period_end: DateTime<Utc>,
    grace_days: i64,
) -> Result<DateTime<Utc>, DomainError> {
    let paid = crate::dates::add_days("period_end", period_end, grace_days)?;
    Ok(current.map_or(paid, |c| c.max(paid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn renewal_adds_grace_and_never_shortens() {
        let end = Utc::now() + Duration::days(30);
        assert_eq!(renewed_expiry(None, end, 5), Ok(end + Duration::days(5)));
        let later = end + Duration::days(100);
        assert_eq!(renewed_expiry(Some(later), end, 5), Ok(later));
        let earlier = end - Duration::days(1);
        assert_eq!(
            renewed_expiry(Some(earlier), end, 5),
            Ok(end + Duration::days(5))
        );
    }

    #[test]
    fn a_period_end_at_the_end_of_time_is_an_error_not_a_panic() {
        let e = renewed_expiry(None, DateTime::<Utc>::MAX_UTC, 5).unwrap_err();
        assert_eq!(e.field, "period_end");
    }

    #[test]
    fn statuses_parse_and_classify() {
        assert_eq!(
            SubscriptionStatus::parse("past_due"),
            SubscriptionStatus::PastDue
        );
        assert!(SubscriptionStatus::parse("unpaid").is_delinquent());
        assert!(SubscriptionStatus::parse("canceled").is_ended());
        assert_eq!(
            SubscriptionStatus::parse("new-thing"),
            SubscriptionStatus::Unknown
        );
        for s in [
            "active", "trialing", "past_due", "unpaid", "canceled", "paused",
        ] {
            assert_eq!(SubscriptionStatus::parse(s).as_str(), s);
        }
    }
}

/// A payment as recorded: one per business object (checkout session, invoice, order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: i64,
    pub provider: String,
    pub object_kind: String,
    pub object_id: String,
    /// `paid`, `failed`, `refunded` or `disputed`.
    pub status: String,
    pub customer_id: Option<i64>,
    pub plan_id: Option<i64>,
    pub subscription_id: Option<String>,
    pub payment_intent: Option<String>,
    pub charge: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    /// The provider event that last changed this payment.
    pub event_id: String,
    pub license_ids: Vec<i64>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// An inbound webhook as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderEvent {
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub received: DateTime<Utc>,
    /// `applied`, `ignored` or `failed` (a failed event is applied again when redelivered).
    pub status: String,
    pub detail: String,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// A provider's subscription as last reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub provider: String,
    pub subscription_id: String,
    pub license_id: Option<i64>,
    pub plan_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub status: SubscriptionStatus,
    pub quantity: i64,
    pub cancel_at_period_end: bool,
    pub period_end: Option<DateTime<Utc>>,
    /// Set while the license is blocked because payment is overdue, so a later payment lifts
    /// only that block and never one a vendor or a refund put there.
    pub dunning_blocked: bool,
    /// The provider's time of the state recorded here; older reports do not overwrite it.
    pub state_at: DateTime<Utc>,
}

impl QuantityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keys => "keys",
            Self::Seats => "seats",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keys" => Some(Self::Keys),
            "seats" => Some(Self::Seats),
            _ => None,
        }
    }
}

impl DunningRule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keep" => Some(Self::Keep),
            "block" => Some(Self::Block),
            _ => None,
        }
    }
}

impl CancelRule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Expire => "expire",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "block" => Some(Self::Block),
            "expire" => Some(Self::Expire),
            _ => None,
        }
    }
}

/// Which parameters a store sends to a license URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseUrlParams {
    pub order_id: String,
    pub name: String,
    pub email: String,
    pub quantity: String,
    /// Distinguishes several calls for one order (a store that calls once per copy).
    pub item: String,
}

impl LicenseUrlParams {
    /// The names each store sends by default; every one can be overridden.
    pub fn defaults_for(store: &str) -> Option<Self> {
        let p = |o: &str, n: &str, e: &str, q: &str, i: &str| Self {
            order_id: o.into(),
            name: n.into(),
            email: e.into(),
            quantity: q.into(),
            item: i.into(),
        };
        match store {
            // SendOwl fills the vendor's URL template, e.g.
            // `?order_id={{order.id}}&buyer_name={{order.buyer_name}}&buyer_email={{order.buyer_email}}`.
            "sendowl" => Some(p(
                "order_id",
                "buyer_name",
                "buyer_email",
                "quantity",
                "item",
            )),
            // DPD posts the purchase's fields in the PayPal style it uses throughout.
            "dpd" => Some(p(
                "txn_id",
                "name",
                "payer_email",
                "quantity",
                "item_number",
            )),
            "generic" => Some(p("order_id", "name", "email", "quantity", "item")),
            _ => None,
        }
    }
}

/// A license URL as listed (its secret is shown only when created or rotated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseUrl {
    pub id: i64,
    pub plan_id: i64,
    pub name: String,
    pub store: String,
    pub params: LicenseUrlParams,
    pub email_buyer: bool,
    pub created: DateTime<Utc>,
    pub rotated: DateTime<Utc>,
}

/// One plan on a payment form, with what the buyer sees and what the provider charges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub plan_id: i64,
    /// Shown to the buyer, e.g. "Pro — yearly".
    pub label: String,
    /// Shown to the buyer, e.g. "€49 / year".
    pub price: String,
    /// The Stripe price that charges for it.
    pub stripe_price_id: String,
    /// `payment` (one-time) or `subscription`.
    pub mode: String,
    /// For PayPal (one-time offers): the amount per unit, e.g. "49.00", and its currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paypal_amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// A hosted page where buyers pick a plan and pay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentForm {
    pub id: i64,
    /// In the form's URL: `/buy/{public_id}`.
    pub public_id: String,
    pub name: String,
    pub product_id: i64,
    pub offers: Vec<Offer>,
    pub success_text: String,
    /// The mail that hands over the keys; `{name}`, `{product}` and `{keys}` are filled in.
    pub email_subject: String,
    pub email_body: String,
    pub created: DateTime<Utc>,
}

/// A checkout a buyer started on a form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkout {
    pub session_id: String,
    pub form_id: i64,
    pub provider: String,
    pub plan_id: i64,
    pub quantity: i64,
    pub buyer_name: String,
    pub buyer_email: String,
    pub created: DateTime<Utc>,
}
