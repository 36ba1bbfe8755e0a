//! https served by `keyturn serve` itself: the certificate from the files, reloaded on SIGHUP
//! and on a change of the files without a restart, a broken replacement ignored, and the
//! plain-HTTP redirect listener. The real binary, with certificates made here; the database
//! plays no part in any of it, so SQLite only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::{free_port, ServerProcess};

/// A self-signed certificate for 127.0.0.1 and localhost.
struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

fn new_cert(name: &str) -> Cert {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    // Distinct names: a client trusting several of these finds each one's own anchor.
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Cert {
        pem: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// A client trusting `trusted` (and nothing cached: every request is a new connection, so it
/// sees the certificate served now).
fn client(trusted: &[&Cert]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5));
    for cert in trusted {
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(cert.pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The certificate a new connection is given, as DER, from a `/health` that answered 200.
async fn served_cert(base: &str, trusted: &[&Cert]) -> Vec<u8> {
    let response = client(trusted)
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("https /health");
    assert_eq!(response.status(), 200);
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the handshake's certificate")
        .to_vec()
}

/// Replaces a file the way a renewer does: a new file moved over the old one.
fn replace(path: &Path, content: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, content).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

struct Files {
    _dir: tempfile::TempDir,
    data: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    log: PathBuf,
}

fn files(first: &Cert) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let files = Files {
        data: dir.path().join("data"),
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
        log: dir.path().join("serve.log"),
        _dir: dir,
    };
    std::fs::write(&files.cert, &first.pem).unwrap();
    std::fs::write(&files.key, &first.key).unwrap();
    files
}

/// `keyturn serve` with TLS on a free port, once `/health` answers over https.
async fn start(
    files: &Files,
    args: &[&str],
    env: &[(&str, &str)],
    trusted: &Cert,
) -> ServerProcess {
    let port = free_port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"));
    command
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--tls-key", files.key.to_str().unwrap()])
        .args(args)
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG")
        // Set by variable, the way a service unit would.
        .env("KEYTURN_TLS_CERT", &files.cert)
        .env("KEYTURN_DATA_DIR", &files.data)
        .env("KEYTURN_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&files.log).unwrap());
    for (k, v) in env {
        command.env(k, v);
    }
    let process = ServerProcess {
        child: command.spawn().expect("start keyturn serve"),
        base: format!("https://127.0.0.1:{port}"),
        log: files.log.clone(),
    };
    for _ in 0..400 {
        if let Ok(r) = client(&[trusted])
            .get(format!("{}/health", process.base))
            .send()
            .await
        {
            if r.status().is_success() {
                return process;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "keyturn serve did not come up over https: {}",
        process.log_text()
    );
}

/// How often `line` is in the server's log.
fn count(server: &ServerProcess, line: &str) -> usize {
    server.log_text().matches(line).count()
}

/// Waits up to five seconds for `line` to be logged more than `before` times.
async fn logged(server: &ServerProcess, line: &str, before: usize) {
    for _ in 0..100 {
        if count(server, line) > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{line:?} not logged again: {}", server.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_and_the_certificate_reloads_without_a_restart() {
    let (first, second, third) = (new_cert("first"), new_cert("second"), new_cert("third"));
    let all = [&first, &second, &third];
    let files = files(&first);
    let server = start(&files, &["--tls-reload-seconds", "1"], &[], &first).await;
    let base = server.base.clone();

    // https with the configured certificate.
    assert_eq!(served_cert(&base, &all).await, first.der);
    // A client that does not trust it refuses the connection.
    assert!(client(&[&second])
        .get(format!("{base}/health"))
        .send()
        .await
        .is_err());
    // Plain HTTP to the https port gets no HTTP answer.
    let plain = base.replacen("https://", "http://", 1);
    let answered = reqwest::Client::new()
        .get(format!("{plain}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        answered.is_err(),
        "plain HTTP on the TLS port answered {:?}",
        answered.map(|r| r.status())
    );
    // Cookies are Secure on an https listener, with no public URL configured.
    let sign_in = client(&all)
        .get(format!("{base}/portal/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), 200);
    let cookie = sign_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // New files and SIGHUP: new connections get the new certificate. The poll may see the
    // change as well; the log says the signal made a reload too.
    replace(&files.key, &second.key);
    replace(&files.cert, &second.pem);
    server.signal("HUP");
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = served_cert(&base, &all).await;
        if seen == second.der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen, second.der,
        "the new certificate is served after SIGHUP"
    );
    for _ in 0..100 {
        if server
            .log_text()
            .lines()
            .any(|l| l.contains("reloaded the TLS certificate") && l.contains("SIGHUP"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server
            .log_text()
            .lines()
            .any(|l| l.contains("reloaded the TLS certificate") && l.contains("SIGHUP")),
        "{}",
        server.log_text()
    );

    // A broken certificate file (noticed by the poll, without a signal): logged, and the
    // certificate in use stays. Counted, as the poll may also have seen the files above
    // half-replaced.
    const FAILED: &str = "cannot reload the TLS certificate";
    let failed = count(&server, FAILED);
    replace(
        &files.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    logged(&server, "is not a PEM certificate chain", 0).await;
    assert!(count(&server, FAILED) > failed);
    assert_eq!(served_cert(&base, &all).await, second.der);
    // A certificate whose key is not the one in the key file: the same.
    let mismatched = count(&server, "cannot be served together");
    replace(&files.cert, &third.pem);
    server.signal("HUP");
    logged(&server, "cannot be served together", mismatched).await;
    assert_eq!(served_cert(&base, &all).await, second.der);
    // Its key arriving later (the poll sees the key file change): now it is served.
    replace(&files.key, &third.key);
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = served_cert(&base, &all).await;
        if seen == third.der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, third.der, "the poll picks up the matching key");
    // The key's content is never in the log.
    let key_body = third.key.lines().nth(1).unwrap();
    assert!(!server.log_text().contains(key_body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redirect_listener_answers_308_to_https() {
    let cert = new_cert("redirect");
    let files = files(&cert);
    let redirect_port = free_port();
    let redirect = format!("127.0.0.1:{redirect_port}");

    // Without a public URL: the request's host, on the https listener's port.
    let server = start(&files, &["--http-redirect-listen", &redirect], &[], &cert).await;
    let https_port = server.base.rsplit(':').next().unwrap().to_owned();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = plain
        .get(format!("http://localhost:{redirect_port}/v1/x?y=z"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("https://localhost:{https_port}/v1/x?y=z"));
    // The Location works: it reaches the https listener.
    let followed = client(&[&cert]).get(location).send().await.unwrap();
    assert_eq!(followed.status(), 404);
    drop(server);

    // With a public URL: its host, whatever the request's Host header says.
    let server = start(
        &files,
        &["--http-redirect-listen", &redirect],
        &[("KEYTURN_PUBLIC_URL", "https://licenses.example.com")],
        &cert,
    )
    .await;
    let response = plain
        .get(format!("http://127.0.0.1:{redirect_port}/health"))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        "https://licenses.example.com/health"
    );
    drop(server);
}

/// Flags that only make sense together are refused at start, and a certificate that cannot
/// be served stops the start, with a message naming the file.
#[tokio::test]
async fn tls_settings_are_checked_before_serving() {
    let cert = new_cert("checks");
    let files = files(&cert);
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("KEYTURN_CONFIG")
            .env_remove("KEYTURN_DATABASE_URL")
            .env("KEYTURN_DATA_DIR", &files.data)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let cert_path = files.cert.to_str().unwrap();
    let key_path = files.key.to_str().unwrap();
    assert!(run(&["--tls-cert", cert_path]).contains("go together"));
    assert!(run(&["--http-redirect-listen", "127.0.0.1:0"]).contains("needs KEYTURN_TLS_CERT"));
    assert!(run(&["--tls-cert", key_path, "--tls-key", key_path]).contains("holds no certificate"));
}

/// Reads until the server closes the connection (true) or `within` passes (false).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The connection limits hold over TLS too: a client that never finishes its handshake is
/// closed after the header deadline, the per-address cap counts such connections, and SIGTERM
/// still ends the process (the reload watch does not keep it alive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_and_shutdown_hold_over_tls() {
    let cert = new_cert("limits");
    let files = files(&cert);
    let mut server = start(
        &files,
        &[
            "--header-read-timeout-seconds",
            "1",
            "--max-connections-per-ip",
            "2",
            "--shutdown-grace-seconds",
            "1",
        ],
        &[],
        &cert,
    )
    .await;
    let addr = server.base.trim_start_matches("https://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The cap is reached: a third connection is turned away before any handshake.
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(2)).await);
    // The silent ones are closed at the deadline, and then the address may connect again.
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "a connection without a handshake stays open"
        );
    }
    assert_eq!(served_cert(&server.base, &[&cert]).await, cert.der);

    server.signal("TERM");
    let status = server.exited(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        server.log_text()
    );
}

/// `keyturn check-config` reads the certificate files as `serve` would.
#[test]
fn check_config_reads_the_certificate() {
    let (first, second) = (new_cert("one"), new_cert("two"));
    let files = files(&first);
    std::fs::write(&files.key, &second.key).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .arg("check-config")
        .args(["--tls-cert", files.cert.to_str().unwrap()])
        .args(["--tls-key", files.key.to_str().unwrap()])
        .env_remove("KEYTURN_CONFIG")
        .env_remove("KEYTURN_DATABASE_URL")
        .env("KEYTURN_DATA_DIR", &files.data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert!(err.contains("cannot be served together"), "{err}");
    // The key's content is not in the message.
    assert!(!err.contains(second.key.lines().nth(1).unwrap()), "{err}");
}
