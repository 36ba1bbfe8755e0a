//! What a plan lets its buyers do themselves in the customer portal: free a machine (a limited
//! number of times in a window, so a seat cannot be passed round without the vendor noticing)
//! and download an offline license file for a machine code. Pure rules; the time is passed in.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::license_file::MAX_TTL_DAYS;
use crate::DomainError;

/// The most frees a plan may allow in one window.
pub const MAX_FREES: i64 = 1000;
/// The longest window frees are counted in.
pub const MAX_FREES_DAYS: i64 = 3650;

/// A plan's self-service settings, as stored and as the API shows them (flat on the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuyerRules {
    /// Buyers may free a machine's seat in the portal.
    pub buyers_may_free_machines: bool,
    /// How many machines a buyer may free per license within [`BuyerRules::buyer_frees_days`].
    pub buyer_frees_max: i64,
    pub buyer_frees_days: i64,
    /// Buyers may download a signed license file for a machine code.
    pub buyers_may_download_files: bool,
    /// How long such a file lasts (never past the license's expiry).
    pub buyer_file_days: i64,
}

impl Default for BuyerRules {
    fn default() -> Self {
        BuyerRules {
            buyers_may_free_machines: true,
            buyer_frees_max: 3,
            buyer_frees_days: 30,
            buyers_may_download_files: false,
            buyer_file_days: 30,
        }
    }
}

/// Changes to [`BuyerRules`]; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuyerRulesPatch {
    pub buyers_may_free_machines: Option<bool>,
    pub buyer_frees_max: Option<i64>,
    pub buyer_frees_days: Option<i64>,
    pub buyers_may_download_files: Option<bool>,
    pub buyer_file_days: Option<i64>,
}

fn within(field: &'static str, value: i64, low: i64, high: i64) -> Result<i64, DomainError> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(DomainError::new(
            field,
            format!("must be between {low} and {high}"),
        ))
    }
}

impl BuyerRulesPatch {
    /// `rules` with these changes, each checked.
    pub fn apply(self, rules: BuyerRules) -> Result<BuyerRules, DomainError> {
        Ok(BuyerRules {
            buyers_may_free_machines: self
                .buyers_may_free_machines
                .unwrap_or(rules.buyers_may_free_machines),
            buyer_frees_max: within(
                "buyer_frees_max",
                self.buyer_frees_max.unwrap_or(rules.buyer_frees_max),
                0,
                MAX_FREES,
            )?,
            buyer_frees_days: within(
                "buyer_frees_days",
                self.buyer_frees_days.unwrap_or(rules.buyer_frees_days),
                1,
                MAX_FREES_DAYS,
            )?,
            buyers_may_download_files: self
                .buyers_may_download_files
                .unwrap_or(rules.buyers_may_download_files),
            buyer_file_days: within(
                "buyer_file_days",
                self.buyer_file_days.unwrap_or(rules.buyer_file_days),
                1,
                MAX_TTL_DAYS,
            )?,
        })
    }
}

/// Why a buyer may not do something themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfServiceRefusal {
    /// The plan does not let buyers do this (or the license has no plan).
    NotAllowed,
    /// The frees of the window are used up; the oldest counted one leaves the window then.
    TooManyFrees { max: i64, days: i64 },
    /// A blocked or expired license gets no file.
    LicenseNotInUse,
}

impl SelfServiceRefusal {
    /// What the buyer is told.
    pub fn message(self) -> String {
        match self {
            SelfServiceRefusal::NotAllowed => {
                "Your plan does not let you do this yourself. Please contact the seller.".into()
            }
            SelfServiceRefusal::TooManyFrees { max, days } => format!(
                "You have freed {max} machine{s} of this license in the last {days} days, as many \
                 as your plan allows. Nothing was freed; try again later or contact the seller.",
                s = if max == 1 { "" } else { "s" }
            ),
            SelfServiceRefusal::LicenseNotInUse => {
                "This license is blocked or expired, so no license file can be issued.".into()
            }
        }
    }
}

