//! License URLs: a store that can only call a URL after a sale (SendOwl, DPD, …) gets the new
//! key(s) as the answer. A call is one more provider event: the app verifies the URL's secret,
//! the adapter translates the call, and it goes through the payment pipeline keyed by the URL and
//! the store's order id, so a repeated call for the same order returns the same keys and never
//! issues a second license.

use keyturn_core::names::display_name;
use keyturn_core::payment::{LicenseUrl, LicenseUrlParams, ObjectKind, PaymentEvent};
use keyturn_core::provider::EventEnvelope;
use keyturn_core::{Permission, TokenHash, TokenSecret};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::Entity;
use crate::{now, App, AppError, Principal, Result};

#[derive(Debug, Clone, Default)]
pub struct NewLicenseUrl {
    pub plan_id: i64,
    pub name: String,
    /// `sendowl`, `dpd` or `generic`: the parameter names the store sends by default.
    pub store: String,
    pub order_id_param: Option<String>,
    pub name_param: Option<String>,
    pub email_param: Option<String>,
    pub quantity_param: Option<String>,
    pub item_param: Option<String>,
    pub email_buyer: bool,
}

/// Changes to a license URL. Its store stays (it names the URL's orders), and so does its
/// secret, which changes only by rotation.
#[derive(Debug, Clone, Default)]
pub struct LicenseUrlPatch {
    pub name: Option<String>,
    /// Sales from now on issue this plan's licenses; earlier orders keep theirs.
    pub plan_id: Option<i64>,
    pub order_id_param: Option<String>,
    pub name_param: Option<String>,
    pub email_param: Option<String>,
    pub quantity_param: Option<String>,
    pub item_param: Option<String>,
    pub email_buyer: Option<bool>,
}

/// The secret is returned only here and on rotation; the server keeps its hash.
#[derive(Debug, Clone)]
pub struct LicenseUrlSecret {
    pub url: LicenseUrl,
    pub path: String,
}

fn param_name(field: &'static str, given: Option<String>, default: String) -> Result<String> {
    let name = given.unwrap_or(default);
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_graphic()) {
        return Err(AppError::invalid(field, "must be a parameter name"));
    }
    Ok(name.to_owned())
}

/// Two fields read from one parameter could never both be right (an order id taken for a
/// quantity): a URL like that would refuse or misread every sale.
fn check_params(params: &LicenseUrlParams) -> Result<()> {
    let names = [
        ("order_id_param", &params.order_id),
        ("name_param", &params.name),
        ("email_param", &params.email),
        ("quantity_param", &params.quantity),
        ("item_param", &params.item),
    ];
    for (i, (field, name)) in names.iter().enumerate() {
        if let Some((other, _)) = names[..i].iter().find(|(_, n)| n == name) {
            return Err(AppError::invalid(
                field,
                format!("{name:?} is already the {other}; give each parameter its own name"),
            ));
        }
    }
    Ok(())
}

fn path(id: i64, secret: &TokenSecret) -> String {
    format!("/l/{id}/{}", secret.expose())
}

impl App {
    pub async fn create_license_url(
        &self,
        principal: &Principal,
        input: NewLicenseUrl,
    ) -> Result<LicenseUrlSecret> {
        principal.require_unrestricted(Permission::PaymentsWrite)?;
        let name = display_name("name", &input.name)?;
        let defaults = LicenseUrlParams::defaults_for(&input.store)
            .ok_or_else(|| AppError::invalid("store", "must be sendowl, dpd or generic"))?;
        let params = LicenseUrlParams {
            order_id: param_name("order_id_param", input.order_id_param, defaults.order_id)?,
            name: param_name("name_param", input.name_param, defaults.name)?,
            email: param_name("email_param", input.email_param, defaults.email)?,
            quantity: param_name("quantity_param", input.quantity_param, defaults.quantity)?,
            item: param_name("item_param", input.item_param, defaults.item)?,
        };
        check_params(&params)?;
        let mut session = self.store.write().await?;
        session
            .plan(input.plan_id)
            .await?
            .ok_or(AppError::invalid("plan_id", "no such plan"))?;
        let secret = TokenSecret::generate();
        let url = session
            .insert_license_url(
                input.plan_id,
                &name,
                &input.store,
                &params,
                secret.hash().as_str(),
                input.email_buyer,
                now(),
            )
            .await?;
        self.audit_setup(
            &mut session,
            principal,
            "license_url_created",
            json!({"license_url_id": url.id, "plan_id": url.plan_id, "name": url.name, "store": url.store}),
        )
        .await?;
        session.commit().await?;
        Ok(LicenseUrlSecret {
            path: path(url.id, &secret),
            url,
        })
    }

