//! Payment forms: hosted pages where a buyer picks a plan and pays. Keyturn only starts the
//! provider's checkout and shows its outcome; the license is issued by the provider's webhook
//! through the payment pipeline, the one path money takes.

use keyturn_core::names::display_name;
use keyturn_core::payment::{hundredths, Checkout, ObjectKind, Offer, OfferMode, PaymentForm};
use keyturn_core::provider::{CheckoutRequest, CheckoutStarted, EventOutcome};
use keyturn_core::{Email, Permission, Plan};
use keyturn_store::Session;
use serde_json::json;

use crate::Entity;
use crate::{now, App, AppError, PaymentGateway, Principal, Result};

/// The longest a buyer may order in one checkout.
pub const MAX_FORM_QUANTITY: i64 = 100;

#[derive(Debug, Clone, Default)]
pub struct NewPaymentForm {
    pub name: String,
    pub product_id: i64,
    pub offers: Vec<Offer>,
    pub description: Option<String>,
    pub tax_note: Option<String>,
    pub success_text: Option<String>,
    pub email_subject: Option<String>,
    pub email_body: Option<String>,
}

/// Changes to a form; its product and its public id (in links already handed out) stay.
#[derive(Debug, Clone, Default)]
pub struct PaymentFormPatch {
    pub name: Option<String>,
    pub offers: Option<Vec<Offer>>,
    pub description: Option<String>,
    pub tax_note: Option<String>,
    pub success_text: Option<String>,
    pub email_subject: Option<String>,
    pub email_body: Option<String>,
}

/// What this server can take payments with, as configured: a form whose offers need more is
/// refused when created, with the setting that is missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct PaymentSetup {
    /// A Stripe API key: Keyturn can start Checkout Sessions.
    pub stripe: bool,
    /// PayPal client credentials.
    pub paypal: bool,
    /// KEYTURN_PUBLIC_URL: the address providers send buyers back to.
    pub public_url: bool,
}

/// An offer's PayPal price as hundredths of its currency.
fn paypal_price(offer: &Offer) -> Option<(i64, String)> {
    let unit = hundredths(offer.paypal_amount.as_deref()?)?;
    let currency = offer.currency.clone().unwrap_or_else(|| "USD".into());
    Some((unit, currency))
}

/// Checks that an offer can be paid: with Stripe, its price buys its plan and no other; with
/// PayPal, its amount is one PayPal takes.
fn check_offer(offer: &Offer, plan: &Plan, plans: &[Plan], setup: PaymentSetup) -> Result<()> {
    let stripe = !offer.stripe_price_id.is_empty();
    if !stripe && offer.paypal_amount.is_none() {
        return Err(AppError::invalid(
            "offers",
            format!(
                "plan {}'s offer needs a stripe_price_id or a paypal_amount",
                plan.id
            ),
        ));
    }
    if stripe {
        let price = &offer.stripe_price_id;
        if price.contains(char::is_whitespace) || price.len() > 255 {
            return Err(AppError::invalid(
                "offers",
                "a stripe_price_id has no spaces",
            ));
        }
        if !setup.stripe {
            return Err(AppError::invalid(
                "offers",
                "Stripe is not configured to start checkouts: set KEYTURN_STRIPE_API_KEY",
            ));
        }
        // Stripe's invoices name the price, not the form: it must lead back to this plan alone.
        if !plan.stripe_price_ids.contains(price) {
            return Err(AppError::invalid(
                "offers",
                format!(
                    "{price} is not in plan {}'s stripe_price_ids: add it there first",
                    plan.id
                ),
            ));
        }
        let sellers: Vec<i64> = plans
            .iter()
            .filter(|p| p.stripe_price_ids.contains(price))
            .map(|p| p.id)
            .collect();
        if sellers.len() > 1 {
            return Err(AppError::invalid(
                "offers",
                format!("{price} is sold by two plans ({sellers:?}): list it on one plan only"),
            ));
        }
    }
    if let Some(amount) = &offer.paypal_amount {
        if !setup.paypal {
            return Err(AppError::invalid(
                "offers",
                "PayPal is not configured: set KEYTURN_PAYPAL_CLIENT_ID and KEYTURN_PAYPAL_CLIENT_SECRET",
            ));
        }
        if hundredths(amount).is_none() {
            return Err(AppError::invalid(
                "offers",
                format!("paypal_amount {amount:?} is not an amount like 49.00"),
            ));
        }
        let currency = offer.currency.as_deref().unwrap_or("USD");
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(AppError::invalid(
                "offers",
                format!("currency {currency:?} is not a three-letter code like EUR"),
            ));
        }
        if offer.mode != OfferMode::Payment {
            return Err(AppError::invalid(
                "offers",
                "PayPal offers are one-time sales: mode payment",
            ));
        }
    }
    Ok(())
}

