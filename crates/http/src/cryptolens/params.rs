//! Request parameters as the Cryptolens SDKs send them: query string and form body merged,
//! names in any case, and the value spellings of every SDK (`True`/`true`/`1`, `None`/`null`/
//! `undefined`/empty for "not given", `SignMethod` as a number or a .NET enum name).

use std::collections::HashMap;

use super::reply::ClError;

#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

/// Spellings the SDKs use for a value they did not set.
fn unset(v: &str) -> bool {
    let v = v.trim();
    v.is_empty() || v == "null" || v == "undefined" || v == "None"
}

impl Params {
    /// Query pairs first, then body pairs, so the body wins when both name a parameter.
    pub fn parse(query: Option<&str>, body: &[u8]) -> Result<Self, ClError> {
        let mut map = HashMap::new();
        let query: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ClError::IncorrectInput(format!("query string: {e}")))?;
        if let Some((field, c)) = crate::text::in_urlencoded(body) {
            return Err(ClError::IncorrectInput(crate::text::message(&field, c)));
        }
        let body: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| ClError::IncorrectInput(format!("form body: {e}")))?;
        for (k, v) in query.into_iter().chain(body) {
            map.insert(k.to_ascii_lowercase(), v);
        }
        Ok(Self(map))
    }

    /// The value exactly as sent (machine codes keep even `None`, as Cryptolens does).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// A text value, `None` when it is missing or one of the "unset" spellings.
    pub fn text(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !unset(v)).map(str::to_owned)
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, ClError> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) if unset(v) => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| ClError::IncorrectInput(format!("{name}: {v:?} is not a number"))),
        }
    }

    /// A required integer such as `ProductId`.
    pub fn required_int(&self, name: &str) -> Result<i64, ClError> {
        match self.raw(name) {
            Some(v) if !unset(v) => self.int(name, 0),
            _ => Err(ClError::IncorrectInput(format!("{name} is required"))),
        }
    }

    /// A required text such as `Key`.
    pub fn required_text(&self, name: &str) -> Result<String, ClError> {
        self.text(name)
            .ok_or_else(|| ClError::IncorrectInput(format!("{name} is required")))
    }

    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ClError> {
        match self.raw(name).map(str::trim) {
            None => Ok(default),
            Some(v) if unset(v) => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(v) => Err(ClError::IncorrectInput(format!(
                "{name}: {v:?} is not true or false"
            ))),
        }
    }

    /// `SignMethod`: 0 / `LinqSign` (legacy object form, the default) or 1 / `StringSign`.
    pub fn sign_method(&self) -> Result<SignMethod, ClError> {
        match self.raw("SignMethod").map(str::trim) {
            None => Ok(SignMethod::Linq),
            Some(v) if unset(v) => Ok(SignMethod::Linq),
            Some(v) if v == "0" || v.eq_ignore_ascii_case("LinqSign") => Ok(SignMethod::Linq),
            Some(v) if v == "1" || v.eq_ignore_ascii_case("StringSign") => Ok(SignMethod::String),
            Some(v) => Err(ClError::IncorrectInput(format!(
                "SignMethod: {v:?} is not 0 (LinqSign) or 1 (StringSign)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMethod {
    /// `SignMethod=0`: the license as a JSON object with ISO dates, signed over a UTF-16LE
    /// comma-joined rendering of its values.
    Linq,
    /// `SignMethod=1`: the license JSON base64-encoded, signed over exactly those bytes.
    String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(body: &str) -> Params {
        Params::parse(None, body.as_bytes()).unwrap()
    }

    #[test]
    fn names_are_case_insensitive_and_the_body_wins() {
        let params = Params::parse(Some("productId=1&Key=A"), b"PRODUCTID=2").unwrap();
        assert_eq!(params.int("ProductId", 0).unwrap(), 2);
        assert_eq!(params.text("key").as_deref(), Some("A"));
    }

    #[test]
    fn every_sdk_spelling_of_booleans_and_unset_values() {
        let params = p("a=True&b=true&c=1&d=False&e=0&f=None&g=null&h=undefined&i=&j=yes");
        assert!(params.bool("a", false).unwrap());
        assert!(params.bool("b", false).unwrap());
        assert!(params.bool("c", false).unwrap());
        assert!(!params.bool("d", true).unwrap());
        assert!(!params.bool("e", true).unwrap());
        for unset in ["f", "g", "h", "i", "missing"] {
            assert!(params.bool(unset, true).unwrap(), "{unset}");
            assert_eq!(params.int(unset, 7).unwrap(), 7, "{unset}");
            assert_eq!(params.text(unset), None, "{unset}");
        }
        assert!(params.bool("j", false).is_err());
        assert_eq!(params.raw("f"), Some("None"));
        assert!(p("n=12x").int("n", 0).is_err());
        assert!(p("n=None").required_int("n").is_err());
    }

    #[test]
    fn sign_method_as_number_or_enum_name() {
        assert_eq!(p("").sign_method().unwrap(), SignMethod::Linq);
        assert_eq!(p("SignMethod=1").sign_method().unwrap(), SignMethod::String);
        assert_eq!(
            p("signmethod=StringSign").sign_method().unwrap(),
            SignMethod::String
        );
        assert_eq!(
            p("SignMethod=LinqSign").sign_method().unwrap(),
            SignMethod::Linq
        );
        assert!(p("SignMethod=2").sign_method().is_err());
    }
}
