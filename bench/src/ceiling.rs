//! The ceilings: the same web stack as the server (axum on tokio, default runtime), reading the
//! request body and answering with no work in between. It runs as a process of its own, as the
//! server does, so both compete with the load generator alike.
//!
//! - `/ceiling`: a fixed small JSON, the bare-HTTP ceiling.
//! - `/ceiling/signed`: what any fresh signed answer costs at the least: a JSON body as long as
//!   a validation reply, with the current time in it, signed with Ed25519 by the library the
//!   server signs with, the signature in a header.
//! - `/ceiling/rsa`: the same for the Cryptolens API's signature: a license-sized message with
//!   the current time in it, signed with RSA-2048 (PKCS#1 v1.5, SHA-256), both in the reply.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyturn_core::{ProductSigner, RsaDigest, RsaSigner};

const REPLY: &str = r#"{"valid":true,"code":"valid","detail":"the license is valid"}"#;

async fn fixed(_body: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], REPLY)
}

struct Signed {
    signer: ProductSigner,
    rsa: RsaSigner,
    /// Filler that makes the reply as long as a validation reply.
    padding: String,
}

async fn signed(State(signed): State<Arc<Signed>>, _body: Bytes) -> Response {
    let body = format!(
        r#"{{"valid":true,"time":"{}","padding":"{}"}}"#,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        signed.padding
    );
    let signature = signed.signer.sign(body.as_bytes());
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::HeaderName::from_static("keyturn-signature"),
                signature,
            ),
        ],
        body,
    )
        .into_response()
}

/// The length of the message the harness's raw RSA rate signs.
const RSA_MESSAGE_BYTES: usize = 1024;

async fn rsa_signed(State(signed): State<Arc<Signed>>, _body: Bytes) -> Response {
    let time = chrono::Utc::now().timestamp().to_string();
    let mut message = Vec::with_capacity(RSA_MESSAGE_BYTES);
    message.extend_from_slice(time.as_bytes());
    message.resize(RSA_MESSAGE_BYTES, b'x');
    let signature = signed.rsa.sign(RsaDigest::Sha256, &message);
    let body = format!(
        r#"{{"result":0,"message":"{}","signature":"{}"}}"#,
        B64.encode(&message),
        B64.encode(signature)
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `reply_bytes`: how long the signed reply is to be.
pub async fn serve(listen: SocketAddr, reply_bytes: usize) -> anyhow::Result<()> {
    let frame = r#"{"valid":true,"time":"2026-01-01T00:00:00.000000Z","padding":""}"#.len();
    let signed_state = Arc::new(Signed {
        signer: ProductSigner::generate(),
        rsa: RsaSigner::generate().map_err(|e| anyhow::anyhow!("{e}"))?,
        padding: "x".repeat(reply_bytes.saturating_sub(frame)),
    });
    let app = Router::new()
        .route("/ceiling", post(fixed))
        .route("/ceiling/signed", post(signed))
        .route("/ceiling/rsa", post(rsa_signed))
        .with_state(signed_state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
