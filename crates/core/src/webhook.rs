//! Outgoing webhooks: what events exist, which changes announce them, which endpoints want them,
//! where a delivery may go, and when a failed one is tried again. Pure rules; the app writes
//! the events in the transaction of the change they report, and a worker delivers them.
//!
//! Why one enum of event types, mapped from [`AuditAction`] here: every change of a license
//! is written with its audit entry in one function of the app, which asks this mapping what the
//! entry announces. A new audit action is a new variant the compiler makes this `match`
//! consider, so no write path can add a change that forgets its event.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::payment::{PaymentStatus, Subscription};
use crate::{AuditAction, DomainError};

/// A kind of event an endpoint may subscribe to. The text ([`EventType::as_str`]) is what
/// receivers switch on: it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    LicenseCreated,
    /// A change with no more specific event: notes, metadata, customer, plan, an expiry set
    /// by hand or by a subscription, the floating lease.
    LicenseUpdated,
    LicenseExtended,
    LicenseRenewed,
    LicenseBlocked,
    LicenseUnblocked,
    /// The license passed its expiry (found by a sweep, whether or not anyone touched it).
    LicenseExpired,
    LicenseExpiringSoon,
    LicenseDeleted,
    LicenseFeaturesChanged,
    LicenseMachineLimitChanged,
    ActivationCreated,
    ActivationDeleted,
    /// A floating activation's lease ran out without a check-in.
    FloatingLeaseLapsed,
    CustomerCreated,
    CustomerUpdated,
    PaymentSucceeded,
    PaymentFailed,
    PaymentRefunded,
    PaymentDisputed,
    SubscriptionUpdated,
    SubscriptionCancelled,
    /// A payment provider's event could not be applied (it is kept, failed, with the reason).
    ProviderEventFailed,
    /// A mail to a buyer could not be sent (the outbox keeps trying).
    MailFailed,
    /// Sent only by "send test event", to the one endpoint it was asked for.
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 25] = [
        EventType::LicenseCreated,
        EventType::LicenseUpdated,
        EventType::LicenseExtended,
        EventType::LicenseRenewed,
        EventType::LicenseBlocked,
        EventType::LicenseUnblocked,
        EventType::LicenseExpired,
        EventType::LicenseExpiringSoon,
        EventType::LicenseDeleted,
        EventType::LicenseFeaturesChanged,
        EventType::LicenseMachineLimitChanged,
        EventType::ActivationCreated,
        EventType::ActivationDeleted,
        EventType::FloatingLeaseLapsed,
        EventType::CustomerCreated,
        EventType::CustomerUpdated,
        EventType::PaymentSucceeded,
        EventType::PaymentFailed,
        EventType::PaymentRefunded,
        EventType::PaymentDisputed,
        EventType::SubscriptionUpdated,
        EventType::SubscriptionCancelled,
        EventType::ProviderEventFailed,
        EventType::MailFailed,
        EventType::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::LicenseCreated => "license.created",
            EventType::LicenseUpdated => "license.updated",
            EventType::LicenseExtended => "license.extended",
            EventType::LicenseRenewed => "license.renewed",
            EventType::LicenseBlocked => "license.blocked",
            EventType::LicenseUnblocked => "license.unblocked",
            EventType::LicenseExpired => "license.expired",
            EventType::LicenseExpiringSoon => "license.expiring_soon",
            EventType::LicenseDeleted => "license.deleted",
            EventType::LicenseFeaturesChanged => "license.features_changed",
            EventType::LicenseMachineLimitChanged => "license.machine_limit_changed",
            EventType::ActivationCreated => "activation.created",
            EventType::ActivationDeleted => "activation.deleted",
            EventType::FloatingLeaseLapsed => "floating.lease_lapsed",
            EventType::CustomerCreated => "customer.created",
            EventType::CustomerUpdated => "customer.updated",
            EventType::PaymentSucceeded => "payment.succeeded",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentRefunded => "payment.refunded",
            EventType::PaymentDisputed => "payment.disputed",
            EventType::SubscriptionUpdated => "subscription.updated",
            EventType::SubscriptionCancelled => "subscription.cancelled",
            EventType::ProviderEventFailed => "provider_event.failed",
            EventType::MailFailed => "mail.failed",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The part before the dot (`license`), which a `license.*` pattern names.
    pub fn group(self) -> &'static str {
        self.as_str().split_once('.').map_or("", |(g, _)| g)
    }

    /// Whether endpoints may subscribe to it (the test event goes only where it is sent).
    pub fn subscribable(self) -> bool {
        self != EventType::WebhookTest
    }

    /// The events an audit entry announces. `changed` lists the license fields an
    /// [`AuditAction::Updated`] entry changed: each changed field is announced once, under its
    /// most specific event (the machine limit and the features have their own).
    pub fn for_audit(action: AuditAction, changed: &[&str]) -> Vec<EventType> {
        use EventType as E;
        match action {
            AuditAction::Created | AuditAction::Imported => vec![E::LicenseCreated],
            AuditAction::Extended => vec![E::LicenseExtended],
            AuditAction::Renewed => vec![E::LicenseRenewed],
            AuditAction::Blocked => vec![E::LicenseBlocked],
            AuditAction::Unblocked => vec![E::LicenseUnblocked],
            AuditAction::Deleted => vec![E::LicenseDeleted],
            AuditAction::FeatureAdded | AuditAction::FeatureRemoved => {
                vec![E::LicenseFeaturesChanged]
            }
            AuditAction::Updated => {
                let mut out = Vec::new();
                if changed.contains(&"max_machines") {
                    out.push(E::LicenseMachineLimitChanged);
                }
                if changed.contains(&"features") {
                    out.push(E::LicenseFeaturesChanged);
                }
                if changed
                    .iter()
                    .any(|f| !matches!(*f, "max_machines" | "features"))
                {
                    out.push(E::LicenseUpdated);
                }
                out
            }
            AuditAction::ExpiryChanged
            | AuditAction::CustomerChanged
            | AuditAction::CustomerRemoved
            | AuditAction::PlanChanged
            | AuditAction::Subscribed
            | AuditAction::TrialStarted => vec![E::LicenseUpdated],
            AuditAction::Activated => vec![E::ActivationCreated],
            AuditAction::Deactivated => vec![E::ActivationDeleted],
            // Not changes of the license a receiver acts on: a file handed out, and the
            // program's own counters and notes.
            AuditAction::LicenseFileIssued
            | AuditAction::DataObjectAdded
            | AuditAction::DataObjectSet
            | AuditAction::DataObjectIncremented
            | AuditAction::DataObjectDecremented
            | AuditAction::DataObjectRemoved => Vec::new(),
        }
    }

    /// The event a payment's change of status announces (`was`: `None` for a new payment).
    pub fn for_payment(was: Option<PaymentStatus>, now: PaymentStatus) -> Option<EventType> {
        if was == Some(now) {
            return None;
        }
        Some(match now {
            PaymentStatus::Paid => EventType::PaymentSucceeded,
            PaymentStatus::Failed => EventType::PaymentFailed,
            PaymentStatus::Refunded => EventType::PaymentRefunded,
            PaymentStatus::Disputed => EventType::PaymentDisputed,
        })
    }

    /// The event a change of a subscription's record announces, if a receiver could see it
    /// (the fields the API shows).
    pub fn for_subscription(before: &Subscription, after: &Subscription) -> Option<EventType> {
        if after.status.is_ended() && !before.status.is_ended() {
            return Some(EventType::SubscriptionCancelled);
        }
        let seen = |s: &Subscription| {
            (
                s.license_id,
                s.plan_id,
                s.customer_id,
                s.status,
                s.quantity,
                s.cancel_at_period_end,
                s.period_end,
                s.paid_through,
                s.order_id.clone(),
                s.dunning_blocked,
            )
        };
        (seen(before) != seen(after)).then_some(EventType::SubscriptionUpdated)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One entry of an endpoint's event list: `*` (everything), `license.*` (a group), or one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPattern {
    All,
    Group(&'static str),
    One(EventType),
}

/// The most entries an endpoint's event list may have.
pub const MAX_PATTERNS: usize = 64;

impl EventPattern {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let text = text.trim();
        if text == "*" {
            return Ok(EventPattern::All);
        }
        if let Some(group) = text.strip_suffix(".*") {
            if let Some(t) = EventType::ALL
                .into_iter()
                .find(|t| t.subscribable() && t.group() == group)
            {
                return Ok(EventPattern::Group(t.group()));
            }
        }
        match EventType::parse(text).filter(|t| t.subscribable()) {
            Some(t) => Ok(EventPattern::One(t)),
            None => Err(DomainError::new(
                "events",
                format!(
                    "unknown event type {text:?}: give *, a group such as license.*, or one of {}",
                    EventType::ALL
                        .iter()
                        .filter(|t| t.subscribable())
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            EventPattern::All => "*".into(),
            EventPattern::Group(g) => format!("{g}.*"),
            EventPattern::One(t) => t.as_str().into(),
        }
    }

    pub fn matches(&self, t: EventType) -> bool {
        t.subscribable()
            && match self {
                EventPattern::All => true,
                EventPattern::Group(g) => t.group() == *g,
                EventPattern::One(one) => *one == t,
            }
    }
}

/// An endpoint's event list, validated: at least one pattern, none twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter(Vec<EventPattern>);

impl EventFilter {
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, DomainError> {
        if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
            return Err(DomainError::new(
                "events",
                format!("give 1 to {MAX_PATTERNS} event types or patterns (* for all)"),
            ));
        }
        let mut out: Vec<EventPattern> = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = EventPattern::parse(p.as_ref())?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(Self(out))
    }

    pub fn all() -> Self {
        Self(vec![EventPattern::All])
    }

    pub fn matches(&self, t: EventType) -> bool {
        self.0.iter().any(|p| p.matches(t))
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(EventPattern::as_string).collect()
    }
}

/// The longest endpoint URL accepted.
pub const MAX_URL_CHARS: usize = 2048;

/// Where an endpoint's deliveries go: an `http` or `https` URL with a host, without
/// credentials (they would show in every listing and log; the signature authenticates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    /// Reads an endpoint URL. Unless `allow_private`, a host that is a loopback, private,
    /// link-local or otherwise internal address (or `localhost`) is refused here already; names
    /// are checked again on every delivery, against the addresses they resolve to.
    pub fn parse(text: &str, allow_private: bool) -> Result<Self, DomainError> {
        let bad = |m: &str| DomainError::new("url", m.to_owned());
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_URL_CHARS {
            return Err(bad(&format!("must be 1 to {MAX_URL_CHARS} characters")));
        }
        let url = url::Url::parse(text).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("must be an http:// or https:// URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "must not hold a user name or password (the signature tells the receiver it is Keyturn)",
            ));
        }
        if url.fragment().is_some() {
            return Err(bad("must not have a #fragment"));
        }
        let host = url.host().ok_or_else(|| bad("must name a host"))?;
        if !allow_private {
            let refused = match host {
                url::Host::Ipv4(ip) => !public_address(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => !public_address(IpAddr::V6(ip)),
                url::Host::Domain(d) => {
                    let d = d.trim_end_matches('.').to_ascii_lowercase();
                    d == "localhost" || d.ends_with(".localhost")
                }
            };
            if refused {
                return Err(bad(
                    "points at a loopback, private or link-local address; set \
                     KEYTURN_WEBHOOK_ALLOW_PRIVATE to deliver to internal hosts",
                ));
            }
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host when it is an IP address written out (no name to resolve).
    pub fn literal_ip(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        }
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local, unique-local,
/// shared (carrier-grade NAT), unspecified, multicast, broadcast, documentation or reserved;
/// IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by it.
/// The SSRF guard: a webhook URL is the vendor's text, and without this it could make the
/// server call its own admin port or a cloud metadata service.
pub fn public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0                                  // "this network"
        || (a == 100 && (64..128).contains(&b))    // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0)          // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b))     // benchmarking
        || a >= 240) // reserved
}

fn public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return public_v4(v4);
    }
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00   // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80   // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0   // site-local (deprecated) fec0::/10
        || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

