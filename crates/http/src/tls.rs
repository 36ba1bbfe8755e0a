//! Serving https directly, without a reverse proxy in front.
//!
//! The certificate lives behind a resolver that every handshake asks, so a reload swaps one
//! `Arc` and never touches the listener: connections already open keep the certificate they
//! were made with, new ones get the new one. A reload happens on SIGHUP and when either file's
//! modification time or size changes (polled: certificate renewers such as certbot or acme.sh
//! replace the files and do not always signal). A reload that fails (a half-written file, a key
//! that does not match the certificate) is logged and the certificate in use stays: a broken
//! renewal must not take the server down, and the next change of the files is tried again.
//!
//! Only HTTP/1.1 is offered in ALPN, as the server speaks only that.
//!
//! The redirect listener answers every plain-HTTP request with 308 to the same path over
//! https. Its target host is the public URL's when one is configured: the request's Host
//! header is the client's to set, and a redirect built from it would send a browser wherever
//! the header said.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
pub use tokio_rustls::TlsAcceptor;

/// The PEM files of the certificate (chain, leaf first) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate could not be used; names the file, never the key's content.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The certificate being served, and how to reload it.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    current: Arc<Current>,
    provider: Arc<CryptoProvider>,
    acceptor: TlsAcceptor,
}

/// The certificate handshakes get.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a complete certificate: a swap cannot half-happen.
        Some(match self.0.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

impl Tls {
    /// Reads and checks the files; an error says which file and what is wrong.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        // ring, as the rest of the process's rustls already uses; named here rather than
        // taken from a process-wide default that another dependency could change.
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let first = certified_key(&files, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(first))));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("cannot set up TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            files,
            current,
            provider,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Reads the files again; on success new handshakes use them, on failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = certified_key(&self.files, &self.provider)?;
        let mut current = match self.current.0.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = Arc::new(key);
        Ok(())
    }

    /// Reloads on SIGHUP and whenever the files change (checked every `poll`); never ends.
    /// The SIGHUP handler is in place when this returns (a SIGHUP before that would end the
    /// process, as is its default).
    pub fn reload_on_change(self, poll: Duration) -> impl std::future::Future<Output = ()> + Send {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = self.stamp();
        async move {
            loop {
                #[cfg(unix)]
                let signalled = async {
                    match hangup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let signalled = std::future::pending::<()>();
                let why = tokio::select! {
                    _ = signalled => {
                    // The files read now are the ones the poll would find changed.
                    seen = self.stamp();
                    "SIGHUP"
                }
                    _ = tokio::time::sleep(poll) => {
                        let now = self.stamp();
                        if now == seen {
                            continue;
                        }
                        // Remembered whether or not the reload works: a broken file is reported
                        // once, and tried again when it changes.
                        seen = now;
                        "the files changed"
                    }
                };
                match self.reload() {
                    Ok(()) => {
                        tracing::info!(reason = why, cert = %self.files.cert.display(), "reloaded the TLS certificate")
                    }
                    Err(e) => tracing::warn!(
                        reason = why,
                        error = %e,
                        "cannot reload the TLS certificate; still serving the previous one"
                    ),
                }
            }
        }
    }

    /// What tells a changed file from an unchanged one.
    fn stamp(&self) -> [Option<(SystemTime, u64)>; 2] {
        let of = |path: &PathBuf| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        [of(&self.files.cert), of(&self.files.key)]
    }
}

/// The certificate chain and key from the files, checked to belong together.
fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| TlsError(format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError(format!(
                "{} is not a PEM certificate chain: {e}",
                files.cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "{} holds no certificate (expected PEM, BEGIN CERTIFICATE)",
            files.cert.display()
        )));
    }
    let key_pem = read(&files.key)?;
    // The parse error's text is generic; it never quotes the key.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError(format!(
            "{} is not a PEM private key: {e}",
            files.key.display()
        ))
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        TlsError(format!(
            "the certificate {} and the key {} cannot be served together: {e}",
            files.cert.display(),
            files.key.display()
        ))
    })
}

/// Where the redirect listener sends clients.
#[derive(Debug, Clone)]
struct Target {
    /// host[:port] from the public URL, when it gives one.
    public: Option<String>,
    /// The https listener's port, for redirects built from the Host header.
    port: u16,
}

/// A router answering every request with 308 to the same path and query over https: at the
/// public URL's host (and its port when it is an https URL, else `https_port`), without one at
/// the request's host on `https_port`.
pub fn redirect_router(public_url: Option<&str>, https_port: u16) -> Router {
    let public = public_url
        .and_then(|u| u.trim().parse::<Uri>().ok())
        .and_then(|u| {
            let authority = u.authority()?;
            // An https public URL says how clients reach the server (its port, 443 when it
            // names none, may be forwarded to another); an http one only names the host.
            Some(match (u.scheme_str(), authority.port_u16()) {
                (Some("https"), Some(port)) => format!("{}:{port}", authority.host()),
                (Some("https"), None) => authority.host().to_owned(),
                _ => with_port(authority.host(), https_port),
            })
        });
    Router::new().fallback(to_https).with_state(Target {
        public,
        port: https_port,
    })
}

fn with_port(host: &str, port: u16) -> String {
    if port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

async fn to_https(State(target): State<Target>, uri: Uri, headers: HeaderMap) -> Response {
    let host = match &target.public {
        Some(h) => h.clone(),
        None => {
            let Some(authority) = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<Authority>().ok())
            else {
                return (StatusCode::BAD_REQUEST, "This address serves https only.\n")
                    .into_response();
            };
            with_port(authority.host(), target.port)
        }
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    match HeaderValue::from_str(&format!("https://{host}{path}")) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn location(router: Router, host: &str, path: &str) -> (StatusCode, Option<String>) {
        use tower::ServiceExt;
        let request = axum::http::Request::get(path)
            .header(header::HOST, host)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    #[tokio::test]
    async fn redirects_go_to_the_public_host_when_there_is_one() {
        let public = redirect_router(Some("https://licenses.example.com"), 8443);
        assert_eq!(
            location(public, "evil.example", "/a/b?c=d").await,
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://licenses.example.com/a/b?c=d".into())
            )
        );
        let with_port = redirect_router(Some("https://licenses.example.com:9443/"), 8443);
        assert_eq!(
            location(with_port, "x", "/").await.1.as_deref(),
            Some("https://licenses.example.com:9443/")
        );
        let plain_public = redirect_router(Some("http://keys.example"), 8443);
        assert_eq!(
            location(plain_public, "x", "/").await.1.as_deref(),
            Some("https://keys.example:8443/")
        );
        let on_443 = redirect_router(None, 443);
        assert_eq!(
            location(on_443, "keys.example:80", "/health")
                .await
                .1
                .as_deref(),
            Some("https://keys.example/health")
        );
        let bad_host = redirect_router(None, 443);
        assert_eq!(
            location(bad_host, "a b", "/").await.0,
            StatusCode::BAD_REQUEST
        );
    }
}
