use chrono::{DateTime, Utc};
use keyturn_core::dates;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`), for PATCH bodies
/// where `null` clears a value.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A date the API takes: `YYYY-MM-DD` or an RFC 3339 time, within the dates Keyturn accepts.
/// Anything else is refused with the accepted forms (the extractor puts the field's name in
/// front), never with the parser's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl Visitor<'_> for DateVisitor {
            type Value = Date;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(dates::FORMS)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
                dates::parse("date", v)
                    .map(Date)
                    .map_err(|_| E::custom(format!("must be {}", dates::FORMS)))
            }
        }
        d.deserialize_str(DateVisitor)
    }
}

/// An optional [`Date`] as a `DateTime`.
pub fn date(d: Option<Date>) -> Option<DateTime<Utc>> {
    d.map(|Date(at)| at)
}
