//! Payment forms: hosted pages where a buyer picks a plan and pays. Keyturn only starts the
//! provider's checkout and shows its outcome; the license is issued by the provider's webhook
//! through the payment pipeline, the one path money takes.

use keyturn_core::names::display_name;
use keyturn_core::payment::{Checkout, Offer, PaymentForm};
use keyturn_core::{Email, Permission};

use crate::{now, App, AppError, Principal, Result};

/// The longest a buyer may order in one checkout.
pub const MAX_FORM_QUANTITY: i64 = 100;

#[derive(Debug, Clone, Default)]
pub struct NewPaymentForm {
    pub name: String,
    pub product_id: i64,
    pub offers: Vec<Offer>,
    pub success_text: Option<String>,
    pub email_subject: Option<String>,
    pub email_body: Option<String>,
}

/// What a buyer submitted on a form, validated.
#[derive(Debug, Clone)]
pub struct CheckoutPlan {
    pub form: PaymentForm,
    pub offer: Offer,
    pub quantity: i64,
    pub buyer_name: String,
    pub buyer_email: String,
}

/// The outcome page of a checkout.
#[derive(Debug, Clone)]
pub struct CheckoutOutcome {
    pub form: PaymentForm,
    pub checkout: Checkout,
    /// Empty while the provider's webhook has not issued the license yet.
    pub keys: Vec<String>,
}

impl App {
    pub async fn create_payment_form(
        &self,
        principal: &Principal,
        input: NewPaymentForm,
    ) -> Result<PaymentForm> {
        principal.require_for(Permission::PaymentsWrite, input.product_id)?;
        let name = display_name("name", &input.name)?;
        if input.offers.is_empty() || input.offers.len() > 20 {
            return Err(AppError::invalid("offers", "offer 1 to 20 plans"));
        }
        let mut s = self.store.write().await?;
        s.product(input.product_id)
            .await?
            .ok_or(AppError::invalid("product_id", "no such product"))?;
        for offer in &input.offers {
            // Another product's plan is answered like a missing one: the caller may be
            // limited to this product.
            s.plan(offer.plan_id)
                .await?
                .filter(|p| p.product_id == input.product_id)
                .ok_or_else(|| {
                    AppError::invalid(
                        "offers",
                        format!("product {} has no plan {}", input.product_id, offer.plan_id),
                    )
                })?;
            display_name("offers", &offer.label)?;
            display_name("offers", &offer.price)?;
            if offer.stripe_price_id.trim().is_empty()
                || offer.stripe_price_id.contains(char::is_whitespace)
            {
                return Err(AppError::invalid(
                    "offers",
                    "each offer needs its stripe_price_id",
                ));
            }
            if offer.mode != "payment" && offer.mode != "subscription" {
                return Err(AppError::invalid(
                    "offers",
                    "mode is payment or subscription",
                ));
            }
        }
        let success = input
            .success_text
            .unwrap_or_else(|| "Thank you for your purchase! Your license key is below; we have emailed it to you too.".into());
        if success.len() > 2000 {
            return Err(AppError::invalid(
                "success_text",
                "must be at most 2000 bytes",
            ));
        }
        let subject = input
            .email_subject
            .unwrap_or_else(|| crate::mail::DEFAULT_SUBJECT.into());
        let body = input
            .email_body
            .unwrap_or_else(|| crate::mail::DEFAULT_BODY.into());
        if subject.len() > 200 || subject.contains(['\r', '\n']) {
            return Err(AppError::invalid(
                "email_subject",
                "must be one line of at most 200 bytes",
            ));
        }
        if body.len() > 10_000 || !body.contains("{keys}") {
            return Err(AppError::invalid(
                "email_body",
                "must mention {keys} and be at most 10000 bytes",
            ));
        }
        let form = s
            .insert_form(
                &keyturn_core::token::public_id(),
                &name,
                input.product_id,
                &input.offers,
                &success,
                (&subject, &body),
                now(),
            )
            .await?;
        s.commit().await?;
        Ok(form)
    }

    pub async fn payment_forms(&self, principal: &Principal) -> Result<Vec<PaymentForm>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        Ok(self.store.read().await?.forms().await?)
    }

    /// A form as buyers see it; anyone with its URL may.
    pub async fn public_form(&self, public_id: &str) -> Result<PaymentForm> {
        self.store
            .read()
            .await?
            .form_by_public_id(public_id)
            .await?
            .ok_or(AppError::NotFound("payment form"))
    }

    /// Checks what a buyer submitted before any provider is asked to charge.
    pub async fn plan_checkout(
        &self,
        public_id: &str,
        offer: usize,
        quantity: i64,
        buyer_name: &str,
        buyer_email: &str,
    ) -> Result<CheckoutPlan> {
        let form = self.public_form(public_id).await?;
        let offer = form
            .offers
            .get(offer)
            .cloned()
            .ok_or(AppError::invalid("plan", "choose one of the plans offered"))?;
        if !(1..=MAX_FORM_QUANTITY).contains(&quantity) {
            return Err(AppError::invalid(
                "quantity",
                format!("must be 1 to {MAX_FORM_QUANTITY}"),
            ));
        }
        let buyer_name = display_name("name", buyer_name)?;
        let buyer_email = Email::parse(buyer_email)?.into_string();
        Ok(CheckoutPlan {
            form,
            offer,
            quantity,
            buyer_name,
            buyer_email,
        })
    }

    /// Remembers the provider's checkout session, so its outcome page can be shown to the buyer
    /// who started it, and to no one without its unguessable id.
    pub async fn record_checkout(
        &self,
        plan: &CheckoutPlan,
        provider: &str,
        session_id: &str,
    ) -> Result<()> {
        let mut s = self.store.write().await?;
        s.insert_checkout(&Checkout {
            session_id: session_id.to_owned(),
            form_id: plan.form.id,
            provider: provider.to_owned(),
            plan_id: plan.offer.plan_id,
            quantity: plan.quantity,
            buyer_name: plan.buyer_name.clone(),
            buyer_email: plan.buyer_email.clone(),
            created: now(),
        })
        .await?;
        Ok(s.commit().await?)
    }

    pub async fn checkout_outcome(
        &self,
        public_id: &str,
        session_id: &str,
    ) -> Result<CheckoutOutcome> {
        let form = self.public_form(public_id).await?;
        let mut s = self.store.read().await?;
        let checkout = s
            .checkout(session_id)
            .await?
            .filter(|c| c.form_id == form.id)
            .ok_or(AppError::NotFound("checkout"))?;
        let mut keys = Vec::new();
        if let Some(payment) = s
            .payment_for(&checkout.provider, "order", session_id)
            .await?
        {
            for id in payment.license_ids {
                if let Some(l) = s.license(id).await? {
                    keys.push(l.key);
                }
            }
        }
        Ok(CheckoutOutcome {
            form,
            checkout,
            keys,
        })
    }
}
