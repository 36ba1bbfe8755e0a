//! How many validations and activations each product gets per day, by result code, for the
//! console's dashboard.
//!
//! Why it is shaped this way: validation is the hot path — answered from memory without a
//! database round trip (see `cache.rs`), tens of thousands of times a second on one node — and
//! never writes. A row written per validation would undo all of that, so each node counts in
//! memory instead: one short mutex section per request over a map that holds a handful of
//! entries (day × kind × product × result code), and [`App::flush_check_ins`] adds the counts
//! to `usage_daily` every few seconds in the same transaction that writes the machines'
//! check-ins, one upsert per entry. Every node adds only what it counted, so the table holds
//! the sum across nodes. A batch that cannot be written is put back and added with the next
//! one; what a node counted after its last write is lost if it dies (a few seconds' worth),
//! which a dashboard can bear and the validation path's speed is worth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use keyturn_core::dashboard::day_number;
use keyturn_core::ValidationCode;
use keyturn_store::{UsageCount, UsageKind};

use crate::{AppError, Entity};

/// The stored name of a result code: the name programs see in replies.
pub fn code_name(code: ValidationCode) -> &'static str {
    match code {
        ValidationCode::Valid => "VALID",
        ValidationCode::NotFound => "NOT_FOUND",
        ValidationCode::Blocked => "BLOCKED",
        ValidationCode::Expired => "EXPIRED",
        ValidationCode::NotActivated => "NOT_ACTIVATED",
        ValidationCode::TooManyMachines => "TOO_MANY_MACHINES",
        ValidationCode::FeatureMissing => "FEATURE_MISSING",
        ValidationCode::WrongProduct => "WRONG_PRODUCT",
    }
}

/// Every result code, in the order charts list them.
pub const CODES: [ValidationCode; 8] = [
    ValidationCode::Valid,
    ValidationCode::NotFound,
    ValidationCode::Blocked,
    ValidationCode::Expired,
    ValidationCode::NotActivated,
    ValidationCode::TooManyMachines,
    ValidationCode::FeatureMissing,
    ValidationCode::WrongProduct,
];

type Key = (i64, UsageKind, i64, &'static str);

/// Counts not yet written, and the metrics that count the same events for Prometheus.
#[derive(Clone, Default)]
pub(crate) struct Usage(Arc<Mutex<HashMap<Key, i64>>>, Arc<crate::metrics::Metrics>);

impl Usage {
    /// Counts one request of `kind` about a license of `product_id` (`None`: no license has
    /// the key) that came to `code`.
    pub fn note(
        &self,
        at: DateTime<Utc>,
        kind: UsageKind,
        product_id: Option<i64>,
        code: ValidationCode,
    ) {
        let key = (
            day_number(at),
            kind,
            product_id.unwrap_or(0),
            code_name(code),
        );
        match kind {
            UsageKind::Validation => self.1.validation(code),
            UsageKind::Activation => self.1.activation(code),
        }
        let mut counts = self.0.lock().expect("usage lock");
        let n = counts.entry(key).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Counts for the dashboard, moving `metrics` as well.
    pub fn with_metrics(metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self(Default::default(), metrics)
    }

    /// Counts an activation by what it came to; failures that are not an answer about the
    /// license (bad input, the database away) are not counted.
    pub fn note_activation<T>(
        &self,
        at: DateTime<Utc>,
        product_id: Option<i64>,
        result: &Result<T, AppError>,
    ) {
        let code = match result {
            Ok(_) => ValidationCode::Valid,
            Err(AppError::Refused(refusal)) => refusal.code(),
            Err(AppError::NotFound(Entity::License)) => ValidationCode::NotFound,
            Err(_) => return,
        };
        self.note(at, UsageKind::Activation, product_id, code);
    }

    pub fn take(&self) -> Vec<UsageCount> {
        let mut counts = self.0.lock().expect("usage lock");
        std::mem::take(&mut *counts)
            .into_iter()
            .map(|((day, kind, product_id, code), count)| UsageCount {
                day,
                kind,
                product_id,
                code,
                count,
            })
            .collect()
    }

    /// Puts back counts that could not be written, adding them to any counted since.
    pub fn restore(&self, batch: Vec<UsageCount>) {
        let mut counts = self.0.lock().expect("usage lock");
        for c in batch {
            let n = counts
                .entry((c.day, c.kind, c.product_id, c.code))
                .or_insert(0);
            *n = n.saturating_add(c.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use keyturn_core::ActivationRefusal;

    #[test]
    fn counts_add_up_per_day_product_and_code_and_survive_a_failed_write() {
        let usage = Usage::default();
        let at = Utc.with_ymd_and_hms(2031, 3, 1, 23, 59, 0).unwrap();
        let next_day = at + chrono::Duration::minutes(2);
        for _ in 0..3 {
            usage.note(at, UsageKind::Validation, Some(7), ValidationCode::Valid);
        }
        usage.note(
            next_day,
            UsageKind::Validation,
            Some(7),
            ValidationCode::Valid,
        );
        usage.note(at, UsageKind::Validation, None, ValidationCode::NotFound);
        usage.note_activation::<()>(
            at,
            Some(7),
            &Err(AppError::Refused(ActivationRefusal::Expired)),
        );
        usage.note_activation(at, Some(7), &Ok(()));
        usage.note_activation::<()>(at, Some(7), &Err(AppError::invalid("key", "bad")));
        let mut batch = usage.take();
        batch.sort_by_key(|c| (c.day, c.kind.as_str(), c.product_id, c.code));
        let seen: Vec<_> = batch
            .iter()
            .map(|c| {
                (
                    c.day - day_number(at),
                    c.kind,
                    c.product_id,
                    c.code,
                    c.count,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (0, UsageKind::Activation, 7, "EXPIRED", 1),
                (0, UsageKind::Activation, 7, "VALID", 1),
                (0, UsageKind::Validation, 0, "NOT_FOUND", 1),
                (0, UsageKind::Validation, 7, "VALID", 3),
                (1, UsageKind::Validation, 7, "VALID", 1),
            ]
        );
        assert!(usage.take().is_empty(), "taken once");
        usage.note(at, UsageKind::Validation, Some(7), ValidationCode::Valid);
        usage.restore(batch);
        let again = usage.take();
        let valid = again
            .iter()
            .find(|c| {
                c.day == day_number(at)
                    && c.product_id == 7
                    && c.code == "VALID"
                    && c.kind == UsageKind::Validation
            })
            .unwrap();
        assert_eq!(valid.count, 4, "restored counts add to new ones");
    }
}
