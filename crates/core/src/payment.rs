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

/// What was bought, as the provider reports it.
///
/// Only `provider_ids` (the price, variant or product ids actually purchased, most specific
/// first) say which plan a sale buys. A Keyturn plan id found in data the buyer can set (Lemon
/// Squeezy and Paddle `custom_data`, PayPal `custom_id`, metadata of a Stripe checkout Keyturn
/// did not create) is a `hint`: it may choose between plans that sell what was purchased, and
/// never picks a plan by itself.
///
/// A license URL's sale names the plan the vendor configured for the URL: `configured`, which
/// no buyer can set, decides by itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRef {
    pub provider_ids: Vec<String>,
    pub hint: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured: Option<i64>,
}

impl PlanRef {
    /// Names nothing that was purchased (a hint alone says nothing).
    pub fn is_empty(&self) -> bool {
        self.provider_ids.is_empty()
    }
}

/// How money moved, so a later refund or dispute can find what it bought. `amount` is in the
/// provider's unit: the currency's smallest unit for Stripe, hundredths for PayPal.
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
    /// A subscription exists (checkout completed, or the provider announced it). `order` is the
    /// sale that started it, when the provider reports that sale as an order of its own.
    SubscriptionStarted {
        subscription: String,
        order: Option<String>,
        buyer: Buyer,
        plan: PlanRef,
        quantity: i64,
        status: SubscriptionStatus,
        /// The current period as reported; not proof of payment.
        period_end: Option<DateTime<Utc>>,
        /// Set when the report itself attests payment: paid up to this time.
        paid_through: Option<DateTime<Utc>>,
        money: Money,
    },
    /// An invoice of a subscription was paid; `period_end` ends the period it paid for.
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
        /// The sale that started the subscription, for stores that report it as an order.
        order: Option<String>,
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
    /// Names the payment (intent, charge) that settled an invoice, for providers whose invoice
    /// reports no longer carry it (Stripe since API version 2025-03-31).
    InvoiceSettled { invoice: String, money: Money },
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

/// The expiry that paid time gives a subscription's license: the end of the last paid period
/// plus the plan's grace days, so a late payment never locks a paying customer out.
pub fn paid_expiry(
    paid_through: DateTime<Utc>,
    grace_days: i64,
) -> Result<DateTime<Utc>, DomainError> {
    crate::dates::add_days("period_end", paid_through, grace_days)
}

/// An amount in hundredths of its currency unit, from the decimal text a vendor or PayPal writes
/// (`"49"`, `"49.5"`, `"49.00"`): positive, at most two decimals, so sums are exact.
pub fn hundredths(text: &str) -> Option<i64> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = match text.trim().split_once('.') {
        Some((w, f)) if digits(f) && f.len() <= 2 => (w, f),
        Some(_) => return None,
        None => (text.trim(), ""),
    };
    if !digits(whole) {
        return None;
    }
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    let total = whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)?;
    (total > 0).then_some(total)
}

