//! PayPal, for payment forms: Orders v2 (create, buyer approves at PayPal, capture on return) and
//! the `PAYMENT.CAPTURE.COMPLETED` webhook. Webhooks are verified the way PayPal documents for
//! REST apps: by asking PayPal (`POST /v1/notifications/verify-webhook-signature`,
//! developer.paypal.com/api/webhooks/v1/#verify-webhook-signature_post) with the transmission
//! headers, the webhook id and the event. The return and the webhook both apply the sale keyed
//! by the PayPal order id, so whichever comes first issues the key and the other changes nothing.
//!
//! What a sale buys is Keyturn's own record of the order it created, never the order's
//! `custom_id` (anyone can create an order with any custom_id); the pipeline issues keys only
//! when the capture took that record's amount in its currency.

use std::time::Duration;

use chrono::Utc;
use keyturn_app::{App, AppError, CheckoutPlan, EventEnvelope, EventOutcome};
use keyturn_core::payment::{
    format_hundredths, hundredths, Buyer, Checkout, Money, PaymentEvent, PlanRef,
};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

pub const PROVIDER: &str = "paypal";

fn transport(e: reqwest::Error) -> PaypalError {
    PaypalError::Transport(e.without_url())
}

/// A refusal from PayPal as its error's name and message (`error` and `error_description` for
/// the token endpoint).
fn refusal(status: u16, body: &Value) -> PaypalError {
    let said = |a: &str, b: &str| {
        [a, b]
            .iter()
            .filter_map(|k| body[*k].as_str())
            .collect::<Vec<_>>()
            .join(": ")
    };
    let mut message = said("name", "message");
    if message.is_empty() {
        message = said("error", "error_description");
    }
    if message.is_empty() {
        message = format!(
            "order status {}",
            body["status"].as_str().unwrap_or("unknown")
        );
    }
    PaypalError::Status(status, message)
}

#[derive(Debug, thiserror::Error)]
pub enum PaypalError {
    #[error("PayPal is not configured")]
    NotConfigured,
    /// Without the request's URL, which can name an order.
    #[error("cannot reach PayPal: {0}")]
    Transport(reqwest::Error),
    /// PayPal's name and message for the error, not its body (whose links name the order).
    #[error("PayPal answered {0}: {1}")]
    Status(u16, String),
    #[error("the webhook's signature does not verify")]
    BadSignature,
    #[error("the body is not a PayPal event: {0}")]
    Unparsable(String),
    #[error("this offer has no PayPal price")]
    NoPrice,
    #[error(transparent)]
    App(#[from] AppError),
}

#[derive(Clone)]
pub struct PaypalAdapter {
    http: reqwest::Client,
    base: String,
    client_id: String,
    secret: String,
    webhook_id: Option<String>,
}

impl std::fmt::Debug for PaypalAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaypalAdapter")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// `custom_id` of an order: what the buyer chose, for the vendor reading PayPal's records and
/// to tell Keyturn's orders from others. Keyturn never takes a plan or quantity from it.
fn custom_id(plan: &CheckoutPlan) -> String {
    format!(
        "keyturn:{}:{}:{}",
        plan.form.public_id, plan.offer.plan_id, plan.quantity
    )
}

fn parse_custom_id(s: &str) -> Option<(i64, i64)> {
    let mut parts = s.strip_prefix("keyturn:")?.rsplitn(3, ':');
    let quantity = parts.next()?.parse().ok()?;
    let plan = parts.next()?.parse().ok()?;
    Some((plan, quantity))
}

impl PaypalAdapter {
    pub fn new(base: &str, client_id: &str, secret: &str, webhook_id: Option<String>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client builds"),
            base: base.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            webhook_id,
        }
    }

    async fn token(&self) -> Result<String, PaypalError> {
        let r = self
            .http
            .post(format!("{}/v1/oauth2/token", self.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(transport)?;
        let status = r.status();
        let body: Value = r
            .json()
            .await
            .map_err(|e| PaypalError::Unparsable(e.without_url().to_string()))?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| refusal(status.as_u16(), &body))
    }

    async fn call(&self, path: &str, body: &Value) -> Result<(u16, Value), PaypalError> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token().await?)
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Creates an order for what the buyer chose; returns the URL where they approve it.
    pub async fn start_checkout(
        &self,
        app: &App,
        plan: &CheckoutPlan,
        public_base: &str,
    ) -> Result<String, PaypalError> {
        let (total, currency) = plan.paypal_total().ok_or(PaypalError::NoPrice)?;
        let base = public_base.trim_end_matches('/');
        let form = &plan.form.public_id;
        let order = json!({
            "intent": "CAPTURE",
            "purchase_units": [{
                "reference_id": form,
                "custom_id": custom_id(plan),
                "description": plan.offer.label,
                "amount": {"currency_code": currency, "value": format_hundredths(total)},
            }],
            "payment_source": {"paypal": {"experience_context": {
                "return_url": format!("{base}/buy/{form}/paypal/return"),
                "cancel_url": format!("{base}/buy/{form}"),
                "user_action": "PAY_NOW",
            }}},
        });
        let (status, body) = self.call("/v2/checkout/orders", &order).await?;
        if !(200..300).contains(&status) {
            return Err(refusal(status, &body));
        }
        let id = body["id"]
            .as_str()
            .ok_or_else(|| PaypalError::Unparsable("an order without id".into()))?;
        let approve = body["links"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| matches!(l["rel"].as_str(), Some("approve" | "payer-action")))
            .and_then(|l| l["href"].as_str())
            .ok_or_else(|| PaypalError::Unparsable("an order without approval link".into()))?;
        app.record_checkout(plan, PROVIDER, id).await?;
        Ok(approve.to_owned())
    }

