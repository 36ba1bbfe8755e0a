//! The measurements. Each starts a Keyturn server of its own on a new database, sets it up
//! through the API as a vendor would, checks that the requests it is about to repeat succeed
//! for the right reason, then puts it under load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use bytes::Bytes;
use hyper::StatusCode;
use keyturn_core::{RsaDigest, RsaSigner};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::load::{self, LoadSpec, LoadStats, RequestFactory};

mod console;
use crate::report::{Row, Target};
use crate::server::{self, Admin, Database, Server};

mod webhooks;

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The `keyturn` binary to measure.
    #[arg(long)]
    pub server: PathBuf,
    /// Where to write the markdown table.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A PostgreSQL server to create scratch databases on; without one, PostgreSQL rows are
    /// skipped.
    #[arg(long, env = "KEYTURN_BENCH_DATABASE_URL")]
    pub postgres: Option<String>,
    /// A quick pass with tiny sizes that only checks the harness works (CI runs this).
    #[arg(long)]
    pub smoke: bool,
    /// Measured seconds per throughput figure.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    #[arg(long, default_value_t = 4)]
    pub latency_connections: usize,
    /// License counts for the latency-versus-data-size figures.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    pub sizes: Vec<usize>,
    /// Run only these measurements (by number, e.g. `2,6`).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Distinct Stripe events to replay (one in five is delivered twice more).
    #[arg(long, default_value_t = 10_000)]
    pub stripe_events: usize,
    /// Licenses seeded for the admin console's figures (7).
    #[arg(long, default_value_t = 1_000_000)]
    pub console_licenses: usize,
}

impl Options {
    fn effective(&self) -> Self {
        let mut o = self.clone();
        if o.smoke {
            o.seconds = 1;
            o.warmup_secs = 0;
            o.connections = 4;
            o.sizes = vec![200, 1000, 3000];
            o.stripe_events = 250;
            o.console_licenses = 2000;
        }
        o
    }

    fn spec(&self, connections: usize, expect: StatusCode, must_contain: &'static str) -> LoadSpec {
        LoadSpec {
            connections,
            warmup: if self.smoke {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(self.warmup_secs)
            },
            duration: Duration::from_secs(self.seconds),
            expect,
            must_contain,
            server_pid: None,
        }
    }

    /// How many slices each load of an interleaved measurement is cut into.
    fn rounds(&self) -> u32 {
        if self.smoke {
            1
        } else {
            ROUNDS
        }
    }

    fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == id)
    }

    /// The flags that differ from the defaults, for the reproduce line.
    pub fn reproduce_flags(&self) -> String {
        if self.smoke {
            " --smoke".into()
        } else {
            String::new()
        }
    }

    /// How many licenses the throughput scenarios spread their requests over.
    fn pool(&self) -> usize {
        if self.smoke {
            50
        } else {
            1000
        }
    }
}

