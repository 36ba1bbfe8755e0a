//! What an operator's Prometheus scrapes from `/metrics`: counters moved where the events
//! already happen, and the values that live in the database (outbox depths) or the pools read
//! at scrape time.
//!
//! Why it is shaped this way: validation is the hot path (see `cache.rs`), so what it moves
//! must cost next to nothing. Every counter is one relaxed atomic add; the per-code counters of
//! validations and activations are looked up once at start and kept in arrays indexed by the
//! result code, so counting a validation takes no lock and no hash. Only the per-route request
//! counters go through a label map (a read lock and a hash per request), which is what the
//! route template label costs. Labels never carry a key, an id or any request data: routes are
//! templates (`/v1/licenses/{id}`), providers and outcomes come from fixed lists.

use std::sync::Mutex;
use std::time::Duration;

use keyturn_core::ValidationCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::usage::{code_name, CODES};
use crate::App;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    /// The route template that matched, or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s: a validation from memory sits in the first buckets, a page or a
    // webhook that waits on the database in the later ones.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// How long a scrape waits for the database to count the outboxes.
const OUTBOX_BUDGET: Duration = Duration::from_millis(500);

/// The server's metrics, registered once; see the module documentation.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    validations: [Counter; CODES.len()],
    activations: [Counter; CODES.len()],
    webhooks_in: Family<ProviderLabels, Counter>,
    webhooks_out: Family<OutcomeLabels, Counter>,
    outbox_mail: Gauge,
    outbox_webhooks: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    db_errors: Family<OutcomeLabels, Counter>,
    /// The store's error totals already added to `db_errors` (scrapes may overlap).
    db_errors_seen: Mutex<(u64, u64)>,
    build: Family<BuildLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn per_code(family: &Family<CodeLabels, Counter>) -> [Counter; CODES.len()] {
    CODES.map(|code| {
        family
            .get_or_create(&CodeLabels {
                code: code_name(code),
            })
            .clone()
    })
}

fn code_index(code: ValidationCode) -> usize {
    CODES.iter().position(|c| *c == code).unwrap_or(0)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyturn");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            latency.clone(),
        );
        let validations = Family::<CodeLabels, Counter>::default();
        registry.register(
            "validations",
            "License validations by result code",
            validations.clone(),
        );
        let activations = Family::<CodeLabels, Counter>::default();
        registry.register(
            "activations",
            "Activations by result code",
            activations.clone(),
        );
        let webhooks_in = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "webhooks_received",
            "Provider webhooks received, by provider and outcome (accepted, refused, failed)",
            webhooks_in.clone(),
        );
        let webhooks_out = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Outgoing webhook delivery attempts by outcome (delivered, failed)",
            webhooks_out.clone(),
        );
        let outbox_mail = Gauge::default();
        registry.register(
            "mail_outbox_depth",
            "Mails not yet taken by an SMTP server",
            outbox_mail.clone(),
        );
        let outbox_webhooks = Gauge::default();
        registry.register(
            "webhook_outbox_depth",
            "Outgoing webhook deliveries pending",
            outbox_webhooks.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "license_cache_hits",
            "License lookups answered from memory",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "license_cache_misses",
            "License lookups that read the database",
            cache_misses.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "database_pool_connections",
            "Database connections open",
            pool_size.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "database_pool_idle_connections",
            "Database connections open and unused",
            pool_idle.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "database_pool_max_connections",
            "Database connections the pools may open",
            pool_max.clone(),
        );
        let db_errors = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "database_errors",
            "Database errors by kind (unavailable: may pass; other)",
            db_errors.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "The running build: version and commit",
            build.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            validations: per_code(&validations),
            activations: per_code(&activations),
            webhooks_in,
            webhooks_out,
            outbox_mail,
            outbox_webhooks,
            cache_hits,
            cache_misses,
            pool_size,
            pool_idle,
            pool_max,
            db_errors,
            db_errors_seen: Mutex::new((0, 0)),
            build,
        }
    }
}

/// A provider webhook's outcome by the answer's status.
pub fn webhook_outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "accepted",
        400..=499 => "refused",
        _ => "failed",
    }
}

impl Metrics {
    /// Records one answered HTTP request (`method` one of a fixed few, `route` a template).
    pub fn request(&self, method: &'static str, route: &str, status: u16, took: Duration) {
        let labels = RequestLabels {
            method,
            route: route.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: labels.route,
            })
            .observe(took.as_secs_f64());
    }

    pub fn validation(&self, code: ValidationCode) {
        self.validations[code_index(code)].inc();
    }

    pub fn activation(&self, code: ValidationCode) {
        self.activations[code_index(code)].inc();
    }

    /// One inbound provider webhook; `provider` is one of the fixed route names.
    pub fn webhook_received(&self, provider: &'static str, status: u16) {
        self.webhooks_in
            .get_or_create(&ProviderLabels {
                provider,
                outcome: webhook_outcome(status),
            })
            .inc();
    }

    pub fn webhook_attempt(&self, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.webhooks_out
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn license_cache(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// Names the running build (one series, value 1).
    pub fn set_build(&self, version: &str, commit: &str) {
        self.build
            .get_or_create(&BuildLabels {
                version: version.to_owned(),
                commit: commit.to_owned(),
            })
            .set(1);
    }

    /// Adds the store's database errors counted since the last scrape.
    fn sync_database_errors(&self) {
        let (unavailable, other) = keyturn_store::database_errors();
        let mut seen = self
            .db_errors_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let add = |outcome, now: u64, before: &mut u64| {
            let delta = now.saturating_sub(*before);
            *before = now.max(*before);
            self.db_errors
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(delta);
        };
        add("unavailable", unavailable, &mut seen.0);
        add("other", other, &mut seen.1);
    }
}

impl App {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics in Prometheus' text format, with the outbox depths and the pools read now.
    /// An outbox the database does not count in time keeps its last value.
    pub async fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let depths = async {
            let mail = self.unsent_mail().await?;
            let webhooks = self.pending_webhook_deliveries().await?;
            Ok::<_, crate::AppError>((mail, webhooks))
        };
        match tokio::time::timeout(OUTBOX_BUDGET, depths).await {
            Ok(Ok((mail, webhooks))) => {
                m.outbox_mail.set(mail);
                m.outbox_webhooks.set(webhooks);
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot count the outboxes for metrics"),
            Err(_) => tracing::debug!("the database did not count the outboxes in time"),
        }
        let pools = self.store.pool_stats();
        m.pool_size.set(i64::from(pools.size));
        m.pool_idle.set(i64::from(pools.idle));
        m.pool_max.set(i64::from(pools.max));
        m.sync_database_errors();
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &m.registry) {
            tracing::warn!(error = %e, "cannot render the metrics");
        }
        out
    }
}
