use chrono::Utc;
use clap::Subcommand;
use keyturn_app::{NewWebhookEndpoint, WebhookEndpointPatch, WebhookPolicy};

use crate::config::WebhookGuardArgs;
use crate::output::{self, ListArgs, PageArgs};

use super::{Context, Open};

#[derive(Subcommand)]
pub enum Webhooks {
    /// Create an endpoint and print it with its signing secret (shown only this once).
    Create {
        /// Where deliveries are POSTed (http:// or https://).
        #[arg(long)]
        url: String,
        /// An event type or pattern it receives, e.g. license.* (repeat for several) [default: *].
        #[arg(long = "event")]
        events: Vec<String>,
        /// Only events about this product's licenses.
        #[arg(long)]
        product: Option<i64>,
        #[arg(long)]
        description: Option<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        guard: WebhookGuardArgs,
    },
    /// List the endpoints (never their secrets).
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show an endpoint.
    Show { id: i64 },
    /// Change an endpoint's URL, events, product or description.
    Update {
        id: i64,
        #[arg(long)]
        url: Option<String>,
        /// The new list of event types or patterns (repeat for several).
        #[arg(long = "event")]
        events: Vec<String>,
        #[arg(long, conflicts_with = "all_products")]
        product: Option<i64>,
        /// Lift the product scope.
        #[arg(long)]
        all_products: bool,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        guard: WebhookGuardArgs,
    },
    /// Resume deliveries to an endpoint (also one Keyturn disabled after failures).
    Enable { id: i64 },
    /// Stop deliveries to an endpoint; they wait until it is enabled.
    Disable { id: i64 },
    /// Delete an endpoint with its pending deliveries and its log.
    Delete { id: i64 },
    /// A new signing secret, printed once; the old one keeps signing for the overlap.
    Rotate {
        id: i64,
        /// Hours the old secret keeps signing beside the new one (0 to 168).
        #[arg(long, default_value_t = keyturn_core::webhook::DEFAULT_OVERLAP_HOURS)]
        overlap_hours: i64,
    },
    /// An endpoint's deliveries, newest first.
    Deliveries {
        id: i64,
        /// Only those pending, delivered or failed.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        list: ListArgs,
    },
    /// One delivery with its attempts (status, latency, the answer's first bytes) and event.
    Delivery { id: i64 },
    /// Try one delivery again now.
    Retry { delivery: i64 },
    /// Try again every delivery to an endpoint that failed for good since a time.
    RetryFailed {
        id: i64,
        /// YYYY-MM-DD or an RFC 3339 time.
        #[arg(long)]
        since: String,
    },
    /// Send a test event to an endpoint; `delivery <id>` shows how it answered.
    Test { id: i64 },
}

impl Webhooks {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let allow_private = match &self {
            Webhooks::Create { guard, .. } | Webhooks::Update { guard, .. } => {
                guard.webhook_allow_private
            }
            _ => false,
        };
        let s = ctx
            .open_configured(Open::Existing, |app| {
                app.with_webhook_policy(WebhookPolicy {
                    allow_private,
                    ..Default::default()
                })
            })
            .await?;
        let (app, me) = (&s.app, &s.me);
        match self {
            Webhooks::Create {
                url,
                events,
                product,
                description,
                disabled,
                guard: _,
            } => {
                let input = NewWebhookEndpoint {
                    url,
                    description,
                    events: (!events.is_empty()).then_some(events),
                    product_id: product,
                    enabled: Some(!disabled),
                };
                let created = app.create_webhook_endpoint(me, input).await?;
                eprintln!(
                    "webhook endpoint {}; its signing secret is shown only now",
                    created.endpoint.id
                );
                let mut shown = serde_json::to_value(&created.endpoint)?;
                shown["secret"] = created.secret.expose().into();
                output::json(&shown)
            }
            Webhooks::List { page, list } => {
                let page = app.webhook_endpoints(me, &page.request()).await?;
                output::list(
                    &list,
                    &page.data,
                    page.next_cursor.as_deref(),
                    &[
                        "id",
                        "url",
                        "events",
                        "product_id",
                        "enabled",
                        "failing_since",
                    ],
                )
            }
            Webhooks::Show { id } => output::json(&app.webhook_endpoint(me, id).await?),
            Webhooks::Update {
                id,
                url,
                events,
                product,
                all_products,
                description,
                guard: _,
            } => {
                let patch = WebhookEndpointPatch {
                    url,
                    description,
                    events: (!events.is_empty()).then_some(events),
                    product_id: if all_products {
                        Some(None)
                    } else {
                        product.map(Some)
                    },
                    enabled: None,
                };
                output::json(&app.update_webhook_endpoint(me, id, patch).await?)
            }
            Webhooks::Enable { id } | Webhooks::Disable { id } => {
                let enabled = matches!(self, Webhooks::Enable { .. });
                let patch = WebhookEndpointPatch {
                    enabled: Some(enabled),
                    ..Default::default()
                };
                output::json(&app.update_webhook_endpoint(me, id, patch).await?)
            }
            Webhooks::Delete { id } => {
                app.delete_webhook_endpoint(me, id).await?;
                eprintln!("webhook endpoint {id} deleted");
                Ok(())
            }
            Webhooks::Rotate { id, overlap_hours } => {
                let rotated = app
                    .rotate_webhook_secret(me, id, Some(overlap_hours))
                    .await?;
                eprintln!(
                    "new signing secret of webhook endpoint {id}; the old one signs until {}",
                    rotated
                        .endpoint
                        .previous_secret_until
                        .map_or("now".to_owned(), |t| t.to_rfc3339())
                );
                output::line(rotated.secret.expose())
            }
            Webhooks::Deliveries {
                id,
                state,
                page,
                list,
            } => {
                let page = app
                    .webhook_deliveries(me, id, state.as_deref(), &page.request())
                    .await?;
                output::list(
                    &list,
                    &page.data,
                    page.next_cursor.as_deref(),
                    &[
                        "id",
                        "event_type",
                        "event_id",
                        "license_id",
                        "state",
                        "attempts",
                        "last_status",
                        "next_attempt_at",
                    ],
                )
            }
            Webhooks::Delivery { id } => output::json(&app.webhook_delivery(me, id).await?),
            Webhooks::Retry { delivery } => {
                output::json(&app.retry_webhook_delivery(me, delivery).await?)
            }
            Webhooks::RetryFailed { id, since } => {
                let since = keyturn_core::dates::parse("since", &since)?;
                let retried = app.retry_failed_webhook_deliveries(me, id, since).await?;
                output::line(format!("{retried} deliveries will be tried again"))
            }
            Webhooks::Test { id } => {
                let delivery = app.send_test_webhook(me, id).await?;
                eprintln!(
                    "test event queued at {}; a running server delivers it",
                    Utc::now().to_rfc3339()
                );
                output::json(&delivery)
            }
        }
    }
}
