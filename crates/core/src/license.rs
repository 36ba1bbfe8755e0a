//! The entities of the licensing domain, as the rest of the system sees them once stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{dates, DomainError};

/// What a vendor sells. `features` is ordered: the Cryptolens API exposes the first eight as F1..F8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    /// What the vendor says about it, for people setting it up (never shown to programs).
    #[serde(default)]
    pub description: String,
    pub features: Vec<String>,
    /// Whether replies to programs (unauthenticated: validation, activation, trials) show a
    /// license's notes. They are the vendor's own by default.
    #[serde(default)]
    pub public_notes: bool,
    /// The license metadata keys those replies show; the rest stays the vendor's.
    #[serde(default)]
    pub public_metadata: Vec<String>,
    /// Cryptolens's "block expired licenses": on the Cryptolens API an expired license of this
    /// product answers as blocked. Without it the license is returned like any other, as
    /// Cryptolens does, and the program checks `Expires` itself. Keyturn's own API refuses
    /// expired licenses either way.
    #[serde(default)]
    pub block_expired_licenses: bool,
    pub created: DateTime<Utc>,
}

/// A license template: what a buyer of this plan is entitled to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: i64,
    pub product_id: i64,
    pub name: String,
    /// `None` means perpetual.
    pub period_days: Option<i64>,
    pub features: Vec<String>,
    /// 0 means unlimited.
    pub max_machines: i64,
    /// Set for floating licenses: an activation counts only while its lease is renewed.
    pub floating_lease_seconds: Option<i64>,
    pub trial: bool,
    /// Days added after a paid subscription period, so a late payment never locks a customer out.
    pub grace_days: i64,
    /// Provider ids that buy this plan: Stripe price (`price_…`), plan (`plan_…`) or product
    /// (`prod_…`) ids.
    pub stripe_price_ids: Vec<String>,
    /// Other stores' product ids, each prefixed with its store: `paddle:pri_…`,
    /// `lemonsqueezy:<variant id>`, `fastspring:<product path>`, `gumroad:<product id>`.
    pub store_product_ids: Vec<String>,
    pub quantity_mode: crate::payment::QuantityMode,
    pub dunning: crate::payment::DunningRule,
    pub on_cancel: crate::payment::CancelRule,
    /// What buyers may do themselves in the customer portal.
    #[serde(flatten)]
    pub buyers: crate::BuyerRules,
    pub created: DateTime<Utc>,
    /// Days before expiry when the buyer of a license that does not renew itself is reminded
    /// by mail; none: never.
    #[serde(default)]
    pub expiry_reminder_days: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct License {
    pub id: i64,
    pub key: String,
    pub product_id: i64,
    pub plan_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// `None` means perpetual.
    pub expires: Option<DateTime<Utc>>,
    pub period_days: Option<i64>,
    pub features: Vec<String>,
    /// 0 means unlimited.
    pub max_machines: i64,
    pub floating_lease_seconds: Option<i64>,
    pub trial: bool,
    pub notes: String,
    pub blocked: bool,
    pub metadata: serde_json::Value,
    /// Cryptolens "trial activation": a new machine's activation starts the license's period
    /// afresh (expires = activation time + period).
    #[serde(default)]
    pub trial_activation: bool,
    /// Machines that may always activate, even beyond the machine limit.
    #[serde(default)]
    pub allowed_machines: Vec<String>,
}

impl License {
    /// Whether the license holds anything its licensee may not be shown: notes or metadata.
    pub fn has_private_fields(&self) -> bool {
        !self.notes.is_empty() || self.metadata.as_object().is_none_or(|m| !m.is_empty())
    }

    /// The license as its licensee (a program holding only the key) is shown it: every term,
    /// but the notes and metadata only as far as `product` makes them public.
    pub fn licensee_view(&self, product: &Product) -> License {
        let metadata = match &self.metadata {
            serde_json::Value::Object(all) => serde_json::Value::Object(
                all.iter()
                    .filter(|(k, _)| product.public_metadata.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => serde_json::Value::Object(Default::default()),
        };
        License {
            notes: if product.public_notes {
                self.notes.clone()
            } else {
                String::new()
            },
            metadata,
            ..self.clone()
        }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }

    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    pub fn is_allowed_machine(&self, fingerprint: &str) -> bool {
        self.allowed_machines.iter().any(|m| m == fingerprint)
    }

    pub fn is_floating(&self) -> bool {
        self.floating_lease_seconds.is_some()
    }

    pub fn machine_limited(&self) -> bool {
        self.max_machines > 0
    }

    /// When a lease taken now ends, for floating licenses (whose lease validation bounds).
    pub fn lease_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.floating_lease_seconds
            .map(|secs| dates::later_by_seconds(now, secs))
    }

    /// The expiry a trial-activation license takes when a new machine activates it now (its
    /// period is bounded by validation).
    pub fn trial_expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.trial_activation {
            return self.expires;
        }
        self.period_days
            .map(|days| dates::later_by_days(now, days))
            .or(self.expires)
    }