/// Hundredths as the decimal text PayPal takes: `9800` → `"98.00"`.
pub fn format_hundredths(amount: i64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn paid_time_adds_grace_and_stays_in_range() {
        let end = Utc::now() + Duration::days(30);
        assert_eq!(paid_expiry(end, 5).unwrap(), end + Duration::days(5));
        assert_eq!(paid_expiry(end, 0).unwrap(), end);
        assert!(paid_expiry(DateTime::<Utc>::MAX_UTC, 1).is_err());
    }

    #[test]
    fn amounts_are_exact_hundredths() {
        assert_eq!(hundredths("49.00"), Some(4900));
        assert_eq!(hundredths("49"), Some(4900));
        assert_eq!(hundredths("49.5"), Some(4950));
        assert_eq!(hundredths(" 0.01 "), Some(1));
        for bad in [
            "",
            "0",
            "0.00",
            "-1",
            "49.999",
            "4 9",
            "1e3",
            "lots",
            ".5",
            "5.",
            "99999999999999",
        ] {
            assert_eq!(hundredths(bad), None, "{bad:?}");
        }
        assert_eq!(format_hundredths(9800), "98.00");
        assert_eq!(format_hundredths(5), "0.05");
    }

    fn record(status: SubscriptionStatus) -> Subscription {
        Subscription {
            provider: "stripe".into(),
            subscription_id: "sub_1".into(),
            license_id: None,
            plan_id: None,
            customer_id: None,
            status,
            quantity: 1,
            cancel_at_period_end: false,
            period_end: None,
            paid_through: None,
            paid_at: None,
            license_expires: None,
            order_id: None,
            dunning_blocked: false,
            state_at: DateTime::UNIX_EPOCH,
            state_event: String::new(),
            shape_at: DateTime::UNIX_EPOCH,
            shape_event: String::new(),
        }
    }

    #[test]
    fn reports_order_by_time_then_event_id() {
        let t = Utc::now();
        let mut sub = record(SubscriptionStatus::Active);
        assert!(sub.is_newer_state(t, "evt_b"));
        sub.state_at = t;
        sub.state_event = "evt_b".into();
        assert!(
            !sub.is_newer_state(t, "evt_a"),
            "same second: the event id decides"
        );
        assert!(sub.is_newer_state(t, "evt_c"));
        assert!(!sub.is_newer_state(t - Duration::seconds(1), "evt_z"));
        assert!(
            sub.is_newer_shape(t, "evt_a"),
            "plan and status are ordered apart"
        );
    }

    #[test]
    fn paid_time_is_the_floor_and_a_vendor_grant_stands_above_it() {
        let t = Utc::now();
        let mut sub = record(SubscriptionStatus::Active);
        assert_eq!(sub.license_expiry(None, 5), Ok(None), "nothing paid yet");
        sub.paid_through = Some(t);
        let paid = t + Duration::days(5);
        let expires = |sub: &Subscription, current| {
            let e = sub.license_expiry(Some(current), 5).unwrap().unwrap();
            assert_eq!(e.paid, paid_expiry(sub.paid_through.unwrap(), 5).unwrap());
            e.expires
        };
        // First alignment: whatever the license had (an adopted order's expiry) gives way.
        assert_eq!(expires(&sub, t + Duration::days(40)), paid);
        sub.license_expires = Some(paid);
        assert_eq!(expires(&sub, paid), paid);
        let granted = t + Duration::days(90);
        assert_eq!(
            expires(&sub, granted),
            granted,
            "changed by hand beyond paid time: it stands"
        );
        assert_eq!(
            expires(&sub, t - Duration::days(1)),
            paid,
            "paid time is never taken away"
        );
        sub.paid_through = Some(t + Duration::days(30));
        assert_eq!(
            expires(&sub, granted),
            granted,
            "a later period short of the grant"
        );
        sub.paid_through = Some(t + Duration::days(100));
        assert_eq!(
            expires(&sub, granted),
            t + Duration::days(105),
            "paid time past the grant moves it"
        );
    }

    #[test]
    fn a_payment_after_the_overdue_report_lifts_dunning() {
        let t = Utc::now();
        let mut sub = record(SubscriptionStatus::PastDue);
        sub.state_at = t;
        assert!(sub.overdue());
        sub.paid_at = Some(t);
        assert!(sub.overdue(), "paid before it was reported overdue");
        sub.paid_at = Some(t + Duration::seconds(1));
        assert!(!sub.overdue());
        sub.status = SubscriptionStatus::Active;
        sub.paid_at = None;
        assert!(!sub.overdue());
    }

    #[test]
    fn a_period_end_at_the_end_of_time_is_an_error_not_a_panic() {
        let e = paid_expiry(DateTime::<Utc>::MAX_UTC, 5).unwrap_err();
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

/// The business object a payment is recorded for, one payment each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A sale: a checkout session, a store's order, a license URL's call.
    Order,
    /// A subscription's invoice.
    Invoice,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Invoice => "invoice",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "order" => Some(Self::Order),
            "invoice" => Some(Self::Invoice),
            _ => None,
        }
    }
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Paid,
    /// Could not be charged; a later payment of the same invoice replaces it.
    Failed,
    Refunded,
    Disputed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::Failed => "failed",
            Self::Refunded => "refunded",
            Self::Disputed => "disputed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "paid" => Some(Self::Paid),
            "failed" => Some(Self::Failed),
            "refunded" => Some(Self::Refunded),
            "disputed" => Some(Self::Disputed),
            _ => None,
        }
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Reversal {
    pub fn as_str(self) -> &'static str {
        self.status().as_str()
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "refunded" => Some(Self::Refunded),
            "disputed" => Some(Self::Disputed),
            _ => None,
        }
    }

    /// The status a payment it reverses takes.
    pub fn status(self) -> PaymentStatus {
        match self {
            Self::Refunded => PaymentStatus::Refunded,
            Self::Disputed => PaymentStatus::Disputed,
        }
    }
}

/// A payment as recorded: one per business object (checkout session, invoice, order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: i64,
    pub provider: String,
    pub object_kind: ObjectKind,
    pub object_id: String,
    pub status: PaymentStatus,
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
    pub status: crate::provider::ProviderEventStatus,
    pub detail: String,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// A provider's subscription as its reports, in whatever order they arrived, describe it.