/// Checks a form's offers: 1 to 20, each for a plan of the form's product, with what the
/// buyer sees and a price this server can take.
async fn check_offers(
    s: &mut Session,
    product_id: i64,
    offers: &[Offer],
    setup: PaymentSetup,
) -> Result<()> {
    if offers.is_empty() || offers.len() > 20 {
        return Err(AppError::invalid("offers", "offer 1 to 20 plans"));
    }
    if !setup.public_url {
        return Err(AppError::invalid(
            "offers",
            "providers cannot send buyers back: set KEYTURN_PUBLIC_URL to the address buyers reach this server at",
        ));
    }
    s.product(product_id)
        .await?
        .ok_or(AppError::invalid("product_id", "no such product"))?;
    let plans = s.plans(None).await?;
    for offer in offers {
        // Another product's plan is answered like a missing one: the caller may be
        // limited to this product.
        let plan = plans
            .iter()
            .find(|p| p.id == offer.plan_id && p.product_id == product_id)
            .ok_or_else(|| {
                AppError::invalid(
                    "offers",
                    format!("product {product_id} has no plan {}", offer.plan_id),
                )
            })?;
        display_name("offers", &offer.label)?;
        display_name("offers", &offer.price)?;
        check_offer(offer, plan, &plans, setup)?;
    }
    Ok(())
}

/// Checks what a buy page says about what is sold and about taxes: plain text (shown escaped),
/// a description of at most 2000 bytes, a tax note on one line of at most 200.
fn check_page_texts(description: &str, tax_note: &str) -> Result<()> {
    if description.len() > 2000 {
        return Err(AppError::invalid(
            "description",
            "must be at most 2000 bytes",
        ));
    }
    if tax_note.len() > 200 || tax_note.contains(['\r', '\n']) {
        return Err(AppError::invalid(
            "tax_note",
            "must be one line of at most 200 bytes",
        ));
    }
    Ok(())
}