    /// The buyer came back from PayPal: capture the order and issue the key. What was bought
    /// comes from Keyturn's own record of the checkout, so a capture PayPal reports as already
    /// done (the webhook was first, or the buyer reloaded) still resolves to the same sale.
    pub async fn complete_checkout(
        &self,
        app: &App,
        checkout: &Checkout,
    ) -> Result<EventOutcome, PaypalError> {
        let order_id = checkout.session_id.as_str();
        let (status, body) = self
            .call(
                &format!("/v2/checkout/orders/{order_id}/capture"),
                &json!({}),
            )
            .await?;
        let already = body["details"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["issue"] == "ORDER_ALREADY_CAPTURED");
        let body = if already {
            // Captured before (the webhook was first, or the buyer reloaded): what it took is on
            // the order.
            self.order(order_id).await?
        } else if (200..300).contains(&status) && body["status"] == "COMPLETED" {
            body
        } else {
            return Err(refusal(status, &body));
        };
        let capture = &body["purchase_units"][0]["payments"]["captures"][0];
        let event = Some(sale(order_id, capture, None));
        let envelope = EventEnvelope {
            provider: PROVIDER.into(),
            event_id: format!("return:{order_id}"),
            event_type: "checkout.return".into(),
            created: Utc::now(),
            payload: body.to_string(),
            notify_buyer: true,
        };
        Ok(app.apply_provider_event(&envelope, event).await?)
    }

    /// An order as PayPal has it now.
    async fn order(&self, order_id: &str) -> Result<Value, PaypalError> {
        let r = self
            .http
            .get(format!("{}/v2/checkout/orders/{order_id}", self.base))
            .bearer_auth(self.token().await?)
            .send()
            .await
            .map_err(transport)?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            return Err(refusal(status, &body));
        }
        Ok(body)
    }

    /// Verifies a webhook with PayPal and applies it.
    pub async fn receive(
        &self,
        app: &App,
        headers: &HeaderMap,
        body: &str,
    ) -> Result<EventOutcome, PaypalError> {
        let webhook_id = self
            .webhook_id
            .as_deref()
            .ok_or(PaypalError::NotConfigured)?;
        let event: Value =
            serde_json::from_str(body).map_err(|e| PaypalError::Unparsable(e.to_string()))?;
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let check = json!({
            "auth_algo": header("paypal-auth-algo"),
            "cert_url": header("paypal-cert-url"),
            "transmission_id": header("paypal-transmission-id"),
            "transmission_sig": header("paypal-transmission-sig"),
            "transmission_time": header("paypal-transmission-time"),
            "webhook_id": webhook_id,
            "webhook_event": event,
        });
        let (status, answer) = self
            .call("/v1/notifications/verify-webhook-signature", &check)
            .await?;
        if status != 200 || answer["verification_status"] != "SUCCESS" {
            return Err(PaypalError::BadSignature);
        }
        let id = event["id"]
            .as_str()
            .ok_or_else(|| PaypalError::Unparsable("no event id".into()))?;
        let kind = event["event_type"].as_str().unwrap_or_default();
        let resource = &event["resource"];
        let sale = match kind {
            // Only Keyturn's orders carry its custom_id; others are the vendor's own business.
            "PAYMENT.CAPTURE.COMPLETED" => {
                match resource["custom_id"].as_str().and_then(parse_custom_id) {
                    Some((plan, _)) => {
                        let order = resource["supplementary_data"]["related_ids"]["order_id"]
                            .as_str()
                            .ok_or_else(|| {
                                PaypalError::Unparsable("a capture without its order".into())
                            })?;
                        Some(sale(order, resource, Some(plan)))
                    }
                    None => None,
                }
            }
            _ => None,
        };
        let envelope = EventEnvelope {
            provider: PROVIDER.into(),
            event_id: id.to_owned(),
            event_type: kind.to_owned(),
            created: Utc::now(),
            payload: body.to_owned(),
            notify_buyer: true,
        };
        Ok(app.apply_provider_event(&envelope, sale).await?)
    }
}

/// A capture in neutral terms. What it buys comes from Keyturn's record of the order; the
/// custom_id's plan is at most a hint.
fn sale(order_id: &str, capture: &Value, hint: Option<i64>) -> PaymentEvent {
    PaymentEvent::Purchased {
        order: order_id.to_owned(),
        buyer: Buyer::default(),
        plan: PlanRef {
            provider_ids: Vec::new(),
            hint,
        },
        quantity: 1,
        money: Money {
            payment_intent: Some(order_id.to_owned()),
            charge: capture["id"].as_str().map(str::to_owned),
            amount: capture["amount"]["value"].as_str().and_then(hundredths),
            currency: capture["amount"]["currency_code"]
                .as_str()
                .map(str::to_owned),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_carry_plan_and_quantity() {
        assert_eq!(parse_custom_id("keyturn:abc:12:3"), Some((12, 3)));
        assert_eq!(parse_custom_id("keyturn:a:b:c:7:1"), Some((7, 1)));
        assert_eq!(parse_custom_id("someone-else"), None);
        assert_eq!(parse_custom_id("keyturn:x:y:z"), None);
    }

    #[test]
    fn a_capture_carries_its_amount_and_no_plan() {
        let capture = json!({"id": "CAP-1", "amount": {"currency_code": "EUR", "value": "98.00"}});
        match sale("O-1", &capture, Some(7)) {
            PaymentEvent::Purchased { plan, money, .. } => {
                assert!(plan.is_empty());
                assert_eq!(plan.hint, Some(7));
                assert_eq!(money.amount, Some(9800));
                assert_eq!(money.currency.as_deref(), Some("EUR"));
                assert_eq!(money.charge.as_deref(), Some("CAP-1"));
            }
            other => panic!("{other:?}"),
        }
    }
}
