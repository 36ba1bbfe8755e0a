//! Where a buyer finds the provider's receipt for a payment, read from the webhook that last
//! changed it.
//!
//! Why from the stored webhook and not a column of its own: a payment row keeps the id of the
//! provider event that last changed it, and every inbound event is stored with its body, so the
//! receipt link is already on record for every payment, old ones included, without each
//! adapter carrying one more field through the pipeline. What the providers send:
//!
//! * Stripe: a charge has `receipt_url`; an invoice has `hosted_invoice_url` (the page that
//!   shows the paid invoice and its receipt). A Checkout Session carries none.
//! * Lemon Squeezy: an order has `data.attributes.urls.receipt`; a subscription invoice has
//!   `data.attributes.urls.invoice_url`.
//! * Paddle Billing, PayPal, FastSpring, Gumroad and the license URL stores: none in the
//!   webhooks Keyturn reads.
//!
//! Only `https` links are given back: the body was verified as the provider's, but a link a
//! buyer follows must never be a script or a plain-text page.

use serde_json::Value;

/// The receipt link in `payload`, the body of an event `provider` sent.
pub fn receipt_url(provider: &str, payload: &str) -> Option<String> {
    let body: Value = serde_json::from_str(payload).ok()?;
    let found = match provider {
        "stripe" => {
            let object = &body["data"]["object"];
            match object["object"].as_str() {
                Some("charge") => object["receipt_url"].as_str(),
                Some("invoice") => object["hosted_invoice_url"].as_str(),
                _ => None,
            }
        }
        "lemonsqueezy" => {
            let urls = &body["data"]["attributes"]["urls"];
            urls["receipt"]
                .as_str()
                .or_else(|| urls["invoice_url"].as_str())
        }
        _ => None,
    }?;
    is_https_link(found).then(|| found.to_owned())
}

/// An absolute `https` URL with a host and nothing a page could misread.
fn is_https_link(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty()
        && url.len() <= 2048
        && url
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '<' | '>' | '\\' | '`'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stripe(object: Value) -> String {
        json!({"id": "evt_1", "type": "x", "data": {"object": object}}).to_string()
    }

    #[test]
    fn stripe_charges_and_invoices_have_receipts() {
        let charge = stripe(
            json!({"object": "charge", "receipt_url": "https://pay.stripe.com/receipts/r_1"}),
        );
        assert_eq!(
            receipt_url("stripe", &charge).as_deref(),
            Some("https://pay.stripe.com/receipts/r_1")
        );
        let invoice = stripe(
            json!({"object": "invoice", "hosted_invoice_url": "https://invoice.stripe.com/i/acct/x"}),
        );
        assert_eq!(
            receipt_url("stripe", &invoice).as_deref(),
            Some("https://invoice.stripe.com/i/acct/x")
        );
        let session = stripe(json!({"object": "checkout.session", "url": "https://x.example"}));
        assert_eq!(receipt_url("stripe", &session), None);
    }

    #[test]
    fn lemon_squeezy_orders_have_receipts() {
        let order = json!({"meta": {"event_name": "order_created"},
                           "data": {"type": "orders", "attributes": {"urls": {"receipt": "https://app.lemonsqueezy.com/my-orders/abc"}}}})
        .to_string();
        assert_eq!(
            receipt_url("lemonsqueezy", &order).as_deref(),
            Some("https://app.lemonsqueezy.com/my-orders/abc")
        );
    }

    #[test]
    fn only_plain_https_links_are_given() {
        for bad in [
            "javascript:alert(1)",
            "http://pay.example/receipt",
            "https://",
            "https:///path",
            "https://pay.example/\"onmouseover=x",
            "https://pay.example/a b",
        ] {
            let charge = stripe(json!({"object": "charge", "receipt_url": bad}));
            assert_eq!(receipt_url("stripe", &charge), None, "{bad}");
        }
        assert_eq!(receipt_url("stripe", "not json"), None);
        assert_eq!(receipt_url("paddle", "{}"), None);
    }
}
