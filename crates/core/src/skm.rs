//! Cryptolens-style Stripe metadata, so a vendor's Stripe catalogue set up for Cryptolens keeps
//! issuing licenses: `skm_product_id` on the Stripe product names the licensed product, and
//! `skm` on the price (or plan) holds the `CreateKey` parameters of the license a purchase
//! issues, as JSON (`{"F3": true, "MaxNoOfMachines": 1}`), optionally with its own `ProductId`.
//!
//! Of the `CreateKey` parameters, those a license template has are honoured: `ProductId`,
//! `Period` (days; without it, a recurring price's billing interval, and no end for a one-time
//! price), `F1`..`F8` and `MaxNoOfMachines`. The others (notes, customer fields, resellers…)
//! describe single keys rather than what a price sells, and are left out. Names are matched in
//! any case, and values may be JSON numbers and booleans or their texts, as Cryptolens's own
//! form-encoded `CreateKey` takes them.

use serde_json::{Map, Value};

use crate::DomainError;

/// What a Stripe price with Cryptolens-style metadata sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkmTerms {
    /// The product as the metadata names it: a product imported from Cryptolens with this id
    /// there, or else this server's product with this id.
    pub product_id: i64,
    /// `None`: licenses without an end.
    pub period_days: Option<i64>,
    /// F1..F8.
    pub features: [bool; 8],
    /// 0: no machine limit.
    pub max_machines: i64,
}

fn entry<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn number(name: &str, v: &Value) -> Result<i64, DomainError> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| DomainError::new("skm", format!("{name} must be a whole number, not {v}")))
}

fn flag(name: &str, v: &Value) -> Result<bool, DomainError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(false),
        _ => Err(DomainError::new(
            "skm",
            format!("{name} must be true or false, not {v}"),
        )),
    }
}

impl SkmTerms {
    /// Reads the metadata: `skm_product_id` of the Stripe product, `skm` of the price, and
    /// the price's billing interval in days when it is recurring. `None` when neither names a
    /// product (a price not set up the Cryptolens way).
    pub fn parse(
        skm_product_id: Option<&str>,
        skm: Option<&str>,
        billing_days: Option<i64>,
    ) -> Result<Option<Self>, DomainError> {
        let params = match skm.map(str::trim).filter(|s| !s.is_empty()) {
            None => Map::new(),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(DomainError::new("skm", "must be a JSON object")),
                Err(e) => return Err(DomainError::new("skm", format!("is not JSON: {e}"))),
            },
        };
        let product_id = match entry(&params, "ProductId") {
            Some(v) => number("ProductId", v)?,
            None => match skm_product_id.map(str::trim).filter(|s| !s.is_empty()) {
                Some(id) => id.parse().map_err(|_| {
                    DomainError::new("skm_product_id", format!("{id:?} is not a product id"))
                })?,
                None => return Ok(None),
            },
        };
        if product_id <= 0 {
            return Err(DomainError::new("skm", "the product id must be positive"));
        }
        let period = match entry(&params, "Period") {
            Some(v) => number("Period", v)?,
            None => 0,
        };
        let period_days = match period {
            p if !(0..=36_500).contains(&p) => {
                return Err(DomainError::new(
                    "skm",
                    "Period must be between 0 and 36500 days",
                ))
            }
            0 => billing_days.filter(|d| *d > 0),
            p => Some(p),
        };
        let mut features = [false; 8];
        for (i, slot) in features.iter_mut().enumerate() {
            let name = format!("F{}", i + 1);
            if let Some(v) = entry(&params, &name) {
                *slot = flag(&name, v)?;
            }
        }
        let max_machines = match entry(&params, "MaxNoOfMachines") {
            Some(v) => number("MaxNoOfMachines", v)?,
            None => 0,
        };
        if !(0..=1_000_000).contains(&max_machines) {
            return Err(DomainError::new(
                "skm",
                "MaxNoOfMachines must be between 0 and 1000000",
            ));
        }
        Ok(Some(Self {
            product_id,
            period_days,
            features,
            max_machines,
        }))
    }
}

/// Days of a recurring price's billing interval (`day`, `week`, `month`, `year` times a count);
/// `None` for anything else.
pub fn billing_days(interval: &str, count: i64) -> Option<i64> {
    let unit = match interval {
        "day" => 1,
        "week" => 7,
        "month" => 30,
        "year" => 365,
        _ => return None,
    };
    count.max(1).checked_mul(unit).filter(|d| *d <= 36_500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_as_cryptolens_documents_it() {
        let t = SkmTerms::parse(
            Some("3349"),
            Some(r#"{"F3":true, "MaxNoOfMachines": 1}"#),
            Some(30),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            t,
            SkmTerms {
                product_id: 3349,
                period_days: Some(30),
                features: [false, false, true, false, false, false, false, false],
                max_machines: 1,
            }
        );
        // ProductId in skm wins; texts and any case are read; Period overrides the interval.
        let t = SkmTerms::parse(
            Some("1"),
            Some(r#"{"productid": "7", "f1": "True", "period": "365", "maxnoofmachines": "2", "Notes": "x"}"#),
            Some(30),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (t.product_id, t.period_days, t.features[0], t.max_machines),
            (7, Some(365), true, 2)
        );
        // A one-time price without a period sells licenses without an end.
        let t = SkmTerms::parse(Some("5"), None, None).unwrap().unwrap();
        assert_eq!(
            (t.period_days, t.features, t.max_machines),
            (None, [false; 8], 0)
        );
    }

    #[test]
    fn prices_not_set_up_that_way_and_bad_metadata() {
        assert_eq!(SkmTerms::parse(None, None, Some(30)), Ok(None));
        assert_eq!(
            SkmTerms::parse(Some(" "), Some(r#"{"F1":true}"#), None),
            Ok(None)
        );
        for (id, skm) in [
            (Some("abc"), None),
            (Some("0"), None),
            (Some("1"), Some("not json")),
            (Some("1"), Some("[1]")),
            (Some("1"), Some(r#"{"F1":"maybe"}"#)),
            (Some("1"), Some(r#"{"Period":-1}"#)),
            (Some("1"), Some(r#"{"Period":99999999}"#)),
            (Some("1"), Some(r#"{"MaxNoOfMachines":-3}"#)),
        ] {
            assert!(SkmTerms::parse(id, skm, None).is_err(), "{id:?} {skm:?}");
        }
    }

    #[test]
    fn billing_intervals_in_days() {
        assert_eq!(billing_days("month", 1), Some(30));
        assert_eq!(billing_days("week", 2), Some(14));
        assert_eq!(billing_days("year", 0), Some(365));
        assert_eq!(billing_days("year", i64::MAX), None);
        assert_eq!(billing_days("fortnight", 1), None);
    }
}