impl BuyerRules {
    /// The start of the window in which frees count, for a free at `now`.
    pub fn frees_since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - Duration::days(self.buyer_frees_days)
    }

    /// Whether one more free is allowed, given the frees of this license counted since
    /// [`BuyerRules::frees_since`].
    pub fn may_free(&self, frees_in_window: i64) -> Result<(), SelfServiceRefusal> {
        if !self.buyers_may_free_machines {
            return Err(SelfServiceRefusal::NotAllowed);
        }
        if frees_in_window >= self.buyer_frees_max {
            return Err(SelfServiceRefusal::TooManyFrees {
                max: self.buyer_frees_max,
                days: self.buyer_frees_days,
            });
        }
        Ok(())
    }

    /// Days a file downloaded at `now` lasts: the plan's, but never past the license's
    /// expiry (rounded up to whole days, since a file's life is counted in days; the license
    /// file carries the license's own expiry, which the program checks as well).
    pub fn file_days(
        &self,
        expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<i64, SelfServiceRefusal> {
        if !self.buyers_may_download_files {
            return Err(SelfServiceRefusal::NotAllowed);
        }
        match expires {
            None => Ok(self.buyer_file_days),
            Some(at) if at <= now => Err(SelfServiceRefusal::LicenseNotInUse),
            Some(at) => {
                let left = at - now;
                let whole = left.num_days() + i64::from(left > Duration::days(left.num_days()));
                Ok(self.buyer_file_days.min(whole.max(1)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn defaults_let_three_frees_in_thirty_days_and_no_files() {
        let r = BuyerRules::default();
        assert_eq!(r.may_free(0), Ok(()));
        assert_eq!(r.may_free(2), Ok(()));
        assert_eq!(
            r.may_free(3),
            Err(SelfServiceRefusal::TooManyFrees { max: 3, days: 30 })
        );
        assert_eq!(r.file_days(None, t0()), Err(SelfServiceRefusal::NotAllowed));
        assert_eq!(r.frees_since(t0()), t0() - Duration::days(30));
    }

    #[test]
    fn a_plan_can_forbid_freeing() {
        let r = BuyerRulesPatch {
            buyers_may_free_machines: Some(false),
            ..Default::default()
        }
        .apply(BuyerRules::default())
        .unwrap();
        assert_eq!(r.may_free(0), Err(SelfServiceRefusal::NotAllowed));
    }

    #[test]
    fn file_days_are_capped_by_the_expiry() {
        let r = BuyerRules {
            buyers_may_download_files: true,
            ..Default::default()
        };
        assert_eq!(r.file_days(None, t0()), Ok(30));
        assert_eq!(r.file_days(Some(t0() + Duration::days(90)), t0()), Ok(30));
        assert_eq!(
            r.file_days(Some(t0() + Duration::days(10) + Duration::hours(1)), t0()),
            Ok(11)
        );
        assert_eq!(r.file_days(Some(t0() + Duration::hours(1)), t0()), Ok(1));
        assert_eq!(
            r.file_days(Some(t0()), t0()),
            Err(SelfServiceRefusal::LicenseNotInUse)
        );
    }

    #[test]
    fn settings_are_checked() {
        let bad = |p: BuyerRulesPatch| p.apply(BuyerRules::default()).is_err();
        assert!(bad(BuyerRulesPatch {
            buyer_frees_max: Some(-1),
            ..Default::default()
        }));
        assert!(bad(BuyerRulesPatch {
            buyer_frees_days: Some(0),
            ..Default::default()
        }));
        assert!(bad(BuyerRulesPatch {
            buyer_file_days: Some(0),
            ..Default::default()
        }));
        assert!(!bad(BuyerRulesPatch {
            buyer_frees_max: Some(0),
            ..Default::default()
        }));
    }
}
