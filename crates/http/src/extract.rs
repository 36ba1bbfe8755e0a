//! Extractors whose rejections speak the API's error format.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use keyturn_app::{AppError, Principal};
use serde::de::DeserializeOwned;

use crate::{text, ApiError, AppState};

/// JSON body; malformed, mistyped, oversized bodies and text with control characters become
/// API errors that name the field in plain words.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = body(request, state).await?;
        if let Some(c) = text::in_json(&bytes) {
            // Only a document that parses has fields to name; one that does not is refused
            // below as malformed.
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let field = text::json_field(&value).unwrap_or_default();
                return Err(ApiError::invalid(text::message(&field, c)));
            }
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            match e.inner().classify() {
                serde_json::error::Category::Data => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    plain(&e.path().to_string(), &e.inner().to_string()),
                ),
                _ => malformed(e.inner()),
            }
        })?;
        deserializer.end().map_err(|e| malformed(&e))?;
        Ok(Json(value))
    }
}

/// A JSON body that may be left out: no body at all is `T::default()`, anything else is read
/// as [`Json`] reads it. For actions whose details are optional (`POST …/block`).
pub struct JsonOrEmpty<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if json_content_type(request.headers()) {
            return Json::from_request(request, state)
                .await
                .map(|Json(value)| JsonOrEmpty(value));
        }
        if body(request, state).await?.is_empty() {
            return Ok(JsonOrEmpty(T::default()));
        }
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        ))
    }
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        format!("the body is not valid JSON: {e}"),
    )
}

fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(mime) = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
    else {
        return false;
    };
    let mime = mime.trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The body, within the route's size limit.
async fn body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|r| {
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "malformed_body"
        };
        ApiError::new(r.status(), code, r.body_text())
    })
}

/// A form-encoded body (`application/x-www-form-urlencoded`), checked like JSON bodies.
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body(request, state).await?;
        if let Some((field, c)) = text::in_urlencoded(&bytes) {
            return Err(ApiError::invalid(text::message(&field, c)));
        }
        let fields = serde_urlencoded::Deserializer::new(form_urlencoded::parse(&bytes));
        serde_path_to_error::deserialize(fields)
            .map(Form)
            .map_err(|e| ApiError::invalid(plain(&e.path().to_string(), &e.inner().to_string())))
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The query string; a value of the wrong kind is refused naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let fields = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(fields)
            .map(Query)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    plain(&e.path().to_string(), &e.inner().to_string()),
                )
            })
    }
}

/// A deserializer's complaint about the value at `path`, in the API's words: the field first,
/// then what it must be, without positions in the document or the names of Rust types.
fn plain(path: &str, inner: &str) -> String {
    let inner = match inner.rfind(" at line ") {
        Some(i) if inner[i..].contains(" column ") => &inner[..i],
        _ => inner,
    };
    let said = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|p| inner.strip_prefix(p))
        .and_then(|rest| rest.rsplit_once(", expected "))
        .map(|(got, expected)| format!("must be {} (not {got})", kind(expected)))
        .unwrap_or_else(|| inner.to_owned());
    if path.is_empty() || path == "." {
        said
    } else {
        format!("{path}: {said}")
    }
}

/// What a deserializer expected, as the API documentation would say it.
fn kind(expected: &str) -> &str {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "a whole number"
        }
        "f32" | "f64" => "a number",
        "a sequence" => "a list",
        "a map" => "an object",
        e if e.starts_with("struct ") => "an object",
        e => e,
    }
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AppError::Unauthenticated)?;
        Ok(Auth(state.app.authenticate(presented).await?))
    }
}

/// The client's address, as [`client_ip`] finds it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

/// The client's address. Without trusted proxies, the peer. Behind `trusted_hops` proxies,
/// each of which appends the address it got the request from to `X-Forwarded-For`, the client
/// is the `trusted_hops`-th address from the right: everything further left was written by the
/// client itself and proves nothing (when the header holds fewer addresses, its leftmost). An
/// address that does not parse counts as none, and the peer stands in for it.
pub fn client_ip(parts: &Parts, trusted_hops: usize) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if trusted_hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    let chosen = forwarded
        .len()
        .checked_sub(trusted_hops)
        .map_or(forwarded.first(), |i| forwarded.get(i));
    chosen
        .and_then(|a| {
            a.parse::<IpAddr>()
                .or_else(|_| a.parse::<SocketAddr>().map(|s| s.ip()))
                .ok()
        })
        .or(peer)
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(
            parts,
            state.settings.trusted_proxy_hops,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(forwarded: &[&str]) -> Parts {
        let mut request = axum::http::Request::builder();
        for f in forwarded {
            request = request.header("x-forwarded-for", *f);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
        parts
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn deserializer_complaints_in_plain_words() {
        assert_eq!(
            plain(
                "product_id",
                "invalid type: string \"one\", expected i64 at line 1 column 20"
            ),
            "product_id: must be a whole number (not string \"one\")"
        );
        assert_eq!(
            plain(
                "",
                "invalid type: integer `1`, expected struct CreateBody at line 1 column 1"
            ),
            "must be an object (not integer `1`)"
        );
        assert_eq!(
            plain(
                "features",
                "invalid type: string \"pro\", expected a sequence"
            ),
            "features: must be a list (not string \"pro\")"
        );
        assert_eq!(
            plain("name", "missing field `name` at line 1 column 2"),
            "name: missing field `name`"
        );
        assert_eq!(
            plain("expires", "must be a date as YYYY-MM-DD at line 1 column 9"),
            "expires: must be a date as YYYY-MM-DD"
        );
    }

    #[test]
    fn only_the_trusted_hops_are_believed() {
        let spoofed = parts(&["6.6.6.6, 198.51.100.7"]);
        assert_eq!(client_ip(&spoofed, 0), ip("10.0.0.1"), "no proxy: the peer");
        assert_eq!(client_ip(&spoofed, 1), ip("198.51.100.7"), "the rightmost");
        assert_eq!(client_ip(&spoofed, 2), ip("6.6.6.6"));
        assert_eq!(client_ip(&spoofed, 3), ip("6.6.6.6"), "fewer than the hops");
        let two_lines = parts(&["6.6.6.6", "198.51.100.7, 203.0.113.9"]);
        assert_eq!(client_ip(&two_lines, 2), ip("198.51.100.7"));
        assert_eq!(client_ip(&parts(&[]), 1), ip("10.0.0.1"), "no header");
        assert_eq!(client_ip(&parts(&["1.2.3.4, junk"]), 1), ip("10.0.0.1"));
        assert_eq!(
            client_ip(&parts(&["[2001:db8::1]:443"]), 1),
            ip("2001:db8::1")
        );
    }
}