///
/// Each part has its own writers, so the record converges whatever the delivery order: status
/// and cancellation setting follow the newest report of the subscription itself (invoices carry
/// no status); plan and quantity follow the newest report that names them, invoices included;
/// an ended status is final; the reported period and the paid time only ever grow.
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
    /// The end of the current period as last reported; not proof of payment.
    pub period_end: Option<DateTime<Utc>>,
    /// The end of the last period paid for: the license runs to it plus the plan's grace.
    pub paid_through: Option<DateTime<Utc>>,
    /// The provider's time of the newest payment.
    pub paid_at: Option<DateTime<Utc>>,
    /// The expiry the payment pipeline last gave the license (see [`Subscription::license_expiry`]).
    #[serde(skip)]
    pub license_expires: Option<DateTime<Utc>>,
    /// The store order that started the subscription, whose license it adopts.
    pub order_id: Option<String>,
    /// Set while the license is blocked by the plan's rules for this subscription (payment
    /// overdue, or cancelled where the plan blocks then), so the block is lifted when they no
    /// longer call for it, and a block a vendor or a refund put there never is.
    pub dunning_blocked: bool,
    /// The provider's time of the status recorded here; older reports do not overwrite it.
    pub state_at: DateTime<Utc>,
    #[serde(skip)]
    pub state_event: String,
    /// The provider's time of the plan and quantity recorded here.
    pub shape_at: DateTime<Utc>,
    #[serde(skip)]
    pub shape_event: String,
}

/// What [`Subscription::license_expiry`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LicenseExpiry {
    /// The end of paid time plus grace.
    pub paid: DateTime<Utc>,
    /// What the license runs to: `paid`, or a vendor's later grant.
    pub expires: DateTime<Utc>,
}

impl Subscription {
    /// The expiry the subscription's license should have now, `current` being what it has, and
    /// the part paid time gives (which becomes `license_expires`). Paid time plus grace is the
    /// floor, never more than was paid for, whatever order events came in. A vendor may give
    /// more by hand: an expiry other than the one paid time last gave was set by someone else,
    /// and it stands while it lies beyond paid time. `None` while nothing is paid yet.
    pub fn license_expiry(
        &self,
        current: Option<DateTime<Utc>>,
        grace_days: i64,
    ) -> Result<Option<LicenseExpiry>, DomainError> {
        let Some(paid) = self.paid_through else {
            return Ok(None);
        };
        let paid = paid_expiry(paid, grace_days)?;
        let granted = current.filter(|c| self.license_expires.is_some_and(|last| last != *c));
        Ok(Some(LicenseExpiry {
            paid,
            expires: granted.map_or(paid, |g| g.max(paid)),
        }))
    }

    /// Whether a status report made at `at` by `event` is newer than the one recorded. Reports
    /// of the same second are ordered by event id, so either delivery order gives one answer.
    pub fn is_newer_state(&self, at: DateTime<Utc>, event: &str) -> bool {
        (at, event) > (self.state_at, self.state_event.as_str())
    }

    /// Whether a report of plan and quantity made at `at` by `event` is newer than the one
    /// recorded.
    pub fn is_newer_shape(&self, at: DateTime<Utc>, event: &str) -> bool {
        (at, event) > (self.shape_at, self.shape_event.as_str())
    }

    /// Payment is overdue and no payment arrived after that was reported: what a plan's dunning
    /// rule acts on.
    pub fn overdue(&self) -> bool {
        self.status.is_delinquent() && self.paid_at.is_none_or(|paid| paid <= self.state_at)
    }
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
    /// The Stripe price that charges for it; empty when the offer is paid with PayPal only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stripe_price_id: String,
    pub mode: OfferMode,
    /// For PayPal (one-time offers): the amount per unit, e.g. "49.00", and its currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paypal_amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// How an offer is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferMode {
    /// Once.
    #[default]
    Payment,
    /// Every period, until cancelled.
    Subscription,
}

impl OfferMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "payment",
            Self::Subscription => "subscription",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "payment" => Some(Self::Payment),
            "subscription" => Some(Self::Subscription),
            _ => None,
        }
    }
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
    /// What is sold, shown on the buy page above the offers.
    #[serde(default)]
    pub description: String,
    /// Shown under the prices, e.g. "Prices include VAT".
    #[serde(default)]
    pub tax_note: String,
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
    /// What the provider must capture for this checkout, where Keyturn checks it (PayPal): in
    /// hundredths of `currency`.
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub created: DateTime<Utc>,
}
