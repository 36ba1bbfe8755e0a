//! The few Stripe API calls Keyturn makes. The base URL is configurable so any Stripe-compatible
//! server can stand in (a test server, localstripe).

use chrono::{DateTime, Utc};
use keyturn_core::payment::OfferMode;
use keyturn_core::provider::{CheckoutRequest, CheckoutStarted, LineItems};
use serde_json::Value;

use super::StripeEvent;
use crate::{EventEnvelope, ProviderError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Without the request's URL, which can name a checkout session.
    #[error("cannot reach the Stripe API: {0}")]
    Transport(reqwest::Error),
    #[error("the Stripe API answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("unexpected reply from the Stripe API: {0}")]
    Reply(String),
}

impl From<ApiError> for ProviderError {
    fn from(e: ApiError) -> Self {
        ProviderError::Unavailable(e.to_string())
    }
}

#[derive(Clone)]
pub struct StripeApi {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key is a secret: never printed.
        f.debug_struct("StripeApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Pages fetched at most by one sync run (100 events each).
const MAX_PAGES: usize = 100;

impl StripeApi {
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            http: crate::http_client(),
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        }
    }

    /// Sends a request with the API key and reads Stripe's JSON answer or error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
        let response = request
            .basic_auth(&self.key, Some(""))
            .send()
            .await
            .map_err(|e| ApiError::Transport(e.without_url()))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| ApiError::Reply(e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                message: body["error"]["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(body)
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// Starts a Stripe Checkout for what a buyer chose on a payment form. Nothing is issued
    /// here: the `checkout.session.completed` webhook does that.
    pub async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutStarted, ProviderError> {
        let price = request
            .price_id
            .clone()
            .ok_or_else(|| ProviderError::Unsupported("this offer has no Stripe price".into()))?;
        let form = &request.form;
        let plan_id = request.plan_id.to_string();
        let quantity = request.quantity.to_string();
        let mut params: Vec<(&str, String)> = vec![
            ("mode", request.mode.as_str().into()),
            ("line_items[0][price]", price),
            ("line_items[0][quantity]", quantity.clone()),
            // Stripe puts the session id where the template says {CHECKOUT_SESSION_ID}.
            (
                "success_url",
                format!("{}/done?session={{CHECKOUT_SESSION_ID}}", request.form_url),
            ),
            ("cancel_url", request.form_url.clone()),
            ("customer_email", request.buyer_email.clone()),
            ("client_reference_id", form.clone()),
            ("metadata[keyturn_form]", form.clone()),
            ("metadata[keyturn_plan_id]", plan_id.clone()),
            ("metadata[keyturn_quantity]", quantity),
            ("metadata[buyer_name]", request.buyer_name.clone()),
        ];
        if request.mode == OfferMode::Subscription {
            params.push(("subscription_data[metadata][keyturn_plan_id]", plan_id));
        }
        let url = format!("{}/v1/checkout/sessions", self.base);
        let body = self.send(self.http.post(url).form(&params)).await?;
        match (body["id"].as_str(), body["url"].as_str()) {
            (Some(id), Some(url)) => Ok(CheckoutStarted {
                session_id: id.to_owned(),
                redirect_url: url.to_owned(),
                // Stripe charges the price of the session Keyturn created, whatever the buyer does.
                expected: None,
            }),
            _ => Err(ApiError::Reply("a checkout session without id or url".into()).into()),
        }
    }

    /// Opens a Billing Portal session where `customer` manages their subscriptions and payment
    /// methods, returning to `return_url`; the page's URL. One session per call: Stripe's are
    /// short-lived and single-purpose.
    pub async fn billing_portal(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<String, ProviderError> {
        let url = format!("{}/v1/billing_portal/sessions", self.base);
        let params = [("customer", customer), ("return_url", return_url)];
        let body = self.send(self.http.post(url).form(&params)).await?;
        match body["url"].as_str() {
            Some(url) if !url.is_empty() => Ok(url.to_owned()),
            _ => Err(ApiError::Reply("a billing portal session without url".into()).into()),
        }
    }

    /// Events created at or after `since`, translated, oldest first; `at` is now.
    pub async fn events_since(
        &self,
        since: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<Vec<EventEnvelope>, ProviderError> {
        let mut events = self.fetch_events(since.map(|t| t.timestamp())).await?;
        events.sort_by_key(|(e, _)| e.created);
        Ok(events
            .iter()
            .map(|(event, payload)| super::envelope(event, payload, at))
            .collect())
    }

    /// Events created at or after `since` (Unix seconds), each with its JSON text.
    async fn fetch_events(
        &self,
        since: Option<i64>,
    ) -> Result<Vec<(StripeEvent, String)>, ApiError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit", "100".to_owned())];
            if let Some(t) = since {
                query.push(("created[gte]", t.to_string()));
            }
            if let Some(a) = &after {
                query.push(("starting_after", a.clone()));
            }
            let page = self.get("/v1/events", &query).await?;
            let data = page["data"]
                .as_array()
                .ok_or_else(|| ApiError::Reply("no data in the event list".into()))?;
            for v in data {
                let event = StripeEvent::from_value(v).map_err(ApiError::Reply)?;
                out.push((event, v.to_string()));
            }
            after = out.last().map(|(e, _)| e.id.clone());
            if !page["has_more"].as_bool().unwrap_or(false) || data.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// An object by id from `/v1/<kind>/<id>`; `None` when there is none (a 404, or a server
    /// without that kind of object answering with something other than JSON). Ids that could
    /// change the path are never sent.
    pub(crate) async fn object(&self, kind: &str, id: &str) -> Result<Option<Value>, ApiError> {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Ok(None);
        }
        match self.get(&format!("/v1/{kind}/{id}"), &[]).await {
            Ok(v) => Ok(Some(v)),
            Err(ApiError::Status { status: 404, .. }) | Err(ApiError::Reply(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The price/plan/product ids and the total quantity of a checkout session's line items.
    pub async fn line_items(&self, session: &str) -> Result<LineItems, ProviderError> {
        let page = self
            .get(
                &format!("/v1/checkout/sessions/{session}/line_items"),
                &[("limit", "100".to_owned())],
            )
            .await?;
        let mut ids = Vec::new();
        let mut quantity = 0;
        for item in page["data"].as_array().into_iter().flatten() {
            for id in [
                item["price"]["id"].as_str(),
                item["price"]["product"].as_str(),
                item["price"]["product"]["id"].as_str(),
            ]
            .into_iter()
            .flatten()
            {
                if !ids.iter().any(|i: &String| i == id) {
                    ids.push(id.to_owned());
                }
            }
            quantity += item["quantity"].as_i64().unwrap_or(1);
        }
        Ok(LineItems {
            provider_ids: ids,
            quantity,
        })
    }
}
