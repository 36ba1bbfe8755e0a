//! The processes under load: a Keyturn server started from its release binary, as a vendor runs
//! it, and the ceiling server. Both are killed when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A port nobody listens on right now.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

pub struct Process {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Process {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn wait_for_port(addr: SocketAddr, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the process exited before listening: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("nothing listened on {addr} within 30 s")
}

/// Starts the ceiling server: this binary's `ceiling` command, its signed reply `reply_bytes`
/// long.
pub async fn ceiling(reply_bytes: usize) -> anyhow::Result<Process> {
    let addr = free_addr()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "ceiling",
            "--listen",
            &addr.to_string(),
            "--reply-bytes",
            &reply_bytes.to_string(),
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    wait_for_port(addr, &mut child).await?;
    Ok(Process { child, addr })
}

/// Where a server keeps its data.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    pub fn label(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "SQLite",
            Database::Postgres(_) => "PostgreSQL",
        }
    }
}

pub struct Server {
    pub process: Process,
    pub admin: Admin,
}

/// Starts `keyturn serve` on a new database and takes the admin token it prints once.
pub async fn keyturn(
    binary: &Path,
    db: &Database,
    extra: &[(&str, &str)],
) -> anyhow::Result<Server> {
    start(binary, db, extra, None).await
}

/// Starts `keyturn serve` again on a database an earlier server set up.
pub async fn keyturn_again(
    binary: &Path,
    db: &Database,
    extra: &[(&str, &str)],
    admin: &Admin,
) -> anyhow::Result<Server> {
    start(binary, db, extra, Some(admin.token.clone())).await
}

async fn start(
    binary: &Path,
    db: &Database,
    extra: &[(&str, &str)],
    known_token: Option<String>,
) -> anyhow::Result<Server> {
    let addr = free_addr()?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .args(["--listen", &addr.to_string()])
        .args(["--rate-limit-per-minute", "0"])
        // The default log level, as a vendor runs it.
        .env_remove("KEYTURN_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match db {
        Database::Sqlite(dir) => command.arg("--data-dir").arg(dir),
        Database::Postgres(url) => command.args(["--database-url", url]),
    };
    for (k, v) in extra {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut token = known_token.clone();
    let read = async {
        if known_token.is_some() {
            return anyhow::Ok(());
        }
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("kt_") {
                token = Some(line.trim().to_owned());
                break;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .map_err(|_| anyhow!("the server printed no admin token within 60 s"))??;
    let token = token.ok_or_else(|| anyhow!("the server printed no admin token"))?;
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    wait_for_port(addr, &mut child).await?;
    Ok(Server {
        process: Process { child, addr },
        admin: Admin::new(addr, token),
    })
}

/// The vendor's side of the API, for setting up a scenario.
#[derive(Clone)]
pub struct Admin {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    fn new(addr: SocketAddr, token: String) -> Self {
        Self {
            base: format!("http://{addr}"),
            token,
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The admin token, for requests the load generator builds itself.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(&body)).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Posts without a token, as a licensed program does.
    pub async fn public(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    pub async fn product(&self, name: &str) -> anyhow::Result<i64> {
        let product = self
            .post(
                "/v1/products",
                serde_json::json!({"name": name, "features": ["pro"]}),
            )
            .await?;
        product["id"]
            .as_i64()
            .ok_or_else(|| anyhow!("no product id in {product}"))
    }
}
