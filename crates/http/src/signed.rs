//! Replies a program can trust: the body's exact bytes are signed with the product's Ed25519 key
//! and the signature travels in the `Keyturn-Signature` header.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyturn_core::ProductSigner;
use serde::Serialize;

pub const SIGNATURE_HEADER: &str = "keyturn-signature";

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