    /// Extending by days counts from the current expiry, or from now when that has passed, so an
    /// extension always buys the customer the full number of days of use. `None` for a
    /// perpetual license; an error when the new expiry would leave the dates Keyturn accepts.
    pub fn extended_by(
        &self,
        days: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DomainError> {
        self.expires
            .map(|expires| dates::add_days("days", expires.max(now), days))
            .transpose()
    }
}

/// A machine using a license.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    pub id: i64,
    pub license_id: i64,
    pub fingerprint: String,
    pub name: Option<String>,
    pub ip: Option<String>,
    /// What the program said about the machine's operating system when it last activated
    /// (Cryptolens `OSInfo`, as sent).
    #[serde(default)]
    pub os_info: Option<String>,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// For floating licenses: the activation stops counting after this.
    pub lease_expires: Option<DateTime<Utc>>,
    /// A floating seat taken beyond the machine limit (Cryptolens `MaxOverdraft`).
    #[serde(default)]
    pub overdraft: bool,
}

impl Activation {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.lease_expires.is_none_or(|until| until > now)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use chrono::Duration;

    pub fn license(now: DateTime<Utc>) -> License {
        License {
            id: 1,
            key: "AAAAA-BBBBB-CCCCC-DDDDD".into(),
            product_id: 7,
            plan_id: None,
            customer_id: None,
            created: now,
            updated: now,
            expires: Some(now + Duration::days(30)),
            period_days: Some(30),
            features: vec!["pro".into()],
            max_machines: 2,
            floating_lease_seconds: None,
            trial: false,
            notes: String::new(),
            blocked: false,
            metadata: serde_json::json!({}),
            trial_activation: false,
            allowed_machines: Vec::new(),
        }
    }

    pub fn activation(id: i64, fingerprint: &str, now: DateTime<Utc>) -> Activation {
        Activation {
            id,
            license_id: 1,
            fingerprint: fingerprint.into(),
            name: None,
            ip: None,
            os_info: None,
            created: now + Duration::milliseconds(id),
            last_seen: now,
            lease_expires: None,
            overdraft: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use chrono::Duration;

    #[test]
    fn expiry_is_exclusive_of_the_instant() {
        let now = Utc::now();
        let mut lic = license(now);
        lic.expires = Some(now);
        assert!(lic.is_expired(now));
        lic.expires = None;
        assert!(!lic.is_expired(now + Duration::days(10_000)));
    }

    #[test]
    fn extension_counts_from_now_once_expired() {
        let now = Utc::now();
        let mut lic = license(now);
        lic.expires = Some(now - Duration::days(10));
        assert_eq!(lic.extended_by(5, now), Ok(Some(now + Duration::days(5))));
        lic.expires = Some(now + Duration::days(10));
        assert_eq!(lic.extended_by(5, now), Ok(Some(now + Duration::days(15))));
        lic.expires = None;
        assert_eq!(lic.extended_by(5, now), Ok(None));
    }

    #[test]
    fn an_extension_past_the_last_date_is_an_error_not_a_panic() {
        let now = Utc::now();
        let mut lic = license(now);
        lic.expires = Some(crate::dates::latest() - Duration::days(1));
        assert_eq!(lic.extended_by(2, now).unwrap_err().field, "days");
        lic.expires = Some(DateTime::<Utc>::MAX_UTC);
        assert!(lic.extended_by(1, now).is_err());
        assert!(lic.extended_by(i64::MAX, now).is_err());
    }

    #[test]
    fn licensees_see_only_the_public_notes_and_metadata() {
        let now = Utc::now();
        let mut lic = license(now);
        lic.notes = "internal".into();
        lic.metadata = serde_json::json!({"tier": "gold", "crm": "C-1"});
        let mut product = Product {
            id: 7,
            name: "Editor".into(),
            description: String::new(),
            features: vec!["pro".into()],
            public_notes: false,
            public_metadata: Vec::new(),
            block_expired_licenses: false,
            created: now,
        };
        assert!(lic.has_private_fields());
        assert!(!license(now).has_private_fields());
        let seen = lic.licensee_view(&product);
        assert!(!seen.has_private_fields());
        assert_eq!(seen.notes, "");
        assert_eq!(seen.metadata, serde_json::json!({}));
        assert_eq!(seen.features, lic.features);
        assert_eq!(seen.expires, lic.expires);
        product.public_notes = true;
        product.public_metadata = vec!["tier".into(), "absent".into()];
        let seen = lic.licensee_view(&product);
        assert_eq!(seen.notes, "internal");
        assert_eq!(seen.metadata, serde_json::json!({"tier": "gold"}));
    }

    #[test]
    fn lapsed_leases_are_not_live() {
        let now = Utc::now();
        let mut a = activation(1, "m", now);
        assert!(a.is_live(now));
        a.lease_expires = Some(now - Duration::seconds(1));
        assert!(!a.is_live(now));
    }
}

/// One entry of a license's audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseEvent {
    pub id: i64,
    pub license_id: i64,
    pub at: DateTime<Utc>,
    /// Who made the change: `token:<id>`, `cli` or `system`.
    pub actor: String,
    pub action: String,
    pub details: serde_json::Value,
}
