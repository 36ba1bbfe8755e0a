//! The rules that decide whether a license may be used: one place, so the native API, the
//! Cryptolens-compatible API and license files can never disagree about a license.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Activation, FeatureName, Fingerprint, License};

/// The stable set of validation results. Programs switch on these, so names never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValidationCode {
    Valid,
    NotFound,
    Blocked,
    Expired,
    NotActivated,
    TooManyMachines,
    FeatureMissing,
    WrongProduct,
}

impl ValidationCode {
    pub fn is_valid(self) -> bool {
        self == ValidationCode::Valid
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationOutcome {
    pub code: ValidationCode,
    pub detail: String,
}

impl ValidationOutcome {
    fn new(code: ValidationCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(ValidationCode::NotFound, "no license has this key")
    }
}

/// What the caller wants confirmed about a license.
#[derive(Debug, Default)]
pub struct ValidationRequest<'a> {
    pub product_id: Option<i64>,
    pub fingerprint: Option<&'a Fingerprint>,
    pub features: &'a [FeatureName],
}

/// Checks a license against a request. `live` holds the license's activations whose leases have
/// not lapsed, oldest first: when a vendor lowers the machine limit below the machines already in
/// use, the oldest keep working and the newest are the ones refused. A license locked to machines
/// is valid only for a machine: asked without a fingerprint, it is not activated (else a copied
/// key would pass as valid on any machine that simply leaves its fingerprint out).
pub fn validate(
    license: &License,
    live: &[Activation],
    request: &ValidationRequest<'_>,
    now: DateTime<Utc>,
) -> ValidationOutcome {
    use ValidationCode::*;
    if request.product_id.is_some_and(|p| p != license.product_id) {
        return ValidationOutcome::new(WrongProduct, "the key belongs to another product");
    }
    if license.blocked {
        return ValidationOutcome::new(Blocked, "the license is blocked");
    }
    if license.is_expired(now) {
        return ValidationOutcome::new(Expired, "the license has expired");
    }
    if let Some(missing) = request
        .features
        .iter()
        .find(|f| !license.has_feature(f.as_str()))
    {
        return ValidationOutcome::new(
            FeatureMissing,
            format!(
                "the license does not include feature {:?}",
                missing.as_str()
            ),
        );
    }
    let Some(fingerprint) = request.fingerprint else {
        if license.machine_limited() {
            return ValidationOutcome::new(
                NotActivated,
                "the license is locked to machines: give the machine's fingerprint",
            );
        }
        return ValidationOutcome::new(Valid, "the license is valid");
    };
    let position = live
        .iter()
        .position(|a| a.fingerprint == fingerprint.as_str())
        .or_else(|| {
            live.iter()
                .position(|a| fingerprint.same_machine(&a.fingerprint))
        });
    match position {
        None => {
            ValidationOutcome::new(NotActivated, "the license is not activated on this machine")
        }
        Some(i) if license.machine_limited() && i as i64 >= license.max_machines => {
            ValidationOutcome::new(
                TooManyMachines,
                format!(
                    "the license allows {} machines and more are activated",
                    license.max_machines
                ),
            )
        }
        Some(_) => ValidationOutcome::new(Valid, "the license is valid"),
    }
}

/// Why an activation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActivationRefusal {
    WrongProduct,
    Blocked,
    Expired,
    TooManyMachines,
}

impl ActivationRefusal {
    pub fn code(self) -> ValidationCode {
        match self {
            ActivationRefusal::WrongProduct => ValidationCode::WrongProduct,
            ActivationRefusal::Blocked => ValidationCode::Blocked,
            ActivationRefusal::Expired => ValidationCode::Expired,
            ActivationRefusal::TooManyMachines => ValidationCode::TooManyMachines,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ActivationRefusal::WrongProduct => "the key belongs to another product",
            ActivationRefusal::Blocked => "the license is blocked",
            ActivationRefusal::Expired => "the license has expired",
            ActivationRefusal::TooManyMachines => {
                "the license is already activated on as many machines as it allows"
            }
        }
    }
}

/// What an expired license may still be used for, which differs by API: Keyturn's own API
/// refuses it (`EXPIRED`); the Cryptolens API returns it as Cryptolens does, leaving the expiry
/// check to the program (every Cryptolens SDK compares `Expires` with its clock), unless the
/// product blocks expired licenses, which then answer exactly as blocked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpiryRule {
    /// An expired license is refused as expired.
    #[default]
    Refuse,
    /// An expired license is used like any other.
    Allow,
    /// An expired license is refused as blocked.
    Block,
}