fn rate(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How much of the machine the load generator took, for the notes.
fn client_note(stats: &LoadStats) -> String {
    let server = stats
        .server_cpu_us
        .map(|us| format!(" and the server {us:.0} µs of CPU per request"))
        .unwrap_or_default();
    format!(
        "the load generator used {:.0} % of the machine{server}",
        stats.client_share * 100.0
    )
}

fn throughput(stats: &LoadStats, unit: &str) -> String {
    format!(
        "{} {unit}/s · p50 {:.2} ms · p99 {:.2} ms",
        rate(stats.throughput()),
        stats.percentile_ms(0.5),
        stats.percentile_ms(0.99)
    )
}

/// Scratch databases on a PostgreSQL server, dropped at the end.
struct Postgres {
    server: String,
    names: Vec<String>,
}

impl Postgres {
    async fn database(&mut self) -> anyhow::Result<Database> {
        let name = format!("keyturn_bench_{:08x}", rand::random::<u32>());
        let mut conn = sqlx::PgConnection::connect(&self.server)
            .await
            .context("connect to the PostgreSQL server")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        self.names.push(name.clone());
        Ok(Database::Postgres(with_database(&self.server, &name)))
    }

    async fn drop_all(&self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.server).await {
            for name in &self.names {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

/// The same server URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let path_at = base.find("://").map_or(0, |i| i + 3);
    let root = base[path_at..]
        .find('/')
        .map_or(base, |i| &base[..path_at + i]);
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

struct Scratch {
    dir: tempfile::TempDir,
    postgres: Option<Postgres>,
}

impl Scratch {
    fn sqlite(&self, name: &str) -> Database {
        Database::Sqlite(self.dir.path().join(name))
    }

    async fn postgres(&mut self) -> anyhow::Result<Option<Database>> {
        match self.postgres.as_mut() {
            Some(pg) => Ok(Some(pg.database().await?)),
            None => Ok(None),
        }
    }
}

pub async fn run_all(options: &Options) -> anyhow::Result<Vec<Row>> {
    let o = options.effective();
    ensure!(
        o.server.exists(),
        "no server binary at {}",
        o.server.display()
    );
    let mut scratch = Scratch {
        dir: tempfile::tempdir()?,
        postgres: o
            .postgres
            .clone()
            .filter(|u| !u.is_empty())
            .map(|server| Postgres {
                server,
                names: Vec::new(),
            }),
    };
    let result = measure(&o, &mut scratch).await;
    if let Some(pg) = &scratch.postgres {
        pg.drop_all().await;
    }
    result
}

async fn measure(o: &Options, scratch: &mut Scratch) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    if o.wants("1") || o.wants("2") {
        http_figures(o, scratch, &mut rows).await?;
    }
    if o.wants("3") {
        rsa_figures(o, scratch, &mut rows).await?;
    }
    if o.wants("4") || o.wants("5") {
        write_figures(o, scratch, &mut rows).await?;
    }
    if o.wants("6") {
        size_figures(o, scratch, &mut rows).await?;
    }
    if o.wants("7") {
        console::console_figures(o, scratch, &mut rows).await?;
    }
    if o.wants("8") {
        webhooks::figures(o, scratch, &mut rows).await?;
    }
    Ok(rows)
}

async fn http_figures(
    o: &Options,
    scratch: &mut Scratch,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("1. bare-HTTP ceilings, 2. validate: in alternating slices");
    let sqlite = validate_load(o, &scratch.sqlite("validate")).await?;
    let postgres = match scratch.postgres().await? {
        Some(db) => Some(validate_load(o, &db).await?),
        None => None,
    };
    let ceiling = server::ceiling(sqlite.reply_bytes).await?;
    let probe = Bytes::from(
        json!({"key": "ABCDE-FGHIJ-KLMNO-PQRST", "fingerprint": "bench-machine-00001"}).to_string(),
    );
    let ceiling_load = |path: &'static str| Load {
        addr: ceiling.addr,
        spec: o
            .spec(o.connections, StatusCode::OK, "\"valid\":true")
            .watching(ceiling.pid()),
        make: cycling(ceiling.addr, path, "application/json", vec![probe.clone()]),
    };
    let mut loads = vec![
        ceiling_load("/ceiling"),
        ceiling_load("/ceiling/signed"),
        sqlite.load.clone(),
    ];
    loads.extend(postgres.as_ref().map(|p| p.load.clone()));
    let stats = interleaved(o, &loads).await?;
    let (bare, signed, validate) = (&stats[0], &stats[1], &stats[2]);
    bare.ensure_clean("bare HTTP")?;
    signed.ensure_clean("signed ceiling")?;
    validate.ensure_clean("validate")?;

    rows.push(
        Row::new("1", "bare HTTP: axum, fixed JSON", throughput(bare, "req"))
            .note(client_note(bare)),
    );
    let bare_label = format!("bare HTTP {} req/s", rate(bare.throughput()));
    rows.push(
        Row::new(
            "1",
            format!(
                "signed ceiling: bare HTTP + Ed25519 signature of a {}-byte reply",
                sqlite.reply_bytes
            ),
            throughput(signed, "req"),
        )
        .against(&bare_label, signed.throughput() / bare.throughput())
        .note(format!(
            "the least any fresh signed answer costs: the current time in a body as long as a validate reply, signed by the server's Ed25519 library; {}",
            client_note(signed)
        )),
    );
    let signed_label = format!("signed ceiling {} req/s", rate(signed.throughput()));
    rows.push(
        Row::new(
            "2",
            "native validate, Ed25519-signed (SQLite)",
            throughput(validate, "req"),
        )
        .against(&bare_label, validate.throughput() / bare.throughput())
        .target(Target::AtLeast(0.6))
        .note(format!(
            "every reply checked for `\"valid\":true`, asked with the fingerprint of an activated machine; {}",
            client_note(validate)
        )),
    );
    rows.push(
        Row::new(
            "2",
            "native validate (SQLite), against the signed ceiling",
            throughput(validate, "req"),
        )
        .against(&signed_label, validate.throughput() / signed.throughput()),
    );
    if let Some(pg) = stats.get(3) {
        pg.ensure_clean("validate (PostgreSQL)")?;
        rows.push(
            Row::new(
                "2",
                "native validate, Ed25519-signed (PostgreSQL)",
                throughput(pg, "req"),
            )
            .against(&bare_label, pg.throughput() / bare.throughput())
            .note(client_note(pg)),
        );
    }
    ceiling.stop().await;
    sqlite.process.stop().await;
    if let Some(p) = postgres {
        p.process.stop().await;
    }
    Ok(())
}

async fn rsa_figures(
    o: &Options,
    scratch: &mut Scratch,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("3. RSA and Cryptolens Activate");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seconds = Duration::from_secs(o.seconds.min(5));
    let signer = RsaSigner::generate().map_err(|e| anyhow!("{e}"))?;
    let (one, took) = rsa_signatures(&signer, 1, seconds);
    let rsa_one = one as f64 / took.as_secs_f64();
    rows.push(Row::new(
        "3",
        "raw RSA-2048 signing (aws-lc-rs), 1 thread",
        format!("{} signatures/s", rate(rsa_one)),
    ));
    let (fresh_process, fresh_load) =
        cryptolens_load(o, &scratch.sqlite("cl-fresh"), false).await?;
    let (reused_process, reused_load) =
        cryptolens_load(o, &scratch.sqlite("cl-reuse"), true).await?;
    let ceiling = server::ceiling(0).await?;
    let ceiling_load = Load {
        addr: ceiling.addr,
        spec: o
            .spec(o.connections, StatusCode::OK, "\"result\":0")
            .watching(ceiling.pid()),
        make: cycling(
            ceiling.addr,
            "/ceiling/rsa",
            "application/x-www-form-urlencoded",
            vec![Bytes::from_static(b"Key=ABCDE-FGHIJ-KLMNO-PQRST&Sign=true")],
        ),
    };
    // The all-core RSA rate and the activations alternate, as the HTTP figures do.
    let (mut signatures, mut signing) = (0u64, Duration::ZERO);
    let mut signed_ceiling = LoadStats::default();
    let mut fresh = LoadStats::default();
    let mut reused = LoadStats::default();
    for round in 0..o.rounds() {
        let (n, took) = rsa_signatures(&signer, cores, Duration::from_secs(o.seconds) / o.rounds());
        signatures += n;
        signing += took;
        for (load, stats) in [
            (&ceiling_load, &mut signed_ceiling),
            (&fresh_load, &mut fresh),
            (&reused_load, &mut reused),
        ] {
            stats.absorb(load.slice(o, round).await?);
        }
    }
    signed_ceiling.ensure_clean("RSA-signed ceiling")?;
    fresh.ensure_clean("Cryptolens Activate, signed afresh")?;
    reused.ensure_clean("Cryptolens Activate, signature reused")?;
    fresh_process.stop().await;
    reused_process.stop().await;
    ceiling.stop().await;
    let rsa_all = signatures as f64 / signing.as_secs_f64();
    rows.push(Row::new(
        "3",
        format!("raw RSA-2048 signing, all {cores} cores"),
        format!("{} signatures/s", rate(rsa_all)),
    ));
    let rsa_label = format!("RSA {} signatures/s", rate(rsa_all));
    rows.push(
        Row::new(
            "3",
            "RSA-signed ceiling: bare HTTP + RSA-2048 signature of a 1 KiB message",
            throughput(&signed_ceiling, "req"),
        )
        .against(&rsa_label, signed_ceiling.throughput() / rsa_all)
        .note(format!(
            "the least any fresh RSA-signed answer costs, on the same web stack; {}",
            client_note(&signed_ceiling)
        )),
    );
    let signed_label = format!(
        "RSA-signed ceiling {} req/s",
        rate(signed_ceiling.throughput())
    );
    rows.push(
        Row::new(
            "3",
            "Cryptolens Activate, known machine, signed afresh each time",
            throughput(&fresh, "req"),
        )
        .against(&rsa_label, fresh.throughput() / rsa_all)
        .target(Target::AtLeast(0.9))
        .note(format!(
            "`--signature-reuse-seconds 0`; measured in slices alternating with the all-core RSA rate; every reply checked for `\"result\":0`; {}",
            client_note(&fresh)
        )),
    );
    rows.push(
        Row::new(
            "3",
            "Cryptolens Activate, signed afresh, against the RSA-signed ceiling",
            throughput(&fresh, "req"),
        )
        .against(
            &signed_label,
            fresh.throughput() / signed_ceiling.throughput(),
        ),
    );
    rows.push(
        Row::new(
            "3",
            "Cryptolens Activate, known machine, signature of unchanged state reused",
            throughput(&reused, "req"),
        )
        .against(&rsa_label, reused.throughput() / rsa_all)
        .target(Target::AtLeast(1.0)),
    );

    Ok(())
}

async fn write_figures(
    o: &Options,
    scratch: &mut Scratch,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("4. activation writes");
    let mut databases = vec![scratch.sqlite("writes")];
    if let Some(db) = scratch.postgres().await? {
        databases.push(db);
    }
    let mut commit_ceilings = Vec::new();
    for db in &databases {
        let commits = raw_commits(o, db, scratch.dir.path()).await?;
        commit_ceilings.push(commits);
        if !o.wants("4") {
            continue;
        }
        let stats = activation_writes(o, db).await?;
        rows.push(
            Row::new(
                "4",
                format!("activate new machines ({})", db.label()),
                throughput(&stats, "activation"),
            )
            .against(
                format!("raw {} commits {}/s", db.label(), rate(commits)),
                stats.throughput() / commits,
            )
            .note("each a new machine on one of the licenses; 201 checked"),
        );
    }

    if !o.wants("5") {
        return Ok(());
    }
    eprintln!("5. Stripe webhooks");
    let mut databases = vec![scratch.sqlite("stripe")];
    if let Some(db) = scratch.postgres().await? {
        databases.push(db);
    }
    for (db, commits) in databases.iter().zip(&commit_ceilings) {
        let replay = stripe_replay(o, db).await?;
        let per_second = replay.deliveries as f64 / replay.elapsed.as_secs_f64();
        let mut row = Row::new(
            "5",
            format!(
                "{} signed Stripe events + {} duplicates, shuffled ({})",
                rate(replay.events as f64),
                rate((replay.deliveries - replay.events) as f64),
                db.label()
            ),
            format!(
                "all applied in {:.2} s · {} deliveries/s",
                replay.elapsed.as_secs_f64(),
                rate(per_second)
            ),
        )
        .against(
            format!("raw {} commits {}/s", db.label(), rate(*commits)),
            per_second / commits,
        )
        .note(replay.note.clone());
        row.broken = replay.broken;
        rows.push(row);
    }

    Ok(())
}

async fn size_figures(
    o: &Options,
    scratch: &mut Scratch,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("6. validate latency against data size");
    let (sizes, hot, import_rate) = data_size(o, &scratch.sqlite("sizes")).await?;
    if let Some((first, base)) = sizes.first().cloned() {
        for (count, stats) in &sizes {
            let p50 = stats.percentile_ms(0.5);
            rows.push(
                Row::new(
                    "6",
                    format!("validate with {} licenses (SQLite)", rate(*count as f64)),
                    throughput(stats, "req"),
                )
                .against(
                    format!(
                        "p50 at {} licenses: {:.2} ms",
                        rate(first as f64),
                        base.percentile_ms(0.5)
                    ),
                    p50 / base.percentile_ms(0.5),
                )
                .target(Target::Within(0.2))
                .note(format!(
                    "license cache off, so every request reads the database; random keys among \
                     all {} licenses, {} connections; p99 ratio {:.2}; seeded through \
                     `/v1/licenses/import` at {} licenses/s",
                    rate(*count as f64),
                    o.latency_connections,
                    stats.percentile_ms(0.99) / base.percentile_ms(0.99),
                    rate(import_rate)
                )),
            );
        }
        let largest = sizes.last().map_or(0, |(n, _)| *n);
        rows.push(
            Row::new(
                "6",
                format!(
                    "validate, {} hot licenses among {}, license cache on (SQLite)",
                    rate(HOT_SET as f64),
                    rate(largest as f64)
                ),
                throughput(&hot, "req"),
            )
            .against(
                format!("p50 of the database path at {}", rate(largest as f64)),
                hot.percentile_ms(0.5)
                    / sizes.last().map_or(f64::NAN, |(_, s)| s.percentile_ms(0.5)),
            )
            .note("what programs asking again and again about the same licenses see"),
        );
    }
    Ok(())
}

/// A factory that hands connection `conn` its `n`-th body, spread over `bodies`.
fn cycling(
    addr: std::net::SocketAddr,
    path: &'static str,
    content_type: &'static str,
    bodies: Vec<Bytes>,
) -> RequestFactory {
    let bodies = Arc::new(bodies);
    Arc::new(move |conn, n| {
        let i = (conn * 7919 + n as usize) % bodies.len();
        load::post(addr, path, content_type, bodies[i].clone())
    })
}

/// A load to measure: where it goes, what it sends, what counts as success.
#[derive(Clone)]
struct Load {
    addr: std::net::SocketAddr,
    spec: LoadSpec,
    make: RequestFactory,
}

const ROUNDS: u32 = 5;

/// Measures loads in alternating slices (`ROUNDS` of each, every slice after the first with a
/// short warm-up of its own), so that drift in what the shared machine gives weighs on all of
/// them alike and their ratios are taken side by side.
async fn interleaved(o: &Options, loads: &[Load]) -> anyhow::Result<Vec<LoadStats>> {
    let mut all = vec![LoadStats::default(); loads.len()];
    for round in 0..o.rounds() {
        for (load, stats) in loads.iter().zip(all.iter_mut()) {
            stats.absorb(load.slice(o, round).await?);
        }
    }
    Ok(all)
}

impl Load {
    /// Round `round`'s slice of this load.
    async fn slice(&self, o: &Options, round: u32) -> anyhow::Result<LoadStats> {
        let mut spec = self.spec.clone();
        spec.duration /= o.rounds();
        if round > 0 {
            spec.warmup = spec.warmup.min(Duration::from_millis(500));
        }
        load::run(self.addr, &spec, self.make.clone()).await
    }
}

/// A product with `count` licenses (made `quantity` at a time) and their keys.
async fn licenses(
    admin: &Admin,
    count: usize,
    max_machines: i64,
) -> anyhow::Result<(i64, Vec<String>)> {
    let product = admin.product("Bench").await?;
    let mut keys = Vec::with_capacity(count);
    while keys.len() < count {
        let quantity = (count - keys.len()).min(1000);
        let made = admin
            .post(
                "/v1/licenses",
                json!({"product_id": product, "max_machines": max_machines, "quantity": quantity}),
            )
            .await?;
        for license in made["data"]
            .as_array()
            .ok_or_else(|| anyhow!("no data in {made}"))?
        {
            keys.push(license["key"].as_str().unwrap_or_default().to_owned());
        }
    }
    Ok((product, keys))
}

struct ValidateLoad {
    process: server::Process,
    load: Load,
    /// The length of a reply, for the signed ceiling.
    reply_bytes: usize,
}

/// A server with licenses activated on one machine each, and the validations to repeat.
async fn validate_load(o: &Options, db: &Database) -> anyhow::Result<ValidateLoad> {
    let Server { process, admin } = server::keyturn(&o.server, db, &[]).await?;
    let (_, keys) = licenses(&admin, o.pool(), 3).await?;
    let mut bodies = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let fingerprint = format!("bench-machine-{i:05}");
        admin
            .public(
                "/v1/activations",
                json!({"key": key, "fingerprint": fingerprint}),
            )
            .await?;
        bodies.push(Bytes::from(
            json!({"key": key, "fingerprint": fingerprint}).to_string(),
        ));
    }
    let first = admin
        .public("/v1/validate", serde_json::from_slice(&bodies[0])?)
        .await?;
    ensure!(
        first["valid"] == true,
        "validate of an activated machine: {first}"
    );
    let load = Load {
        addr: process.addr,
        spec: o
            .spec(o.connections, StatusCode::OK, "\"valid\":true")
            .watching(process.pid()),
        make: cycling(process.addr, "/v1/validate", "application/json", bodies),
    };
    Ok(ValidateLoad {
        process,
        load,
        reply_bytes: first.to_string().len(),
    })
}

/// Signatures of a license-sized message with the library the server signs with, on `threads`
/// threads for `time`: how many, in how long.
fn rsa_signatures(signer: &RsaSigner, threads: usize, time: Duration) -> (u64, Duration) {
    let message = vec![b'{'; 1024];
    let start = Instant::now();
    let deadline = start + time;
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        std::hint::black_box(signer.sign(RsaDigest::Sha256, &message));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("signing thread"))
            .sum()
    });
    (total, start.elapsed())
}

