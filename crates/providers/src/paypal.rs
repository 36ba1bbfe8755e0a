//! PayPal, for payment forms: Orders v2 (create, buyer approves at PayPal, capture on return) and
//! the `PAYMENT.CAPTURE.COMPLETED` webhook. Webhooks are verified the way PayPal documents for
//! REST apps: by asking PayPal (`POST /v1/notifications/verify-webhook-signature`,
//! developer.paypal.com/api/webhooks/v1/#verify-webhook-signature_post) with the transmission
//! headers, the webhook id and the event. The return and the webhook both apply the sale keyed
//! by the PayPal order id, so whichever comes first issues the key and the other changes nothing.
//!
//! What a sale buys is Keyturn's own record of the order it created, never the order's
//! `custom_id` (anyone can create an order with any custom_id); the pipeline issues keys only
//! when the capture took that record's amount in its currency (the amount [`CheckoutStarted`]
//! names as expected).

use chrono::{DateTime, Utc};
use keyturn_core::payment::{format_hundredths, hundredths, Buyer, Money, PaymentEvent, PlanRef};
use keyturn_core::provider::{CheckoutRequest, CheckoutStarted};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::{EventEnvelope, ProviderError, Verified};

pub const PROVIDER: &str = "paypal";

/// Without the request's URL, which can name an order.
fn transport(e: reqwest::Error) -> ProviderError {
    ProviderError::Unavailable(format!("cannot reach PayPal: {}", e.without_url()))
}

fn malformed(m: impl std::fmt::Display) -> ProviderError {
    ProviderError::Malformed(format!("the body is not a PayPal event: {m}"))
}

/// A refusal from PayPal as its error's name and message (`error` and `error_description` for
/// the token endpoint), not its body (whose links name the order).
fn refusal(status: u16, body: &Value) -> ProviderError {
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
    ProviderError::Unavailable(format!("PayPal answered {status}: {message}"))
}

/// PayPal's REST API with the vendor's client credentials.
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
fn custom_id(request: &CheckoutRequest) -> String {
    format!(
        "keyturn:{}:{}:{}",
        request.form, request.plan_id, request.quantity
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
            http: crate::http_client(),
            base: base.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            webhook_id,
        }
    }

    async fn token(&self) -> Result<String, ProviderError> {
        let r = self
            .http
            .post(format!("{}/v1/oauth2/token", self.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(transport)?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| malformed(e.without_url()))?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| refusal(status.as_u16(), &body))
    }

    async fn call(&self, path: &str, body: &Value) -> Result<(u16, Value), ProviderError> {
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

    /// Creates an order for what the buyer chose, for the amount Keyturn states.
    pub async fn create_order(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutStarted, ProviderError> {
        let (total, currency) = request
            .total
            .clone()
            .ok_or_else(|| ProviderError::Unsupported("this offer has no PayPal price".into()))?;
        let order = json!({
            "intent": "CAPTURE",
            "purchase_units": [{
                "reference_id": request.form,
                "custom_id": custom_id(request),
                "description": request.label,
                "amount": {"currency_code": currency, "value": format_hundredths(total)},
            }],
            "payment_source": {"paypal": {"experience_context": {
                "return_url": format!("{}/paypal/return", request.form_url),
                "cancel_url": request.form_url,
                "user_action": "PAY_NOW",
            }}},
        });
        let (status, body) = self.call("/v2/checkout/orders", &order).await?;
        if !(200..300).contains(&status) {
            return Err(refusal(status, &body));
        }
        let id = body["id"]
            .as_str()
            .ok_or_else(|| malformed("an order without id"))?;
        let approve = body["links"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| matches!(l["rel"].as_str(), Some("approve" | "payer-action")))
            .and_then(|l| l["href"].as_str())
            .ok_or_else(|| malformed("an order without approval link"))?;
        Ok(CheckoutStarted {
            session_id: id.to_owned(),
            redirect_url: approve.to_owned(),
            expected: Some((total, currency)),
        })
    }

    /// Captures an order the buyer approved, at `at`, as the sale it is. A capture PayPal
    /// reports as already done (the webhook was first, or the buyer reloaded) is read from the
    /// order, so it still resolves to the same sale.
    pub async fn capture(
        &self,
        order_id: &str,
        at: DateTime<Utc>,
    ) -> Result<EventEnvelope, ProviderError> {
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
            self.order(order_id).await?
        } else if (200..300).contains(&status) && body["status"] == "COMPLETED" {
            body
        } else {
            return Err(refusal(status, &body));
        };
        let capture = &body["purchase_units"][0]["payments"]["captures"][0];
        Ok(EventEnvelope {
            event: Some(sale(order_id, capture, None)),
            ..crate::envelope(
                PROVIDER,
                format!("return:{order_id}"),
                "checkout.return".into(),
                at,
                &body.to_string(),
                true,
            )
        })
    }

    /// An order as PayPal has it now.
    async fn order(&self, order_id: &str) -> Result<Value, ProviderError> {
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

    /// Verifies a webhook delivery by asking PayPal, at `at`.
    pub async fn verify<'a>(
        &self,
        headers: &HeaderMap,
        body: &'a [u8],
        at: DateTime<Utc>,
    ) -> Result<Verified<'a>, ProviderError> {
        let webhook_id = self
            .webhook_id
            .as_deref()
            .ok_or_else(|| ProviderError::NotConfigured("PayPal is not configured".into()))?;
        let event: Value = serde_json::from_slice(body).map_err(malformed)?;
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
            return Err(ProviderError::BadSignature(
                "the webhook's signature does not verify".into(),
            ));
        }
        Ok(Verified::new(body, at))
    }
}

