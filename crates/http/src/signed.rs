//! Replies a program can trust: the body's exact bytes are signed with the product's Ed25519 key
//! and the signature travels in the `Keyturn-Signature` header. Refusals are signed too, and
//! carry the request's nonce, so a program can tell a real refusal from a forged or replayed one
//! as it can a real license.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use keyturn_core::ProductSigner;
use serde::Serialize;

use crate::ApiError;

pub use keyturn_protocol::SIGNATURE_HEADER;

pub fn signed_json<T: Serialize>(
    status: StatusCode,
    signer: Option<&ProductSigner>,
    body: &T,
) -> Response {
    let bytes = serde_json::to_vec(body).expect("reply bodies always serialise");
    let signature = signer.map(|s| s.sign(&bytes));
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(signature) = signature {
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&signature).expect("base64 is a valid header value"),
        );
    }
    response
}

#[derive(Serialize)]
struct Refusal {
    error: serde_json::Value,
    time: DateTime<Utc>,
    nonce: Option<String>,
}

/// A refusal to a program: the error as every API error shows it, the server's time and the
/// request's nonce, signed by `signer` when the product is known.
pub fn signed_refusal(
    error: &ApiError,
    signer: Option<&ProductSigner>,
    nonce: Option<String>,
) -> Response {
    let body = Refusal {
        error: error.body(),
        time: Utc::now(),
        nonce,
    };
    let mut response = signed_json(error.status(), signer, &body);
    if let Some(secs) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}