/// A server with licenses activated on one machine each through the Cryptolens API, and the
/// activations of those machines to repeat.
async fn cryptolens_load(
    o: &Options,
    db: &Database,
    reuse: bool,
) -> anyhow::Result<(server::Process, Load)> {
    let reuse_seconds = if reuse { "900" } else { "0" };
    let Server { process, admin } = server::keyturn(
        &o.server,
        db,
        &[("KEYTURN_SIGNATURE_REUSE_SECONDS", reuse_seconds)],
    )
    .await?;
    let (product, keys) = licenses(&admin, o.pool().min(100), 10).await?;
    let token = admin
        .post(
            "/v1/tokens",
            json!({"name": "bench", "permissions": ["cryptolens:activate"]}),
        )
        .await?["token"]
        .as_str()
        .ok_or_else(|| anyhow!("no token"))?
        .to_owned();
    let http = reqwest::Client::new();
    let mut bodies = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let form = format!(
            "token={token}&ProductId={product}&Key={key}&MachineCode=cl-machine-{i:05}&Sign=true&SignMethod=1&v=1"
        );
        let first: Value = http
            .post(format!("http://{}/api/key/Activate", process.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            first["result"] == 0 && first["signature"].is_string(),
            "Activate: {first}"
        );
        bodies.push(Bytes::from(form));
    }
    let load = Load {
        addr: process.addr,
        spec: o
            .spec(o.connections, StatusCode::OK, "\"result\":0")
            .watching(process.pid()),
        make: cycling(
            process.addr,
            "/api/key/Activate",
            "application/x-www-form-urlencoded",
            bodies,
        ),
    };
    Ok((process, load))
}

