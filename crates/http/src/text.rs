//! No control character enters Keyturn (tab and line breaks aside: see
//! [`keyturn_core::names::forbidden_in_text`]).
//!
//! The check is made once, where text arrives, rather than by every field that stores text: on
//! the URL of every request (path and query, after percent-decoding) by [`refuse_in_url`], and
//! on every body an extractor or handler reads ([`in_json`], [`in_urlencoded`]). PostgreSQL
//! would otherwise fail on a NUL with a 500 while SQLite stored it; with the check both answer
//! that the input is wrong and store nothing.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyturn_core::names::forbidden_in_text;
use serde_json::Value;

use crate::ApiError;

/// The message for a control character found in `field`.
pub fn message(field: &str, c: char) -> String {
    let field = if field.is_empty() { "text" } else { field };
    format!(
        "{field}: contains a control character (U+{:04X}); only tab and line breaks are allowed",
        u32::from(c)
    )
}

/// The first forbidden character in the strings of a JSON document, escaped or raw. In valid
/// JSON a control character appears only inside a string, escaped (`\u0000`, `\b`, `\f`) or —
/// for DEL and the C1 range, which JSON need not escape — raw; so one pass over the bytes finds
/// it without parsing.
pub fn in_json(bytes: &[u8]) -> Option<char> {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => match bytes.get(i + 1) {
                Some(b'b') => return Some('\u{8}'),
                Some(b'f') => return Some('\u{c}'),
                Some(b'u') => {
                    let escaped = bytes
                        .get(i + 2..i + 6)
                        .and_then(|hex| std::str::from_utf8(hex).ok())
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .and_then(char::from_u32);
                    if let Some(c) = escaped.filter(|c| forbidden_in_text(*c)) {
                        return Some(c);
                    }
                    i += 6;
                    continue;
                }
                _ => i += 2,
            },
            0xc2 => match bytes.get(i + 1) {
                Some(&b @ 0x80..=0x9f) => return char::from_u32(u32::from(b)),
                _ => i += 1,
            },
            b if b.is_ascii() && forbidden_in_text(char::from(b)) => return Some(char::from(b)),
            _ => i += 1,
        }
    }
    None
}

/// Where in a JSON document the first string (or key) with a forbidden character is, as a path
/// such as `metadata.k` or `features[1]` (empty for the document itself).
pub fn json_field(value: &Value) -> Option<String> {
    fn bad(s: &str) -> bool {
        s.chars().any(forbidden_in_text)
    }
    fn join(path: &str, key: &str) -> String {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    }
    fn walk(value: &Value, path: String) -> Option<String> {
        match value {
            Value::String(s) if bad(s) => Some(path),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, format!("{path}[{i}]"))),
            Value::Object(map) => map.iter().find_map(|(k, v)| {
                if bad(k) {
                    Some(path.clone())
                } else {
                    walk(v, join(&path, k))
                }
            }),
            _ => None,
        }
    }
    walk(value, String::new())
}

/// The first forbidden character in form-encoded text (a query string, a form body, a path),
/// after percent-decoding, with the name of the field it is in.
pub fn in_urlencoded(raw: &[u8]) -> Option<(String, char)> {
    // Nearly every request has nothing encoded and nothing outside printable ASCII.
    if !raw
        .iter()
        .any(|b| *b == b'%' || *b == 0xc2 || b.is_ascii_control())
    {
        return None;
    }
    form_urlencoded::parse(raw).find_map(|(k, v)| {
        k.chars()
            .chain(v.chars())
            .find(|c| forbidden_in_text(*c))
            .map(|c| (k.into_owned(), c))
    })
}

/// Refuses a request whose path or query holds a control character, in the shape its API
/// answers errors in: the Cryptolens API its own, stores' license URLs plain text, the rest the
/// native API's.
pub async fn refuse_in_url(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let found = in_urlencoded(uri.path().as_bytes())
        .map(|(_, c)| ("path".to_owned(), c))
        .or_else(|| uri.query().and_then(|q| in_urlencoded(q.as_bytes())));
    let Some((field, c)) = found else {
        return next.run(request).await;
    };
    let message = message(&field, c);
    let path = uri.path();
    if crate::cryptolens::is_api_path(path) {
        crate::cryptolens::incorrect_input(message)
    } else if path.starts_with("/l/") {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message + "\n",
        )
            .into_response()
    } else {
        ApiError::invalid(message).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_raw_characters() {
        for (doc, found) in [
            (r#"{"a":"x\u0000"}"#, Some('\0')),
            (r#"{"a":"\u001B[31m"}"#, Some('\u{1b}')),
            (r#"{"a":"\b"}"#, Some('\u{8}')),
            (r#"{"a":"\f"}"#, Some('\u{c}')),
            ("{\"a\":\"\u{7f}\"}", Some('\u{7f}')),
            ("{\"a\":\"\u{85}\"}", Some('\u{85}')),
            (r#"{"a":"\\u0000"}"#, None),
            (r#"{"a":"\\\u0000"}"#, Some('\0')),
            (r#"{"a":"line\r\nnext\tcol","b":"\u00e9\u20ac"}"#, None),
            ("{\"a\":\"é€\",\n\t\"b\": 1}", None),
            (r#"{"a":"\ud83d\ude00"}"#, None),
        ] {
            assert_eq!(in_json(doc.as_bytes()), found, "{doc}");
        }
    }

    #[test]
    fn the_field_is_named() {
        let doc: Value =
            serde_json::from_str(r#"{"ok":"fine","metadata":{"list":["a","b\u0000"]},"zz":1}"#)
                .unwrap();
        assert_eq!(json_field(&doc).unwrap(), "metadata.list[1]");
        let key: Value = serde_json::from_str(r#"{"metadata":{"k\u0007":1}}"#).unwrap();
        assert_eq!(json_field(&key).unwrap(), "metadata");
    }

    #[test]
    fn form_encoding_is_decoded_first() {
        assert_eq!(
            in_urlencoded(b"a=1&email=ann%00@example.com"),
            Some(("email".into(), '\0'))
        );
        assert_eq!(
            in_urlencoded(b"notes=x%C2%85"),
            Some(("notes".into(), '\u{85}'))
        );
        assert_eq!(in_urlencoded(b"notes=a%0D%0Ab%09c&x=%E2%82%AC"), None);
        assert_eq!(in_urlencoded(b"/v1/licenses/by-key/ABCDE"), None);
        assert_eq!(
            in_urlencoded(b"/v1/licenses/by-key/AB%1F"),
            Some(("/v1/licenses/by-key/AB\u{1f}".into(), '\u{1f}'))
        );
    }
}