impl ExpiryRule {
    /// The Cryptolens API's rule for a product, by its "block expired licenses" option.
    pub fn cryptolens(block_expired_licenses: bool) -> Self {
        if block_expired_licenses {
            ExpiryRule::Block
        } else {
            ExpiryRule::Allow
        }
    }

    /// Whether `license` counts as blocked under this rule at `now`.
    pub fn blocks(self, license: &License, now: DateTime<Utc>) -> bool {
        license.blocked || (self == ExpiryRule::Block && license.is_expired(now))
    }
}

/// Whether a new machine may join a license that `live_machines` machines already use.
pub fn admit_new_machine(
    license: &License,
    product_id: Option<i64>,
    live_machines: i64,
    now: DateTime<Utc>,
) -> Result<(), ActivationRefusal> {
    admit_machine(
        license,
        product_id,
        None,
        live_machines,
        0,
        ExpiryRule::Refuse,
        now,
    )
    .map(|_| ())
}

/// How a new machine holds its seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seat {
    /// Within the machine limit, or a machine the license always allows.
    Regular,
    /// Beyond the limit, within the overdraft a floating activation asked for.
    Overdraft,
}

/// Whether a new machine may join: machines listed in the license's allowed machines always
/// may; others within the limit, or within `max_overdraft` seats beyond it.
pub fn admit_machine(
    license: &License,
    product_id: Option<i64>,
    fingerprint: Option<&str>,
    live_machines: i64,
    max_overdraft: i64,
    expiry: ExpiryRule,
    now: DateTime<Utc>,
) -> Result<Seat, ActivationRefusal> {
    admit_known_machine(license, product_id, expiry, now)?;
    if !license.machine_limited() || fingerprint.is_some_and(|f| license.is_allowed_machine(f)) {
        return Ok(Seat::Regular);
    }
    if live_machines < license.max_machines {
        Ok(Seat::Regular)
    } else if live_machines < license.max_machines + max_overdraft.max(0) {
        Ok(Seat::Overdraft)
    } else {
        Err(ActivationRefusal::TooManyMachines)
    }
}

