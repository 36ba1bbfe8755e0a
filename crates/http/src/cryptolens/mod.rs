//! The Cryptolens Web API v3 on the wire (`/api/<group>/<Method>`), so programs built on the
//! official Cryptolens SDKs work against Keyturn by changing only the server address.
//!
//! The SDKs build paths loosely (`api//key/BlockKey`, `api/key/activate/`, `/api/Key/Activate`),
//! so the method is found by collapsing repeated slashes, dropping a trailing one and ignoring
//! case. Parameters come from the query string and the form body, in any case; the access token
//! is the `token` parameter.

mod data;
mod license;
mod methods;
mod params;
mod reply;

use axum::body::to_bytes;
use axum::extract::{OriginalUri, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::extract::client_ip;
use crate::AppState;
use params::Params;
use reply::ClError;

/// Mounted at `/api`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", any(dispatch))
        .route("/{*method}", any(dispatch))
}

/// `group/method` in lower case from a request path, if it is under `/api/`.
pub fn method_of(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [api, rest @ ..] if api.eq_ignore_ascii_case("api") => {
            Some(rest.join("/").to_ascii_lowercase())
        }
        _ => None,
    }
}

/// Whether a path the main router did not match still names the Cryptolens API (`//api//…`).
pub fn is_api_path(path: &str) -> bool {
    method_of(path).is_some()
}

/// A refusal of bad input in the Cryptolens shape (the detail is logged, not sent).
pub fn incorrect_input(detail: String) -> Response {
    ClError::IncorrectInput(detail).into_response()
}

/// Parses the call, authenticates the token, and runs the method.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let ip = client_ip(&parts, state.settings.trusted_proxy_hops);
    if let Some(Err(retry_after)) = ip
        .filter(|_| state.limiter.enabled())
        .map(|ip| state.limiter.check(ip))
    {
        return ClError::TooManyRequests(retry_after).into_response();
    }
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map(|OriginalUri(uri)| uri.path().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    let name = method_of(&path).unwrap_or_default();
    let Some(method) = methods::Method::parse(&name) else {
        return ClError::NotSupported(methods::not_supported(&name)).into_response();
    };
    let body = match to_bytes(body, state.settings.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return ClError::IncorrectInput("the request body is too large".into()).into_response()
        }
    };
    let params = match Params::parse(parts.uri.query(), &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let principal = match params.text("token") {
        Some(token) => match state.app.authenticate(&token).await {
            Ok(p) => p,
            Err(e) => return ClError::from(e).into_response(),
        },
        None => return ClError::Unauthenticated.into_response(),
    };
    let call = methods::Call {
        state,
        principal,
        params,
        ip: ip.map(|ip| ip.to_canonical().to_string()),
    };
    match methods::run(method, call).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_the_sdks_build_them() {
        assert_eq!(method_of("/api/key/Activate").unwrap(), "key/activate");
        assert_eq!(method_of("/api//key/BlockKey").unwrap(), "key/blockkey");
        assert_eq!(method_of("//api//key/activate/").unwrap(), "key/activate");
        assert_eq!(
            method_of("/API/product/getkeys/").unwrap(),
            "product/getkeys"
        );
        assert_eq!(method_of("/v1/products"), None);
        assert_eq!(method_of("/apix/key/activate"), None);
    }

    #[test]
    fn methods_keyturn_does_not_serve_are_named_with_what_to_use() {
        use methods::not_supported;
        assert_eq!(
            not_supported("key/changereseller"),
            "Keyturn does not support key/ChangeReseller. Keyturn has no resellers."
        );
        assert!(not_supported("ai/getwebapilog").starts_with("Keyturn does not support ai/*."));
        assert!(not_supported("userauth/login").contains("GetCustomerLicensesBySecret"));
        assert_eq!(
            not_supported("key/changeresellers"),
            "Keyturn does not support the method \"key/changeresellers\"."
        );
        assert_eq!(
            not_supported("x/\"<b>"),
            "Keyturn does not support the method \"x/b\"."
        );
        assert_eq!(
            not_supported(""),
            "Keyturn does not support the method \"\"."
        );
        assert_eq!(not_supported(&"a".repeat(500)).len(), 80 + 39);
    }
}