/// Checks the texts a form shows and mails.
fn check_texts(success: &str, subject: &str, body: &str) -> Result<()> {
    if success.len() > 2000 {
        return Err(AppError::invalid(
            "success_text",
            "must be at most 2000 bytes",
        ));
    }
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
    Ok(())
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

impl CheckoutPlan {
    /// What a provider that takes the amount Keyturn states (PayPal) must capture for this
    /// checkout: the offer's price times the quantity, in hundredths of its currency. Keyturn
    /// creates the order for it and issues keys only for it.
    pub fn stated_total(&self) -> Option<(i64, String)> {
        let (unit, currency) = paypal_price(&self.offer)?;
        Some((unit.checked_mul(self.quantity)?, currency))
    }
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
        setup: PaymentSetup,
    ) -> Result<PaymentForm> {
        principal.require_for(Permission::PaymentsWrite, input.product_id)?;
        let name = display_name("name", &input.name)?;
        let success = input
            .success_text
            .unwrap_or_else(|| "Thank you for your purchase! Your license key is below; we have emailed it to you too.".into());
        let subject = input
            .email_subject
            .unwrap_or_else(|| crate::mail::DEFAULT_SUBJECT.into());
        let body = input
            .email_body
            .unwrap_or_else(|| crate::mail::DEFAULT_BODY.into());
        let mut s = self.store.write().await?;
        check_offers(&mut s, input.product_id, &input.offers, setup).await?;
        check_texts(&success, &subject, &body)?;
        let description = input.description.unwrap_or_default().trim().to_owned();
        let tax_note = input.tax_note.unwrap_or_default().trim().to_owned();
        check_page_texts(&description, &tax_note)?;
        let mut form = s
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
        if !description.is_empty() || !tax_note.is_empty() {
            form.description = description;
            form.tax_note = tax_note;
            s.update_form(&form).await?;
        }
        self.audit_setup(
            &mut s,
            principal,
            "payment_form_created",
            json!({"form_id": form.id, "product_id": form.product_id, "name": form.name}),
        )
        .await?;
        s.commit().await?;
        Ok(form)
    }

    /// Changes a form. Its offers are checked again (as when it was created) only when they
    /// change, so renaming a form does not depend on today's provider settings.
    pub async fn update_payment_form(
        &self,
        principal: &Principal,
        id: i64,
        patch: PaymentFormPatch,
        setup: PaymentSetup,
    ) -> Result<PaymentForm> {
        principal.require(Permission::PaymentsWrite)?;
        let mut s = self.store.write().await?;
        let found = s.form(id).await?;
        principal.require_in_product(
            Permission::PaymentsWrite,
            found.as_ref().map(|f| f.product_id),
            Entity::PaymentForm,
        )?;
        let mut form = found.ok_or(AppError::NotFound(Entity::PaymentForm))?;
        if let Some(name) = patch.name {
            form.name = display_name("name", &name)?;
        }
        if let Some(offers) = patch.offers.filter(|o| *o != form.offers) {
            check_offers(&mut s, form.product_id, &offers, setup).await?;
            form.offers = offers;
        }
        if let Some(d) = patch.description {
            form.description = d.trim().to_owned();
        }
        if let Some(t) = patch.tax_note {
            form.tax_note = t.trim().to_owned();
        }
        check_page_texts(&form.description, &form.tax_note)?;
        form.success_text = patch.success_text.unwrap_or(form.success_text);
        form.email_subject = patch.email_subject.unwrap_or(form.email_subject);
        form.email_body = patch.email_body.unwrap_or(form.email_body);
        check_texts(&form.success_text, &form.email_subject, &form.email_body)?;
        s.update_form(&form).await?;
        self.audit_setup(
            &mut s,
            principal,
            "payment_form_updated",
            json!({"form_id": id, "product_id": form.product_id, "name": form.name}),
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
            .ok_or(AppError::NotFound(Entity::PaymentForm))
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

    /// Starts the provider's checkout for what a buyer chose on a form and returns the URL to
    /// send them to. Nothing is issued here: the provider's report of the sale does that.
    /// `public_base` is the address buyers reach this server at.
    pub async fn start_checkout(
        &self,
        gateway: &dyn PaymentGateway,
        plan: &CheckoutPlan,
        public_base: &str,
    ) -> Result<String> {
        let form = &plan.form.public_id;
        let offer = &plan.offer;
        let request = CheckoutRequest {
            form: form.clone(),
            form_url: format!("{}/buy/{form}", public_base.trim_end_matches('/')),
            plan_id: offer.plan_id,
            quantity: plan.quantity,
            label: offer.label.clone(),
            mode: offer.mode,
            price_id: Some(offer.stripe_price_id.clone()).filter(|p| !p.is_empty()),
            total: plan.stated_total(),
            buyer_name: plan.buyer_name.clone(),
            buyer_email: plan.buyer_email.clone(),
        };
        let started = gateway.create_checkout(&request).await?;
        self.record_checkout(plan, gateway.provider(), &started)
            .await?;
        Ok(started.redirect_url)
    }

    /// The buyer came back from approving a payment at the provider: take the money and apply
    /// the sale. What was bought comes from Keyturn's own record of the checkout, so a capture
    /// that was done before (the provider's report was first, or the buyer reloaded) resolves
    /// to the same sale and changes nothing.
    pub async fn complete_checkout(
        &self,
        gateway: &dyn PaymentGateway,
        checkout: &Checkout,
    ) -> Result<EventOutcome> {
        let sale = gateway.capture(&checkout.session_id, self.now()).await?;
        self.apply_provider_event(&sale).await
    }

    /// Remembers the provider's checkout session, so its outcome page can be shown to the buyer
    /// who started it, and to no one without its unguessable id; and what its capture must show
    /// where Keyturn checks that.
    async fn record_checkout(
        &self,
        plan: &CheckoutPlan,
        provider: &str,
        started: &CheckoutStarted,
    ) -> Result<()> {
        let mut s = self.store.write().await?;
        s.insert_checkout(&Checkout {
            session_id: started.session_id.clone(),
            form_id: plan.form.id,
            provider: provider.to_owned(),
            plan_id: plan.offer.plan_id,
            quantity: plan.quantity,
            buyer_name: plan.buyer_name.clone(),
            buyer_email: plan.buyer_email.clone(),
            amount: started.expected.as_ref().map(|(a, _)| *a),
            currency: started.expected.as_ref().map(|(_, c)| c.clone()),
            created: self.now(),
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
            .ok_or(AppError::NotFound(Entity::Checkout))?;
        let mut keys = Vec::new();
        if let Some(payment) = s
            .payment_for(&checkout.provider, ObjectKind::Order, session_id)
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