/// A verified webhook as the event it carries. Only Keyturn's orders carry its custom_id; a
/// capture of any other is the vendor's own business, recorded and ignored.
pub fn translate(verified: &Verified<'_>) -> Result<Vec<EventEnvelope>, ProviderError> {
    let text = verified.text()?;
    let event: Value = serde_json::from_str(text).map_err(malformed)?;
    let id = event["id"]
        .as_str()
        .ok_or_else(|| malformed("no event id"))?;
    let kind = event["event_type"].as_str().unwrap_or_default();
    let resource = &event["resource"];
    let sale = match kind {
        "PAYMENT.CAPTURE.COMPLETED" => {
            match resource["custom_id"].as_str().and_then(parse_custom_id) {
                Some((plan, _)) => {
                    let order = resource["supplementary_data"]["related_ids"]["order_id"]
                        .as_str()
                        .ok_or_else(|| malformed("a capture without its order"))?;
                    Some(sale(order, resource, Some(plan)))
                }
                None => None,
            }
        }
        _ => None,
    };
    Ok(vec![EventEnvelope {
        event: sale,
        ..crate::envelope(
            PROVIDER,
            id.to_owned(),
            kind.to_owned(),
            verified.at(),
            text,
            true,
        )
    }])
}

/// A capture in neutral terms. What it buys comes from Keyturn's record of the order; the
/// custom_id's plan is at most a hint.
fn sale(order_id: &str, capture: &Value, hint: Option<i64>) -> PaymentEvent {
    PaymentEvent::Purchased {
        order: order_id.to_owned(),
        buyer: Buyer::default(),
        plan: PlanRef {
            hint,
            ..PlanRef::default()
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

    fn capture_webhook(custom_id: &str) -> String {
        json!({"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource_type": "capture",
               "resource": {"id": "CAP-1", "status": "COMPLETED", "custom_id": custom_id,
                            "amount": {"currency_code": "EUR", "value": "49.00"},
                            "supplementary_data": {"related_ids": {"order_id": "O-1"}}}})
        .to_string()
    }

    #[test]
    fn a_capture_of_keyturns_order_is_its_sale_and_others_are_ignored() {
        let body = capture_webhook("keyturn:form1:7:1");
        let at = Utc::now();
        let e = translate(&Verified::new(body.as_bytes(), at))
            .unwrap()
            .remove(0);
        assert_eq!(
            (e.provider.as_str(), e.event_id.as_str()),
            ("paypal", "WH-1")
        );
        assert_eq!(e.created, at);
        assert!(e.notify_buyer);
        match e.event {
            Some(PaymentEvent::Purchased {
                order, plan, money, ..
            }) => {
                assert_eq!(order, "O-1");
                assert_eq!(plan.hint, Some(7), "custom_id is a hint");
                assert!(plan.is_empty());
                assert_eq!(money.amount, Some(4900));
            }
            other => panic!("{other:?}"),
        }
        let foreign = capture_webhook("someone-else");
        let e = translate(&Verified::new(foreign.as_bytes(), at))
            .unwrap()
            .remove(0);
        assert_eq!(e.event, None);
        assert!(matches!(
            translate(&Verified::new(b"[]", at)),
            Err(ProviderError::Malformed(_))
        ));
    }

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
