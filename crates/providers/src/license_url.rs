//! License URLs: a store that can only call a URL after a sale (SendOwl, DPD, …) calls
//! `/l/{id}/{secret}` with the sale's parameters. The app verifies the secret against its record
//! of the URL; this adapter translates the call into a sale of the plan the vendor configured for
//! the URL, keyed by the URL and the store's order id, so a repeated call changes nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keyturn_core::payment::{Buyer, LicenseUrl, Money, PaymentEvent, PlanRef};
use keyturn_core::DomainError;

use crate::{EventEnvelope, ProviderError};

pub const PROVIDER: &str = "license_url";
const MAX_QUANTITY: i64 = 100;

fn invalid(field: &'static str, message: impl Into<String>) -> ProviderError {
    ProviderError::Malformed(DomainError::new(field, message).to_string())
}

/// A verified call to `url` with `params` (query and form fields), at `at`.
pub fn translate(
    url: &LicenseUrl,
    params: &HashMap<String, String>,
    at: DateTime<Utc>,
) -> Result<EventEnvelope, ProviderError> {
    let get = |name: &str| {
        params
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let order = get(&url.params.order_id).ok_or_else(|| {
        invalid(
            "order",
            format!(
                "the parameter {:?} (order id) is missing",
                url.params.order_id
            ),
        )
    })?;
    if order.len() > 200 {
        return Err(invalid("order", "the order id is too long"));
    }
    let quantity = match get(&url.params.quantity) {
        None => 1,
        Some(q) => q
            .parse::<i64>()
            .ok()
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| invalid("quantity", format!("must be 1 to {MAX_QUANTITY}")))?,
    };
    // A store that calls once per copy tells the calls apart with the item parameter.
    let order_key = match get(&url.params.item) {
        Some(item) => format!("{}:{order}:{item}", url.id),
        None => format!("{}:{order}", url.id),
    };
    let payload = serde_json::to_string(params).expect("parameters serialise");
    Ok(EventEnvelope {
        event: Some(PaymentEvent::Purchased {
            order: order_key.clone(),
            buyer: Buyer {
                name: get(&url.params.name),
                email: get(&url.params.email),
                provider_customer_id: None,
            },
            // The plan is the one the vendor configured for this URL, never one the store names.
            plan: PlanRef {
                configured: Some(url.plan_id),
                ..PlanRef::default()
            },
            quantity,
            money: Money::default(),
        }),
        ..crate::envelope(
            PROVIDER,
            order_key,
            format!("{}.sale", url.store),
            at,
            &payload,
            url.email_buyer,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyturn_core::payment::LicenseUrlParams;

    fn url() -> LicenseUrl {
        LicenseUrl {
            id: 7,
            plan_id: 3,
            name: "SendOwl".into(),
            store: "sendowl".into(),
            params: LicenseUrlParams::defaults_for("sendowl").unwrap(),
            email_buyer: true,
            created: Utc::now(),
            rotated: Utc::now(),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_call_is_a_sale_of_the_configured_plan_keyed_by_url_and_order() {
        let sale = translate(
            &url(),
            &params(&[
                ("order_id", " SO-1 "),
                ("buyer_email", "ann@example.com"),
                ("quantity", "2"),
            ]),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(sale.provider, "license_url");
        assert_eq!(sale.event_id, "7:SO-1");
        assert_eq!(sale.event_type, "sendowl.sale");
        assert!(sale.notify_buyer);
        match sale.event {
            Some(PaymentEvent::Purchased {
                order,
                plan,
                quantity,
                buyer,
                ..
            }) => {
                assert_eq!(order, "7:SO-1");
                assert_eq!(plan.configured, Some(3));
                assert!(plan.is_empty(), "names nothing the store sold");
                assert_eq!(quantity, 2);
                assert_eq!(buyer.email.as_deref(), Some("ann@example.com"));
            }
            other => panic!("{other:?}"),
        }
        let per_copy = translate(
            &url(),
            &params(&[("order_id", "SO-1"), ("item", "2")]),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(per_copy.event_id, "7:SO-1:2");
    }

    #[test]
    fn the_order_id_and_a_quantity_in_range_are_required() {
        for (pairs, field) in [
            (&[("buyer_email", "a@b.c")][..], "order: "),
            (&[("order_id", "SO-1"), ("quantity", "0")][..], "quantity: "),
            (
                &[("order_id", "SO-1"), ("quantity", "101")][..],
                "quantity: ",
            ),
            (&[("order_id", "SO-1"), ("quantity", "x")][..], "quantity: "),
        ] {
            match translate(&url(), &params(pairs), Utc::now()) {
                Err(ProviderError::Malformed(m)) => assert!(m.starts_with(field), "{m}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        let long = "x".repeat(201);
        assert!(translate(&url(), &params(&[("order_id", &long)]), Utc::now()).is_err());
    }
}
