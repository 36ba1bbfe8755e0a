//! Accepting connections, with limits on what one client can hold: a cap on connections per
//! IP address, a deadline for a request's headers, and an idle timeout (no byte moving either
//! way). Shutdown is bounded: stop accepting, let requests in flight finish for at most the
//! grace period, then close whatever is left — a client that sent half a request never holds
//! the process.
//!
//! The same loop serves https when given a TLS acceptor: the handshake is one more thing a
//! client must finish within the header deadline, and the activity watch sits under TLS, on
//! the socket, so the idle timeout counts encrypted bytes as they move.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Limits on connections; see [`crate::HttpSettings`].
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// 0: no cap.
    pub max_connections_per_ip: usize,
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down within the grace
/// period. Returns how many connections were still open when the grace period ended.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> usize {
    serve_with(listener, router, limits, None, shutdown).await
}

/// [`serve`], over TLS: every connection starts with a handshake through `tls`.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> usize {
    serve_with(listener, router, limits, Some(tls), shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> usize {
    let per_ip = PerIp::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = JoinSet::new();
    // HTTP/1.1, as before. Hyper's header deadline also runs while a kept-alive connection
    // waits for its next request.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Reap finished connections so the set stays the size of what is open.
        while connections.try_join_next().is_some() {}
        // Over TLS too the refusal is plain HTTP, written before any handshake: the client
        // sees a failed handshake and the connection closed, which is what matters.
        let Some(slot) = per_ip.take(peer.ip(), limits.max_connections_per_ip) else {
            tracing::debug!(ip = %peer.ip(), "refused a connection: too many from this address");
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let watched = Watched {
            inner: stream,
            activity: activity.clone(),
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {}))
            }
        });
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let tls = tls.clone();
        let handshake_within = limits.header_read_timeout;
        let idle = limits.idle_timeout;
        connections.spawn(async move {
            let _slot = slot;
            let served = async move {
                match tls {
                    None => {
                        let io = TokioIo::new(watched);
                        watcher.watch(builder.serve_connection(io, service)).await
                    }
                    Some(tls) => {
                        let stream =
                            match tokio::time::timeout(handshake_within, tls.accept(watched)).await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, %peer, "TLS handshake failed");
                                    return Ok(());
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return Ok(());
                                }
                            };
                        let io = TokioIo::new(stream);
                        watcher.watch(builder.serve_connection(io, service)).await
                    }
                }
            };
            tokio::select! {
                served = served => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                }
                _ = activity.idle_for(idle) => {
                    tracing::debug!(%peer, "closed an idle connection");
                }
            }
        });
    }
    // Stop accepting: new connections are refused from here on.
    let address = listener.local_addr().ok();
    drop(listener);
    let open = connections.len();
    tracing::info!(?address, open, grace = ?limits.shutdown_grace, "no longer accepting connections; finishing requests in flight");
    // A connection still in its TLS handshake is not yet watched by `graceful`: its task is
    // awaited within the same grace period (once served, it is closed at once, as the
    // shutdown has begun).
    let finished = tokio::time::timeout(limits.shutdown_grace, async {
        graceful.shutdown().await;
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_ok() {
        return 0;
    }
    let left = connections.len();
    tracing::warn!(
        connections = left,
        "the shutdown grace period ended; closing the connections still open"
    );
    connections.shutdown().await;
    left
}

/// Tells a client over the per-address cap to come back later, without reading its request.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
}

/// Open connections per client address.
#[derive(Clone, Default)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

struct Slot {
    ip: IpAddr,
    of: PerIp,
}

impl PerIp {
    fn take(&self, ip: IpAddr, cap: usize) -> Option<Slot> {
        let mut open = self.0.lock().expect("per-ip lock");
        let n = open.entry(ip).or_default();
        if cap > 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            ip,
            of: self.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.of.0.lock().expect("per-ip lock");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// When a connection last moved a byte.
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A socket that notes every read and write in its [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