async fn activation_writes(o: &Options, db: &Database) -> anyhow::Result<LoadStats> {
    let Server { process, admin } = server::keyturn(&o.server, db, &[]).await?;
    let (_, keys) = licenses(&admin, o.pool(), 1_000_000).await?;
    let keys = Arc::new(keys);
    let addr = process.addr;
    let factory: RequestFactory = Arc::new(move |conn, n| {
        let key = &keys[(conn * 7919 + n as usize) % keys.len()];
        let body = format!(r#"{{"key":"{key}","fingerprint":"write-{conn}-{n}"}}"#);
        load::post(
            addr,
            "/v1/activations",
            "application/json",
            Bytes::from(body),
        )
    });
    let spec = o
        .spec(o.connections, StatusCode::CREATED, "\"created\":true")
        .watching(process.pid());
    let stats = load::run(addr, &spec, factory).await?;
    stats.ensure_clean("activation writes")?;
    process.stop().await;
    Ok(stats)
}

/// Single-row insert transactions per second on the same kind of database, configured as the
/// server configures it: one writer on SQLite (WAL, synchronous NORMAL), a pool on PostgreSQL.
async fn raw_commits(o: &Options, db: &Database, dir: &Path) -> anyhow::Result<f64> {
    let pool = match db {
        Database::Sqlite(_) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.join(format!("commits-{:08x}.db", rand::random::<u32>())))
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            Either::Sqlite(pool)
        }
        Database::Postgres(url) => Either::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .connect(url)
                .await?,
        ),
    };
    pool.execute("CREATE TABLE bench_commits (id BIGINT PRIMARY KEY, note TEXT NOT NULL)")
        .await?;
    let next = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let warmup = Instant::now() + o.spec(1, StatusCode::OK, "").warmup;
    let until = warmup + Duration::from_secs(o.seconds);
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..o.connections)
        .map(|_| {
            let (pool, next, counted) = (pool.clone(), next.clone(), counted.clone());
            tokio::spawn(async move {
                loop {
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    pool.insert(id).await?;
                    if now >= warmup {
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let measured = Instant::now().saturating_duration_since(warmup);
    pool.execute("DROP TABLE bench_commits").await?;
    Ok(counted.load(std::sync::atomic::Ordering::Relaxed) as f64 / measured.as_secs_f64())
}

#[derive(Clone)]
enum Either {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Either {
    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            Either::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop)?,
            Either::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop)?,
        }
        Ok(())
    }

    /// One transaction: begin, insert a row, commit.
    async fn insert(&self, id: i64) -> anyhow::Result<()> {
        const SQL: &str = "INSERT INTO bench_commits (id, note) VALUES ($1, 'x')";
        match self {
            Either::Sqlite(p) => {
                let mut tx = p.begin().await?;
                sqlx::query(SQL).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Either::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query(SQL).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

struct Replay {
    events: usize,
    deliveries: usize,
    elapsed: Duration,
    note: String,
    broken: bool,
}

const DAY: i64 = 86_400;
const STRIPE_SECRET: &str = "whsec_bench_0123456789";

/// One subscription's life as Stripe reports it: the checkout, the first invoice and three
/// renewals, each a signed event.
fn subscription_events(s: usize, plan: i64, base: i64, created: i64) -> Vec<Value> {
    let sub = format!("sub_bench_{s}");
    let customer = format!("cus_bench_{s}");
    let mut events = vec![json!({
        "id": format!("evt_bench_{s}_checkout"), "object": "event", "created": created,
        "type": "checkout.session.completed", "livemode": false,
        "data": {"object": {
            "id": format!("cs_bench_{s}"), "object": "checkout.session", "mode": "subscription",
            "status": "complete", "payment_status": "paid", "amount_total": 1500, "currency": "eur",
            "customer": customer, "customer_details": {"email": format!("buyer{s}@example.com"), "name": "Bench Buyer"},
            "metadata": {"keyturn_plan_id": plan.to_string()}, "payment_intent": null,
            "subscription": sub, "invoice": format!("in_bench_{s}_1")
        }}
    })];
    for k in 1..=4i64 {
        let start = base + (k - 1) * 30 * DAY;
        let end = base + k * 30 * DAY;
        events.push(json!({
            "id": format!("evt_bench_{s}_invoice_{k}"), "object": "event", "created": created + k,
            "type": "invoice.paid", "livemode": false,
            "data": {"object": {
                "id": format!("in_bench_{s}_{k}"), "object": "invoice",
                "billing_reason": if k == 1 { "subscription_create" } else { "subscription_cycle" },
                "status": "paid", "customer": customer, "customer_email": format!("buyer{s}@example.com"),
                "amount_paid": 1500, "currency": "eur",
                "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub, "metadata": {}}},
                "lines": {"object": "list", "has_more": false, "data": [{
                    "id": format!("il_bench_{s}_{k}"), "object": "line_item", "amount": 1500, "quantity": 1,
                    "proration": false, "period": {"start": start, "end": end},
                    "pricing": {"type": "price_details", "price_details": {"price": "price_bench", "product": "prod_bench"}}
                }]},
                "payments": {"object": "list", "data": [{"object": "invoice_payment",
                    "payment": {"type": "payment_intent", "payment_intent": format!("pi_bench_{s}_{k}")}}]}
            }}
        }));
    }
    events
}

async fn stripe_replay(o: &Options, db: &Database) -> anyhow::Result<Replay> {
    let Server { process, admin } = server::keyturn(
        &o.server,
        db,
        &[("KEYTURN_STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)],
    )
    .await?;
    let product = admin.product("Bench").await?;
    let plan = admin
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Monthly", "period_days": 30, "max_machines": 1,
                   "features": ["pro"], "grace_days": 3, "stripe_price_ids": ["price_bench"]}),
        )
        .await?["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("no plan id"))?;
    let now = chrono::Utc::now().timestamp();
    let subscriptions = o.stripe_events.div_ceil(5);
    let mut bodies: Vec<Bytes> = Vec::new();
    for s in 0..subscriptions {
        for event in subscription_events(s, plan, now, now - 600) {
            bodies.push(Bytes::from(event.to_string()));
        }
    }
    let events = bodies.len();
    let mut deliveries: Vec<Bytes> = bodies.clone();
    deliveries.extend(bodies.iter().step_by(5).cloned());
    deliveries.shuffle(&mut rand::rngs::StdRng::seed_from_u64(8));
    let t = chrono::Utc::now().timestamp();
    let requests: Vec<_> = deliveries
        .iter()
        .map(|body| {
            let mut request = load::post(
                process.addr,
                "/webhooks/stripe",
                "application/json",
                body.clone(),
            );
            request.headers_mut().insert(
                "stripe-signature",
                keyturn_providers::stripe::sign(STRIPE_SECRET, t, body)
                    .parse()
                    .expect("a header value"),
            );
            request
        })
        .collect();
    let (elapsed, replies) = load::run_batch(process.addr, o.connections, requests).await?;
    let mut applied = 0;
    let mut duplicates = 0;
    let mut failures = Vec::new();
    for (status, body) in &replies {
        let reply: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match (status.as_u16(), reply["status"].as_str()) {
            (200, Some("applied")) => applied += 1,
            (200, Some("duplicate")) => duplicates += 1,
            _ => failures.push(format!("{status}: {}", String::from_utf8_lossy(body))),
        }
    }
    let (licenses, expiries) = license_expiries(&admin, product).await?;
    let last_end = chrono::DateTime::from_timestamp(now + 4 * 30 * DAY, 0).expect("a valid time");
    let converged = expiries.len() == 1 && expiries[0].is_some_and(|e| e >= last_end);
    let broken = applied != events
        || duplicates != deliveries.len() - events
        || licenses != subscriptions
        || !converged
        || !failures.is_empty();
    let note = format!(
        "{applied} applied (expected {events}), {duplicates} answered as duplicates, {licenses} licenses for {subscriptions} subscriptions, {} distinct expiry{}{}",
        expiries.len(),
        if converged { " (the last period's end plus grace)" } else { "" },
        failures.first().map(|f| format!("; first failure: {f}")).unwrap_or_default()
    );
    process.stop().await;
    Ok(Replay {
        events,
        deliveries: deliveries.len(),
        elapsed,
        note,
        broken,
    })
}

/// How many licenses a product has, and their distinct expiry times.
async fn license_expiries(
    admin: &Admin,
    product: i64,
) -> anyhow::Result<(usize, Vec<Option<chrono::DateTime<chrono::Utc>>>)> {
    let mut count = 0;
    let mut expiries = std::collections::BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let page = admin
            .get(&format!(
                "/v1/licenses?product_id={product}&limit=500&cursor={cursor}"
            ))
            .await?;
        for license in page["data"].as_array().ok_or_else(|| anyhow!("no data"))? {
            count += 1;
            expiries.insert(
                license["expires"]
                    .as_str()
                    .and_then(|e| e.parse::<chrono::DateTime<chrono::Utc>>().ok()),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    Ok((count, expiries.into_iter().collect()))
}

/// Keys as another licensing server might have issued them.
fn foreign_keys(count: usize, rng: &mut rand::rngs::StdRng) -> Vec<String> {
    (0..count)
        .map(|_| {
            let mut key = String::with_capacity(23);
            for group in 0..4 {
                if group > 0 {
                    key.push('-');
                }
                for _ in 0..5 {
                    key.push(char::from(b'A' + rng.gen_range(0..26u8)));
                }
            }
            key
        })
        .collect()
}

/// Licenses the cached figure asks about.
const HOT_SET: usize = 1000;

/// Validation latency at each size with the license cache off (the database path), then for a
/// hot set within the largest size with the cache on; and the import rate.
async fn data_size(
    o: &Options,
    db: &Database,
) -> anyhow::Result<(Vec<(usize, LoadStats)>, LoadStats, f64)> {
    let no_cache = [("KEYTURN_LICENSE_CACHE_ENTRIES", "0")];
    let Server { process, admin } = server::keyturn(&o.server, db, &no_cache).await?;
    let product = admin.product("Bench").await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let largest = o.sizes.iter().copied().max().unwrap_or(0);
    let mut keys = foreign_keys(largest, &mut rng);
    keys.sort_unstable();
    keys.dedup();
    keys.shuffle(&mut rng);
    if keys.len() < largest {
        bail!("drew {} distinct keys of {largest}", keys.len());
    }
    let mut out = Vec::new();
    let mut imported = 0;
    let mut importing = Duration::ZERO;
    for &size in &o.sizes {
        let started = Instant::now();
        while imported < size {
            let chunk = &keys[imported..size.min(imported + 10_000)];
            let reply = admin
                .post(
                    "/v1/licenses/import",
                    // Not locked to machines, so a key alone validates.
                    json!({"license": {"product_id": product, "max_machines": 0}, "keys": chunk}),
                )
                .await?;
            ensure!(reply["imported"] == chunk.len(), "import: {reply}");
            imported += chunk.len();
        }
        importing += started.elapsed();
        eprintln!(
            "   {size} licenses (imported in {:.1} s)",
            started.elapsed().as_secs_f64()
        );
        let probe = admin
            .public("/v1/validate", json!({"key": keys[size - 1]}))
            .await?;
        ensure!(
            probe["valid"] == true,
            "validate of an imported key: {probe}"
        );
        let spec = o.spec(o.latency_connections, StatusCode::OK, "\"valid\":true");
        let stats = load::run(
            process.addr,
            &spec,
            random_keys(process.addr, &keys[..size]),
        )
        .await?;
        stats.ensure_clean("validate at size")?;
        out.push((size, stats));
    }
    process.stop().await;
    let Server { process, .. } = server::keyturn_again(&o.server, db, &[], &admin).await?;
    let hot = &keys[..HOT_SET.min(keys.len())];
    let spec = o.spec(o.latency_connections, StatusCode::OK, "\"valid\":true");
    let cached = load::run(process.addr, &spec, random_keys(process.addr, hot)).await?;
    cached.ensure_clean("validate with the cache")?;
    process.stop().await;
    Ok((out, cached, imported as f64 / importing.as_secs_f64()))
}

/// Validations of keys drawn at random from `keys`.
fn random_keys(addr: std::net::SocketAddr, keys: &[String]) -> RequestFactory {
    let sample = Arc::new(keys.to_vec());
    Arc::new(move |conn, n| {
        let i = splitmix(((conn as u64) << 40) ^ n) as usize % sample.len();
        let body = format!(r#"{{"key":"{}"}}"#, sample[i]);
        load::post(addr, "/v1/validate", "application/json", Bytes::from(body))
    })
}

/// A cheap, well-spread hash, so each request picks an unrelated key.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
