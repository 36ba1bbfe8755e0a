//! The few Stripe API calls Keyturn makes. The base URL is configurable so any Stripe-compatible
//! server can stand in (a test server, localstripe).

use std::time::Duration;

use serde_json::Value;

use super::StripeEvent;

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
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client builds"),
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

    /// Creates a Checkout Session; returns its id and the URL to send the buyer to.
    pub async fn create_checkout_session(
        &self,
        form: &[(String, String)],
    ) -> Result<(String, String), ApiError> {
        let url = format!("{}/v1/checkout/sessions", self.base);
        let body = self.send(self.http.post(url).form(form)).await?;
        match (body["id"].as_str(), body["url"].as_str()) {
            (Some(id), Some(url)) => Ok((id.to_owned(), url.to_owned())),
            _ => Err(ApiError::Reply(
                "a checkout session without id or url".into(),
            )),
        }
    }

    /// Events created at or after `since` (Unix seconds), each with its JSON text.
    pub async fn events_since(
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

    /// The price/plan/product ids and the total quantity of a checkout session's line items.
    pub async fn checkout_line_items(&self, session: &str) -> Result<(Vec<String>, i64), ApiError> {
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
        Ok((ids, quantity))
    }
}