/// Whether a machine that already holds an activation may renew it (and whether a license may
/// be used at all, under `expiry`).
pub fn admit_known_machine(
    license: &License,
    product_id: Option<i64>,
    expiry: ExpiryRule,
    now: DateTime<Utc>,
) -> Result<(), ActivationRefusal> {
    if product_id.is_some_and(|p| p != license.product_id) {
        return Err(ActivationRefusal::WrongProduct);
    }
    if expiry.blocks(license, now) {
        return Err(ActivationRefusal::Blocked);
    }
    if expiry == ExpiryRule::Refuse && license.is_expired(now) {
        return Err(ActivationRefusal::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::fixtures::{activation, license};
    use chrono::Duration;

    fn fp(s: &str) -> Fingerprint {
        Fingerprint::parse(s).unwrap()
    }

    #[test]
    fn an_active_license_is_valid() {
        let now = Utc::now();
        let machine = fp("a");
        let req = ValidationRequest {
            fingerprint: Some(&machine),
            ..Default::default()
        };
        let out = validate(&license(now), &[activation(1, "a", now)], &req, now);
        assert_eq!(out.code, ValidationCode::Valid);
    }

    #[test]
    fn checks_run_in_a_stable_order() {
        let now = Utc::now();
        let mut lic = license(now);
        lic.blocked = true;
        lic.expires = Some(now - Duration::days(1));
        let wrong = ValidationRequest {
            product_id: Some(99),
            ..Default::default()
        };
        assert_eq!(
            validate(&lic, &[], &wrong, now).code,
            ValidationCode::WrongProduct
        );
        let plain = ValidationRequest::default();
        assert_eq!(
            validate(&lic, &[], &plain, now).code,
            ValidationCode::Blocked
        );
        lic.blocked = false;
        assert_eq!(
            validate(&lic, &[], &plain, now).code,
            ValidationCode::Expired
        );
    }

    #[test]
    fn missing_features_are_named() {
        let now = Utc::now();
        let features = [
            FeatureName::parse("pro").unwrap(),
            FeatureName::parse("team").unwrap(),
        ];
        let req = ValidationRequest {
            features: &features,
            ..Default::default()
        };
        let out = validate(&license(now), &[], &req, now);
        assert_eq!(out.code, ValidationCode::FeatureMissing);
        assert!(out.detail.contains("team"));
    }

    #[test]
    fn fingerprints_must_be_activated_and_within_the_limit() {
        let now = Utc::now();
        let lic = license(now); // max_machines = 2
        let live = [
            activation(1, "a", now),
            activation(2, "b", now),
            activation(3, "c", now),
        ];
        let check = |m: &str| {
            let f = fp(m);
            let req = ValidationRequest {
                fingerprint: Some(&f),
                ..Default::default()
            };
            validate(&lic, &live, &req, now).code
        };
        assert_eq!(check("a"), ValidationCode::Valid);
        assert_eq!(check("b"), ValidationCode::Valid);
        assert_eq!(check("c"), ValidationCode::TooManyMachines);
        assert_eq!(check("z"), ValidationCode::NotActivated);
    }

    #[test]
    fn a_machine_locked_license_is_valid_only_for_a_machine() {
        let now = Utc::now();
        let mut lic = license(now); // max_machines = 2
        let live = [activation(1, "a", now)];
        let out = validate(&lic, &live, &ValidationRequest::default(), now);
        assert_eq!(out.code, ValidationCode::NotActivated);
        assert!(out.detail.contains("fingerprint"), "{}", out.detail);
        lic.max_machines = 0;
        let out = validate(&lic, &live, &ValidationRequest::default(), now);
        assert_eq!(out.code, ValidationCode::Valid);
    }

    #[test]
    fn admission_respects_the_machine_limit() {
        let now = Utc::now();
        let mut lic = license(now);
        assert_eq!(admit_new_machine(&lic, None, 1, now), Ok(()));
        assert_eq!(
            admit_new_machine(&lic, None, 2, now),
            Err(ActivationRefusal::TooManyMachines)
        );
        let refuse = ExpiryRule::Refuse;
        assert_eq!(
            admit_machine(&lic, None, Some("m"), 2, 1, refuse, now),
            Ok(Seat::Overdraft)
        );
        assert_eq!(
            admit_machine(&lic, None, Some("m"), 3, 1, refuse, now),
            Err(ActivationRefusal::TooManyMachines)
        );
        lic.allowed_machines = vec!["m".into()];
        assert_eq!(
            admit_machine(&lic, None, Some("m"), 3, 0, refuse, now),
            Ok(Seat::Regular)
        );
        lic.max_machines = 0;
        assert_eq!(admit_new_machine(&lic, None, 10_000, now), Ok(()));
        lic.blocked = true;
        assert_eq!(
            admit_known_machine(&lic, None, refuse, now),
            Err(ActivationRefusal::Blocked)
        );
        assert_eq!(
            admit_known_machine(&lic, Some(8), refuse, now),
            Err(ActivationRefusal::WrongProduct)
        );
    }

    #[test]
    fn expired_licenses_are_refused_used_or_blocked_by_rule() {
        let now = Utc::now();
        let mut lic = license(now);
        lic.expires = Some(now - Duration::seconds(1));
        assert_eq!(
            admit_known_machine(&lic, None, ExpiryRule::Refuse, now),
            Err(ActivationRefusal::Expired)
        );
        assert_eq!(
            admit_known_machine(&lic, None, ExpiryRule::Allow, now),
            Ok(())
        );
        assert_eq!(
            admit_machine(&lic, None, Some("m"), 0, 0, ExpiryRule::Allow, now),
            Ok(Seat::Regular)
        );
        assert_eq!(
            admit_known_machine(&lic, None, ExpiryRule::Block, now),
            Err(ActivationRefusal::Blocked)
        );
        assert!(ExpiryRule::Block.blocks(&lic, now));
        assert!(!ExpiryRule::Allow.blocks(&lic, now));
        // Not yet expired: nothing to block; blocked: blocked under every rule.
        lic.expires = Some(now + Duration::days(1));
        assert_eq!(
            admit_known_machine(&lic, None, ExpiryRule::Block, now),
            Ok(())
        );
        lic.blocked = true;
        for rule in [ExpiryRule::Refuse, ExpiryRule::Allow, ExpiryRule::Block] {
            assert_eq!(
                admit_known_machine(&lic, None, rule, now),
                Err(ActivationRefusal::Blocked)
            );
        }
        assert_eq!(ExpiryRule::cryptolens(true), ExpiryRule::Block);
        assert_eq!(ExpiryRule::cryptolens(false), ExpiryRule::Allow);
    }
}
