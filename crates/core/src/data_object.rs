//! Data objects: named values (a text and a 32-bit integer) attached to a product, a license or
//! one activated machine of a license. Vendors use them as custom fields and, above all, as
//! usage counters for metered licensing, so the rules for changing a counter live here, once:
//! an increment or decrement either lands inside its bounds or changes nothing.
//!
//! The integer is 32 bits because the Cryptolens SDKs read it as one; every bound below keeps
//! it there, whatever the caller asks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The longest data object name. Cryptolens documents 10, but its own reserved names
/// (`cryptolens_features`, `cryptolens_stripesubscriptionitemid`) are longer.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest text value (Cryptolens's limit).
pub const MAX_STRING_CHARS: usize = 10_000;
/// Data objects one product, license or machine may hold: a bound on what a caller holding a
/// client-side token can make the server store.
pub const MAX_PER_OWNER: i64 = 100;

/// What a data object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum DataOwner {
    Product(i64),
    License(i64),
    /// An activated machine, by activation id; it goes when the machine is deactivated.
    Machine(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataObject {
    pub id: i64,
    /// The product it belongs to, directly or through its license.
    pub product_id: i64,
    /// Set for license and machine data objects.
    pub license_id: Option<i64>,
    /// Set for machine data objects.
    pub activation_id: Option<i64>,
    pub name: String,
    pub string_value: String,
    pub int_value: i32,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

impl DataObject {
    pub fn owner(&self) -> DataOwner {
        match (self.activation_id, self.license_id) {
            (Some(activation), _) => DataOwner::Machine(activation),
            (None, Some(license)) => DataOwner::License(license),
            (None, None) => DataOwner::Product(self.product_id),
        }
    }
}

/// A data object's name: may be empty (objects are also addressed by id), one line, bounded.
pub fn name(input: &str) -> Result<String, DomainError> {
    if input.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if input.chars().any(char::is_control) {
        return Err(DomainError::new("name", "must be a single line"));
    }
    Ok(input.to_owned())
}

/// A text value: anything up to [`MAX_STRING_CHARS`] characters (JSON, several lines…).
pub fn string_value(input: &str) -> Result<String, DomainError> {
    if input.chars().count() > MAX_STRING_CHARS {
        return Err(DomainError::new(
            "string_value",
            format!("must be at most {MAX_STRING_CHARS} characters"),
        ));
    }
    Ok(input.to_owned())
}

/// An integer value as given (64-bit on the wire), checked to fit 32 bits.
pub fn int_value(field: &'static str, input: i64) -> Result<i32, DomainError> {
    i32::try_from(input).map_err(|_| {
        DomainError::new(
            field,
            format!("must be between {} and {}", i32::MIN, i32::MAX),
        )
    })
}

/// A change of a counter by a fixed amount that must leave it within `min..=max`. Applied in
/// the database as one conditional update, so concurrent steps never pass the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub delta: i64,
    pub min: i64,
    pub max: i64,
}

impl Step {
    /// Up by `amount` (at least 0), never above `bound` when one is given.
    pub fn increment(amount: i64, bound: Option<i64>) -> Result<Self, DomainError> {
        let amount = i64::from(int_value("amount", amount)?);
        let bound = bound.map(|b| int_value("bound", b)).transpose()?;
        if amount < 0 {
            return Err(DomainError::new("amount", "must not be negative"));
        }
        Ok(Self {
            delta: amount,
            min: i64::from(i32::MIN),
            max: i64::from(bound.unwrap_or(i32::MAX)),
        })
    }

    /// Down by `amount` (at least 0), never below `bound` when one is given.
    pub fn decrement(amount: i64, bound: Option<i64>) -> Result<Self, DomainError> {
        let step = Self::increment(amount, None)?;
        let bound = bound.map(|b| int_value("bound", b)).transpose()?;
        Ok(Self {
            delta: -step.delta,
            min: i64::from(bound.unwrap_or(i32::MIN)),
            max: i64::from(i32::MAX),
        })
    }

    /// The value after the step, or `None` when it would leave the bounds (the value stays).
    pub fn apply(self, current: i32) -> Option<i32> {
        let next = i64::from(current) + self.delta;
        if (self.min..=self.max).contains(&next) {
            i32::try_from(next).ok()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_be_empty_but_stay_one_bounded_line() {
        assert_eq!(name("").unwrap(), "");
        assert_eq!(name("cryptolens_features").unwrap(), "cryptolens_features");
        assert!(name(&"n".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(name("two\nlines").is_err());
        assert!(string_value("two\nlines").is_ok());
        assert!(string_value(&"s".repeat(MAX_STRING_CHARS + 1)).is_err());
    }

    #[test]
    fn int_values_are_32_bits() {
        assert_eq!(int_value("v", -5).unwrap(), -5);
        assert_eq!(int_value("v", i64::from(i32::MAX)).unwrap(), i32::MAX);
        assert!(int_value("v", i64::from(i32::MAX) + 1).is_err());
        assert!(int_value("v", i64::from(i32::MIN) - 1).is_err());
    }

    #[test]
    fn an_increment_stops_at_its_bound_inclusive() {
        let step = Step::increment(3, Some(10)).unwrap();
        assert_eq!(step.apply(7), Some(10));
        assert_eq!(step.apply(8), None);
        // Without a bound, the 32-bit range is the bound.
        let step = Step::increment(1, None).unwrap();
        assert_eq!(step.apply(i32::MAX - 1), Some(i32::MAX));
        assert_eq!(step.apply(i32::MAX), None);
        assert!(Step::increment(-1, None).is_err());
        assert!(Step::increment(1, Some(1 << 40)).is_err());
    }

    #[test]
    fn a_decrement_stops_at_its_lower_bound_inclusive() {
        let step = Step::decrement(2, Some(0)).unwrap();
        assert_eq!(step.apply(2), Some(0));
        assert_eq!(step.apply(1), None);
        let step = Step::decrement(1, None).unwrap();
        assert_eq!(step.apply(i32::MIN + 1), Some(i32::MIN));
        assert_eq!(step.apply(i32::MIN), None);
        // A value already past the bound may not move further past it.
        assert_eq!(Step::increment(0, Some(5)).unwrap().apply(6), None);
    }

    #[test]
    fn the_owner_follows_the_most_specific_reference() {
        let at = Utc::now();
        let mut object = DataObject {
            id: 1,
            product_id: 2,
            license_id: None,
            activation_id: None,
            name: "n".into(),
            string_value: String::new(),
            int_value: 0,
            created: at,
            updated: at,
        };
        assert_eq!(object.owner(), DataOwner::Product(2));
        object.license_id = Some(3);
        assert_eq!(object.owner(), DataOwner::License(3));
        object.activation_id = Some(4);
        assert_eq!(object.owner(), DataOwner::Machine(4));
    }
}
