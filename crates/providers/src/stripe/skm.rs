//! Prices set up for Cryptolens (`skm_product_id` on the Stripe product, `skm` on the price or
//! plan): reads a purchased price's and its product's metadata from the Stripe API and answers
//! with the terms they give, for the app to make the price a plan (`App::adopt_skm_price`).

use keyturn_core::provider::ProviderError;
use keyturn_core::skm::{billing_days, SkmTerms};
use serde_json::Value;

use super::StripeApi;

fn metadata<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"][key].as_str()
}

impl StripeApi {
    /// The first of `ids` (a sale's price, plan and product ids) that is a price or plan set
    /// up the Cryptolens way, with the terms its metadata and its product's give; `None` when
    /// none is. Metadata that is malformed is an error naming the price.
    pub async fn cryptolens_terms(
        &self,
        ids: &[String],
    ) -> Result<Option<(String, SkmTerms)>, ProviderError> {
        for id in ids {
            let mut price = None;
            // Prices, and plans as accounts created before prices sell them.
            for kind in ["prices", "plans"] {
                if let Some(found) = self.object(kind, id).await? {
                    price = Some(found);
                    break;
                }
            }
            let Some(price) = price else {
                continue;
            };
            if let Some(terms) = self.terms(&price).await.map_err(|e| {
                ProviderError::Malformed(format!("the Cryptolens metadata of price {id}: {e}"))
            })? {
                return Ok(Some((id.clone(), terms)));
            }
        }
        Ok(None)
    }

    /// The terms a price (or plan) and its product describe, if set up the Cryptolens way.
    async fn terms(&self, price: &Value) -> Result<Option<SkmTerms>, String> {
        let product = match &price["product"] {
            Value::Object(_) => Some(price["product"].clone()),
            Value::String(id) => self
                .object("products", id)
                .await
                .map_err(|e| e.to_string())?,
            _ => None,
        };
        // Prices say how they recur under `recurring`; plans at the top level.
        let recurring = if price["recurring"].is_object() {
            &price["recurring"]
        } else {
            price
        };
        let days = recurring["interval"]
            .as_str()
            .and_then(|i| billing_days(i, recurring["interval_count"].as_i64().unwrap_or(1)));
        SkmTerms::parse(
            product.as_ref().and_then(|p| metadata(p, "skm_product_id")),
            metadata(price, "skm"),
            days,
        )
        .map_err(|e| e.to_string())
    }
}
