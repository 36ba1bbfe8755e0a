//! Payment forms as the vendor manages them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use keyturn_app::{NewPaymentForm, PaymentSetup};
use keyturn_core::payment::{Offer, PaymentForm};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::extract::Auth;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/payment-forms", get(list).post(create))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormBody {
    name: String,
    product_id: i64,
    offers: Vec<Offer>,
    description: Option<String>,
    tax_note: Option<String>,
    success_text: Option<String>,
    email_subject: Option<String>,
    email_body: Option<String>,
}

#[derive(Serialize)]
struct Shown {
    /// Where buyers go.
    path: String,
    #[serde(flatten)]
    form: PaymentForm,
}

fn shown(form: PaymentForm) -> Shown {
    Shown {
        path: format!("/buy/{}", form.public_id),
        form,
    }
}

async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    crate::extract::Json(b): crate::extract::Json<FormBody>,
) -> Result<(StatusCode, Json<Shown>), ApiError> {
    let form = state
        .app
        .create_payment_form(
            &principal,
            NewPaymentForm {
                name: b.name,
                product_id: b.product_id,
                offers: b.offers,
                description: b.description,
                tax_note: b.tax_note,
                success_text: b.success_text,
                email_subject: b.email_subject,
                email_body: b.email_body,
            },
            payment_setup(&state),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(shown(form))))
}

/// What this server is configured to take payments with.
pub(crate) fn payment_setup(state: &AppState) -> PaymentSetup {
    PaymentSetup {
        stripe: state
            .providers
            .stripe
            .as_ref()
            .is_some_and(|s| s.api().is_some()),
        paypal: state.providers.paypal.is_some(),
        public_url: state.settings.public_url.is_some(),
    }
}

async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> Result<Json<Value>, ApiError> {
    let forms: Vec<Shown> = state
        .app
        .payment_forms(&principal)
        .await?
        .into_iter()
        .map(shown)
        .collect();
    Ok(Json(json!({ "data": forms })))
}