/// The IPv4 address an IPv6 address stands for, in the forms that reach one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4); // ::ffff:a.b.c.d
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail); // ::a.b.c.d (IPv4-compatible)
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail); // 64:ff9b::a.b.c.d (NAT64)
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )); // 2002:aabb:ccdd::/48 (6to4)
    }
    None
}

/// Attempts a delivery gets before it counts as failed. With the first retry after 30 s, the
/// delays double to six hours and stay there: the last attempt comes about 2.9 days after the
/// first (see [`retry_delay`]).
pub const MAX_ATTEMPTS: i64 = 21;
/// The longest wait between two attempts, as a multiple of the first (30 s → 6 h).
const MAX_DELAY_FACTOR: u32 = 720;

/// How long to wait after the `failed`-th failed attempt (1 for the first), or `None` when the
/// delivery has had all its attempts. `first` doubles with each failure up to 720 times itself;
/// `jitter` (0 to 1, drawn by the caller) spreads the wait by ±15 %, so deliveries that failed
/// together (an endpoint that was down) do not all come back at one instant.
pub fn retry_delay(first: Duration, failed: i64, jitter: f64) -> Option<Duration> {
    if failed >= MAX_ATTEMPTS {
        return None;
    }
    let doublings = failed.clamp(1, 31) as u32 - 1;
    let base = first
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(first.saturating_mul(MAX_DELAY_FACTOR));
    let spread = 0.85 + 0.3 * jitter.clamp(0.0, 1.0);
    Some(base.mul_f64(spread))
}