    pub async fn rotate_license_url(
        &self,
        principal: &Principal,
        id: i64,
    ) -> Result<LicenseUrlSecret> {
        principal.require_unrestricted(Permission::PaymentsWrite)?;
        let secret = TokenSecret::generate();
        let mut session = self.store.write().await?;
        if !session
            .rotate_license_url(id, secret.hash().as_str(), now())
            .await?
        {
            return Err(AppError::NotFound(Entity::LicenseUrl));
        }
        let (url, _) = session
            .license_url(id)
            .await?
            .ok_or(AppError::NotFound(Entity::LicenseUrl))?;
        self.audit_setup(
            &mut session,
            principal,
            "license_url_rotated",
            json!({"license_url_id": id, "name": url.name}),
        )
        .await?;
        session.commit().await?;
        Ok(LicenseUrlSecret {
            path: path(id, &secret),
            url,
        })
    }

    /// Changes a license URL's name, plan, parameter names or mail setting.
    pub async fn update_license_url(
        &self,
        principal: &Principal,
        id: i64,
        patch: LicenseUrlPatch,
    ) -> Result<LicenseUrl> {
        principal.require_unrestricted(Permission::PaymentsWrite)?;
        let mut session = self.store.write().await?;
        let (mut url, _) = session
            .license_url(id)
            .await?
            .ok_or(AppError::NotFound(Entity::LicenseUrl))?;
        if let Some(name) = patch.name {
            url.name = display_name("name", &name)?;
        }
        if let Some(plan_id) = patch.plan_id {
            session
                .plan(plan_id)
                .await?
                .ok_or(AppError::invalid("plan_id", "no such plan"))?;
            url.plan_id = plan_id;
        }
        let p = url.params.clone();
        url.params = LicenseUrlParams {
            order_id: param_name("order_id_param", patch.order_id_param, p.order_id)?,
            name: param_name("name_param", patch.name_param, p.name)?,
            email: param_name("email_param", patch.email_param, p.email)?,
            quantity: param_name("quantity_param", patch.quantity_param, p.quantity)?,
            item: param_name("item_param", patch.item_param, p.item)?,
        };
        check_params(&url.params)?;
        url.email_buyer = patch.email_buyer.unwrap_or(url.email_buyer);
        session.update_license_url(&url).await?;
        self.audit_setup(
            &mut session,
            principal,
            "license_url_updated",
            json!({"license_url_id": id, "plan_id": url.plan_id, "name": url.name}),
        )
        .await?;
        session.commit().await?;
        Ok(url)
    }

    pub async fn license_urls(&self, principal: &Principal) -> Result<Vec<LicenseUrl>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        Ok(self.store.read().await?.license_urls().await?)
    }

    pub async fn delete_license_url(&self, principal: &Principal, id: i64) -> Result<()> {
        principal.require_unrestricted(Permission::PaymentsWrite)?;
        let mut session = self.store.write().await?;
        if !session.delete_license_url(id).await? {
            return Err(AppError::NotFound(Entity::LicenseUrl));
        }
        self.audit_setup(
            &mut session,
            principal,
            "license_url_deleted",
            json!({"license_url_id": id}),
        )
        .await?;
        session.commit().await?;
        Ok(())
    }

    /// The license URL a store called, when `secret` is its secret. An unknown id and a wrong
    /// secret are the same `NotFound`, so neither can be probed.
    pub async fn license_url_for_sale(&self, id: i64, secret: &str) -> Result<LicenseUrl> {
        let found = self.store.read().await?.license_url(id).await?;
        let (url, hash) = found.ok_or(AppError::NotFound(Entity::LicenseUrl))?;
        let presented = TokenHash::of(secret);
        if !bool::from(presented.as_str().as_bytes().ct_eq(hash.as_bytes())) {
            // The store calls with an old secret (after a rotation) or someone guesses: the
            // status page says so, without the secret either way.
            let refused = keyturn_core::provider::ProviderError::BadSignature(format!(
                "a call to license URL {id} had a wrong secret"
            ));
            self.note_refusal("license_url", &refused).await;
            return Err(AppError::NotFound(Entity::LicenseUrl));
        }
        Ok(url)
    }

    /// Applies a store's call to a license URL (verified by [`Self::license_url_for_sale`],
    /// translated by its adapter) and answers with the keys of the order, issued now or on an
    /// earlier call.
    pub async fn apply_license_url_sale(&self, sale: EventEnvelope) -> Result<Vec<String>> {
        let Some(PaymentEvent::Purchased { order, .. }) = &sale.event else {
            return Err(AppError::invalid("order", "the call reports no sale"));
        };
        let order = order.clone();
        let provider = sale.provider.clone();
        self.apply_provider_events(None, vec![sale]).await?;
        let mut session = self.store.read().await?;
        let payment = session
            .payment_for(&provider, ObjectKind::Order, &order)
            .await?
            .ok_or(AppError::NotFound(Entity::Order))?;
        let mut keys = Vec::with_capacity(payment.license_ids.len());
        for license_id in payment.license_ids {
            if let Some(l) = session.license(license_id).await? {
                keys.push(l.key);
            }
        }
        Ok(keys)
    }
}
