//! The bare-HTTP ceiling: the same web stack as the server (axum on tokio, default runtime),
//! reading the request body and answering a fixed small JSON, with no work in between. It runs
//! as a process of its own, as the server does, so both compete with the load generator alike.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

const REPLY: &str = r#"{"valid":true,"code":"valid","detail":"the license is valid"}"#;

async fn fixed(_body: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], REPLY)
}

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new().route("/ceiling", post(fixed));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