/// Whether an endpoint is disabled when one of its deliveries has just failed for good: every
/// attempt at the endpoint has failed since at least the first attempt of that delivery
/// (`failing_since` is the first failure since the last success), i.e. the endpoint has answered
/// nothing right for the whole retry period, about three days.
pub fn should_disable(failing_since: Option<DateTime<Utc>>, first_attempt: DateTime<Utc>) -> bool {
    failing_since.is_some_and(|since| since <= first_attempt)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its turn or its next attempt.
    Pending,
    Delivered,
    /// Had all its attempts; a manual retry makes it pending again.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl Serialize for DeliveryState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The longest overlap a rotated secret keeps signing, in hours (a week).
pub const MAX_OVERLAP_HOURS: i64 = 168;
/// The overlap when none is asked for.
pub const DEFAULT_OVERLAP_HOURS: i64 = 24;

/// The hours the old secret keeps signing after a rotation.
pub fn overlap_hours(asked: Option<i64>) -> Result<i64, DomainError> {
    let hours = asked.unwrap_or(DEFAULT_OVERLAP_HOURS);
    if !(0..=MAX_OVERLAP_HOURS).contains(&hours) {
        return Err(DomainError::new(
            "overlap_hours",
            format!("must be between 0 and {MAX_OVERLAP_HOURS}"),
        ));
    }
    Ok(hours)
}

/// How many bytes of a receiver's answer the delivery log keeps.
pub const RESPONSE_HEAD_BYTES: usize = 512;

/// The first bytes of an answer as text for the log: cut at a character boundary, control
/// characters but line breaks replaced.
pub fn response_head(body: &[u8]) -> String {
    let cut = &body[..body.len().min(RESPONSE_HEAD_BYTES)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

/// An endpoint as the API shows it: never its secrets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEndpoint {
    pub id: i64,
    pub url: String,
    pub description: String,
    /// The patterns it subscribes to (`*`, `license.*`, `customer.created`).
    pub events: Vec<String>,
    /// Only events about this product's licenses (and none about customers or mail).
    pub product_id: Option<i64>,
    pub enabled: bool,
    /// Why Keyturn disabled it, when it did.
    pub disabled_reason: Option<String>,
    /// Every attempt has failed since this time (none has succeeded since).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret replaced by the last rotation still signs.
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookDelivery {
    pub id: i64,
    pub endpoint_id: i64,
    /// The event's id, as the receiver sees it (`Keyturn-Event-Id`).
    pub event_id: String,
    pub event_type: String,
    pub license_id: Option<i64>,
    pub state: DeliveryState,
    pub attempts: i64,
    /// When it is tried next; `None` while it waits for an older delivery of its license.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
}

/// One attempt at a delivery, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookAttempt {
    pub id: i64,
    pub delivery_id: i64,
    pub at: DateTime<Utc>,
    /// The HTTP status, when an answer came.
    pub status: Option<i64>,
    /// Why it failed (no answer, a refused address, a status that is not 2xx).
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The first bytes of the answer.
    pub response: String,
    /// The server node that made the attempt.
    pub node: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::SubscriptionStatus;

    #[test]
    fn every_type_reads_back_and_names_are_unique() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
    }

    #[test]
    fn patterns_match_all_a_group_or_one_type() {
        let f = EventFilter::parse(&["license.*", "customer.created"]).unwrap();
        assert!(f.matches(EventType::LicenseExpired));
        assert!(f.matches(EventType::CustomerCreated));
        assert!(!f.matches(EventType::CustomerUpdated));
        assert!(!f.matches(EventType::PaymentSucceeded));
        assert!(EventFilter::all().matches(EventType::MailFailed));
        assert!(
            !EventFilter::all().matches(EventType::WebhookTest),
            "the test event is sent, never subscribed"
        );
        assert_eq!(
            f.to_strings(),
            ["license.*", "customer.created"].map(String::from)
        );
        assert!(EventFilter::parse::<&str>(&[]).is_err());
        assert!(EventFilter::parse(&["licence.*"]).is_err());
        assert!(EventFilter::parse(&["license.flown"]).is_err());
        assert!(EventFilter::parse(&["webhook.test"]).is_err());
        assert_eq!(
            EventFilter::parse(&["*", " * "]).unwrap().to_strings(),
            ["*"]
        );
    }

    #[test]
    fn audit_entries_announce_their_events() {
        use EventType as E;
        assert_eq!(E::for_audit(AuditAction::Created, &[]), [E::LicenseCreated]);
        assert_eq!(
            E::for_audit(AuditAction::Updated, &["max_machines"]),
            [E::LicenseMachineLimitChanged]
        );
        assert_eq!(
            E::for_audit(AuditAction::Updated, &["max_machines", "notes"]),
            [E::LicenseMachineLimitChanged, E::LicenseUpdated]
        );
        assert_eq!(
            E::for_audit(AuditAction::Updated, &[]),
            [],
            "nothing changed"
        );
        assert_eq!(
            E::for_audit(AuditAction::FeatureRemoved, &[]),
            [E::LicenseFeaturesChanged]
        );
        assert_eq!(
            E::for_audit(AuditAction::Deactivated, &[]),
            [E::ActivationDeleted]
        );
        assert!(E::for_audit(AuditAction::DataObjectSet, &[]).is_empty());
        // Every action that changes what the API shows of a license announces something.
        for a in AuditAction::ALL {
            let quiet = matches!(
                a,
                AuditAction::LicenseFileIssued
                    | AuditAction::DataObjectAdded
                    | AuditAction::DataObjectSet
                    | AuditAction::DataObjectIncremented
                    | AuditAction::DataObjectDecremented
                    | AuditAction::DataObjectRemoved
                    | AuditAction::Updated
            );
            assert_eq!(E::for_audit(a, &[]).is_empty(), quiet, "{a}");
        }
    }

    #[test]
    fn payments_announce_changes_of_status_only() {
        use PaymentStatus as P;
        assert_eq!(
            EventType::for_payment(None, P::Paid),
            Some(EventType::PaymentSucceeded)
        );
        assert_eq!(
            EventType::for_payment(Some(P::Failed), P::Paid),
            Some(EventType::PaymentSucceeded)
        );
        assert_eq!(EventType::for_payment(Some(P::Paid), P::Paid), None);
        assert_eq!(
            EventType::for_payment(Some(P::Paid), P::Refunded),
            Some(EventType::PaymentRefunded)
        );
        assert_eq!(
            EventType::for_payment(Some(P::Paid), P::Disputed),
            Some(EventType::PaymentDisputed)
        );
    }

    #[test]
    fn subscriptions_announce_what_the_api_shows() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let before = Subscription {
            provider: "stripe".into(),
            subscription_id: "sub_1".into(),
            license_id: Some(1),
            plan_id: Some(2),
            customer_id: None,
            status: SubscriptionStatus::Active,
            quantity: 1,
            cancel_at_period_end: false,
            period_end: None,
            paid_through: None,
            paid_at: None,
            license_expires: None,
            order_id: None,
            dunning_blocked: false,
            state_at: at,
            state_event: String::new(),
            shape_at: at,
            shape_event: String::new(),
        };
        let mut after = before.clone();
        after.state_event = "evt_2".into();
        assert_eq!(EventType::for_subscription(&before, &after), None);
        after.cancel_at_period_end = true;
        assert_eq!(
            EventType::for_subscription(&before, &after),
            Some(EventType::SubscriptionUpdated)
        );
        after.status = SubscriptionStatus::Canceled;
        assert_eq!(
            EventType::for_subscription(&before, &after),
            Some(EventType::SubscriptionCancelled)
        );
        assert_eq!(
            EventType::for_subscription(&after, &after),
            None,
            "cancelled once"
        );
    }

    #[test]
    fn internal_addresses_are_refused_in_every_form() {
        let internal = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
        ];
        for ip in internal {
            assert!(!public_address(ip.parse().unwrap()), "{ip} is internal");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(public_address(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn endpoint_urls_are_http_with_a_public_host_unless_allowed() {
        assert!(EndpointUrl::parse("https://hooks.example.com/keyturn", false).is_ok());
        assert!(EndpointUrl::parse("http://example.com:8080/x?y=1", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "not a url",
            "https://example.com/#frag",
            "",
        ] {
            assert!(EndpointUrl::parse(bad, false).is_err(), "{bad}");
        }
        for internal in [
            "http://127.0.0.1:9000/",
            "http://localhost/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:10.0.0.1]/",
            "http://api.localhost/",
        ] {
            let e = EndpointUrl::parse(internal, false).unwrap_err();
            assert!(
                e.message.contains("KEYTURN_WEBHOOK_ALLOW_PRIVATE"),
                "{internal}"
            );
            assert!(EndpointUrl::parse(internal, true).is_ok(), "{internal}");
        }
        assert_eq!(
            EndpointUrl::parse("http://127.0.0.1:9/", true)
                .unwrap()
                .literal_ip(),
            Some("127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn retries_back_off_for_about_three_days() {
        let first = Duration::from_secs(30);
        assert_eq!(retry_delay(first, 1, 0.5), Some(Duration::from_secs(30)));
        assert_eq!(retry_delay(first, 2, 0.5), Some(Duration::from_secs(60)));
        assert_eq!(
            retry_delay(first, 15, 0.5),
            Some(Duration::from_secs(6 * 3600)),
            "capped at six hours"
        );
        assert_eq!(retry_delay(first, MAX_ATTEMPTS, 0.5), None);
        let total: Duration = (1..MAX_ATTEMPTS)
            .map(|n| retry_delay(first, n, 0.5).unwrap())
            .sum();
        let days = total.as_secs_f64() / 86_400.0;
        assert!((2.5..3.5).contains(&days), "{days} days");
        const { assert!(MAX_ATTEMPTS >= 15) };
        // Jitter stays within ±15 %.
        let low = retry_delay(first, 3, 0.0).unwrap();
        let high = retry_delay(first, 3, 1.0).unwrap();
        assert_eq!(low, Duration::from_secs(102));
        assert_eq!(high, Duration::from_secs(138));
        // A sub-second first delay (tests) scales the whole schedule.
        assert_eq!(
            retry_delay(Duration::from_millis(10), 1, 0.5),
            Some(Duration::from_millis(10))
        );
    }

    #[test]
    fn an_endpoint_is_disabled_only_when_nothing_succeeded_for_the_whole_retry_period() {
        let first = DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::days(10);
        assert!(should_disable(
            Some(first - chrono::TimeDelta::hours(1)),
            first
        ));
        assert!(should_disable(Some(first), first));
        assert!(
            !should_disable(Some(first + chrono::TimeDelta::hours(1)), first),
            "something succeeded after this delivery's first attempt"
        );
        assert!(!should_disable(None, first));
    }

    #[test]
    fn response_heads_are_short_single_texts() {
        let long = vec![b'a'; 2000];
        assert_eq!(response_head(&long).len(), RESPONSE_HEAD_BYTES);
        assert_eq!(response_head(b"ok\r\n\x07"), "ok \n ");
        assert_eq!(overlap_hours(None), Ok(24));
        assert!(overlap_hours(Some(169)).is_err());
    }
}
