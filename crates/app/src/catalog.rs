//! Products and plans: what a vendor sells and the license templates that sell it.

use keyturn_core::names::display_name;
use keyturn_core::payment::{CancelRule, DunningRule, QuantityMode};
use keyturn_core::{
    BuyerRules, BuyerRulesPatch, Description, FeatureName, GraceDays, LeaseSeconds, MachineLimit,
    PeriodDays, Permission, Plan, Product, ProductSigner, ProviderIds, RsaSigner,
};
use keyturn_store::NewPlan;
use serde_json::json;

use crate::signers::{corrupt, ED25519, RSA2048};
use crate::Entity;
use crate::{now, App, AppError, Principal, Result};

#[derive(Debug, Clone, Default)]
pub struct NewProductInput {
    pub name: String,
    /// For people setting the product up; never shown to programs.
    pub description: String,
    pub features: Vec<String>,
    /// Show licenses' notes to programs (validation, activation, trial replies).
    pub public_notes: bool,
    /// The license metadata keys shown to programs.
    pub public_metadata: Vec<String>,
    /// On the Cryptolens API, answer expired licenses as blocked ([`Product::block_expired_licenses`]).
    pub block_expired_licenses: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces the feature list. Order matters to the Cryptolens API (F1..F8).
    pub features: Option<Vec<String>>,
    pub public_notes: Option<bool>,
    /// Replaces the list of public metadata keys.
    pub public_metadata: Option<Vec<String>>,
    pub block_expired_licenses: Option<bool>,
}

/// The most metadata keys a product may make public, and the longest key.
const MAX_PUBLIC_KEYS: usize = 64;
const MAX_KEY_CHARS: usize = 128;

/// Metadata keys to show to programs: each non-empty, printable and short; duplicates dropped.
fn public_metadata(keys: &[String]) -> Result<Vec<String>> {
    if keys.len() > MAX_PUBLIC_KEYS {
        return Err(AppError::invalid(
            "public_metadata",
            format!("must list at most {MAX_PUBLIC_KEYS} keys"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        if key.is_empty()
            || key.chars().count() > MAX_KEY_CHARS
            || key.chars().any(char::is_control)
        {
            return Err(AppError::invalid(
                "public_metadata",
                format!(
                    "{key:?} is not a metadata key (1 to {MAX_KEY_CHARS} printable characters)"
                ),
            ));
        }
        if !out.contains(key) {
            out.push(key.clone());
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Default)]
pub struct NewPlanInput {
    pub product_id: i64,
    pub name: String,
    pub period_days: Option<i64>,
    pub features: Vec<String>,
    pub max_machines: i64,
    pub floating_lease_seconds: Option<i64>,
    pub trial: bool,
    pub grace_days: Option<i64>,
    pub stripe_price_ids: Vec<String>,
    pub store_product_ids: Vec<String>,
    pub quantity_mode: QuantityMode,
    pub dunning: DunningRule,
    pub on_cancel: CancelRule,
    /// What buyers may do themselves in the portal; unset settings take their defaults.
    pub buyers: BuyerRulesPatch,
    pub expiry_reminder_days: Option<i64>,
}

/// Changes to a plan's name and payment settings. Its license shape (period, features, limits)
/// stays fixed, because licenses already issued from it were issued with that shape.
#[derive(Debug, Clone, Default)]
pub struct PlanPatch {
    pub name: Option<String>,
    pub grace_days: Option<i64>,
    pub stripe_price_ids: Option<Vec<String>>,
    pub store_product_ids: Option<Vec<String>>,
    pub quantity_mode: Option<QuantityMode>,
    pub dunning: Option<DunningRule>,
    pub on_cancel: Option<CancelRule>,
    pub buyers: BuyerRulesPatch,
    /// 0 turns the reminder off.
    pub expiry_reminder_days: Option<i64>,
}

/// Reminder days: 1 to 365, or none (0 in a change turns it off).
fn reminder_days(days: Option<i64>) -> Result<Option<i64>> {
    match days {
        None | Some(0) => Ok(None),
        Some(d @ 1..=365) => Ok(Some(d)),
        Some(_) => Err(AppError::invalid(
            "expiry_reminder_days",
            "must be 1 to 365 days (0: no reminder)",
        )),
    }
}

pub(crate) const DEFAULT_GRACE_DAYS: i64 = 5;

fn feature_list(features: &[String]) -> Result<Vec<String>> {
    Ok(FeatureName::parse_list(features)?
        .into_iter()
        .map(FeatureName::into_string)
        .collect())
}

/// Features a license or plan asks for, each of which the product must define.
pub(crate) fn product_features(product: &Product, wanted: &[String]) -> Result<Vec<String>> {
    let wanted = feature_list(wanted)?;
    if let Some(unknown) = wanted.iter().find(|f| !product.features.contains(f)) {
        return Err(AppError::invalid(
            "features",
            format!(
                "product {} has no feature {unknown:?} (it has: {})",
                product.id,
                product.features.join(", ")
            ),
        ));
    }
    Ok(wanted)
}

/// A new product, checked, with its signing keys drawn (which takes a while for RSA, so it is
/// done before a transaction opens).
pub(crate) struct PreparedProduct {
    product: Product,
    signer: ProductSigner,
    rsa: RsaSigner,
}

pub(crate) async fn prepare_product(input: NewProductInput) -> Result<PreparedProduct> {
    let name = display_name("name", &input.name)?;
    let features = feature_list(&input.features)?;
    let public_metadata = public_metadata(&input.public_metadata)?;
    let rsa = tokio::task::spawn_blocking(RsaSigner::generate)
        .await
        .map_err(corrupt)?
        .map_err(corrupt)?;
    Ok(PreparedProduct {
        product: Product {
            id: 0,
            name,
            description: Description::parse(&input.description)?.into_string(),
            features,
            public_notes: input.public_notes,
            public_metadata,
            block_expired_licenses: input.block_expired_licenses,
            created: now(),
        },
        signer: ProductSigner::generate(),
        rsa,
    })
}

impl App {
    /// Creates a product and its signing key together, so no product ever exists without one.
    pub async fn create_product(
        &self,
        principal: &Principal,
        input: NewProductInput,
    ) -> Result<Product> {
        principal.require_unrestricted(Permission::ProductsWrite)?;
        let prepared = prepare_product(input).await?;
        let mut session = self.store.write().await?;
        let product = self.insert_product(&mut session, prepared, now()).await?;
        self.audit_setup(
            &mut session,
            principal,
            "product_created",
            json!({"product_id": product.id, "name": product.name, "features": product.features}),
        )
        .await?;
        session.commit().await?;
        Ok(product)
    }

    /// Inserts a product prepared by [`prepare_product`] with its keys, in `session`.
    pub(crate) async fn insert_product(
        &self,
        session: &mut keyturn_store::Session,
        p: PreparedProduct,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Product> {
        let product = session.insert_product(&p.product, at).await?;
        session
            .insert_signing_key(
                product.id,
                ED25519,
                &self.store_key(product.id, ED25519, &p.signer.to_base64_seed()),
                &p.signer.public_key().to_base64(),
                at,
            )
            .await?;
        session
            .insert_signing_key(
                product.id,
                RSA2048,
                &self.store_key(product.id, RSA2048, &p.rsa.to_base64_pkcs8()),
                &p.rsa.public_key().to_xml(),
                at,
            )
            .await?;
        Ok(product)
    }

    pub async fn product(&self, principal: &Principal, id: i64) -> Result<Product> {
        principal.require_for(Permission::ProductsRead, id)?;
        self.store
            .read()
            .await?
            .product(id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))
    }

    pub async fn products(&self, principal: &Principal) -> Result<Vec<Product>> {
        let only = principal.require_listing(Permission::ProductsRead, None)?;
        Ok(self.store.read().await?.products(only).await?)
    }

    pub async fn update_product(
        &self,
        principal: &Principal,
        id: i64,
        patch: ProductPatch,
    ) -> Result<Product> {
        principal.require_for(Permission::ProductsWrite, id)?;
        let mut session = self.store.write().await?;
        let mut product = session
            .product(id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        if let Some(name) = patch.name {
            product.name = display_name("name", &name)?;
        }
        if let Some(description) = patch.description {
            product.description = Description::parse(&description)?.into_string();
        }
        if let Some(features) = patch.features {
            product.features = feature_list(&features)?;
        }
        if let Some(public) = patch.public_notes {
            product.public_notes = public;
        }
        if let Some(keys) = patch.public_metadata {
            product.public_metadata = public_metadata(&keys)?;
        }
        if let Some(block) = patch.block_expired_licenses {
            product.block_expired_licenses = block;
        }
        session.update_product(&product).await?;
        self.audit_setup(
            &mut session,
            principal,
            "product_updated",
            json!({"product_id": id, "name": product.name, "features": product.features}),
        )
        .await?;
        session.commit().await?;
        Ok(product)
    }

    pub async fn create_plan(&self, principal: &Principal, input: NewPlanInput) -> Result<Plan> {
        principal.require_for(Permission::PlansWrite, input.product_id)?;
        let name = display_name("name", &input.name)?;
        PeriodDays::parse_optional(input.period_days)?;
        MachineLimit::parse(input.max_machines)?;
        LeaseSeconds::parse_optional(input.floating_lease_seconds)?;
        if input.trial && input.period_days.is_none() {
            return Err(AppError::invalid(
                "period_days",
                "a trial plan needs a period: trials end",
            ));
        }
        let grace_days = GraceDays::parse(input.grace_days.unwrap_or(DEFAULT_GRACE_DAYS))?.get();
        let stripe_price_ids =
            ProviderIds::parse("stripe_price_ids", &input.stripe_price_ids)?.into_vec();
        let store_product_ids =
            ProviderIds::parse("store_product_ids", &input.store_product_ids)?.into_vec();
        let buyers = input.buyers.apply(BuyerRules::default())?;
        let mut session = self.store.write().await?;
        let product = session
            .product(input.product_id)
            .await?
            .ok_or(AppError::invalid("product_id", "no such product"))?;
        let features = product_features(&product, &input.features)?;
        let reminder = reminder_days(input.expiry_reminder_days)?;
        let mut plan = session
            .insert_plan(
                &NewPlan {
                    product_id: product.id,
                    name,
                    period_days: input.period_days,
                    features,
                    max_machines: input.max_machines,
                    floating_lease_seconds: input.floating_lease_seconds,
                    trial: input.trial,
                    grace_days,
                    stripe_price_ids,
                    store_product_ids,
                    quantity_mode: input.quantity_mode,
                    dunning: input.dunning,
                    on_cancel: input.on_cancel,
                    buyers,
                },
                now(),
            )
            .await?;
        if reminder.is_some() {
            session.set_plan_expiry_reminder(plan.id, reminder).await?;
            plan.expiry_reminder_days = reminder;
        }
        self.audit_setup(
            &mut session,
            principal,
            "plan_created",
            json!({"plan_id": plan.id, "product_id": plan.product_id, "name": plan.name}),
        )
        .await?;
        session.commit().await?;
        Ok(plan)
    }

    pub async fn plan(&self, principal: &Principal, id: i64) -> Result<Plan> {
        principal.require(Permission::PlansRead)?;
        let found = self.store.read().await?.plan(id).await?;
        principal.require_in_product(
            Permission::PlansRead,
            found.as_ref().map(|p| p.product_id),
            Entity::Plan,
        )?;
        found.ok_or(AppError::NotFound(Entity::Plan))
    }

    pub async fn update_plan(
        &self,
        principal: &Principal,
        id: i64,
        patch: PlanPatch,
    ) -> Result<Plan> {
        principal.require(Permission::PlansWrite)?;
        let mut session = self.store.write().await?;
        let found = session.plan(id).await?;
        principal.require_in_product(
            Permission::PlansWrite,
            found.as_ref().map(|p| p.product_id),
            Entity::Plan,
        )?;
        let mut plan = found.ok_or(AppError::NotFound(Entity::Plan))?;
        if let Some(name) = patch.name {
            plan.name = display_name("name", &name)?;
        }
        if let Some(days) = patch.grace_days {
            plan.grace_days = GraceDays::parse(days)?.get();
        }
        if let Some(ids) = patch.stripe_price_ids {
            plan.stripe_price_ids = ProviderIds::parse("stripe_price_ids", &ids)?.into_vec();
        }
        if let Some(ids) = patch.store_product_ids {
            plan.store_product_ids = ProviderIds::parse("store_product_ids", &ids)?.into_vec();
        }
        plan.quantity_mode = patch.quantity_mode.unwrap_or(plan.quantity_mode);
        plan.dunning = patch.dunning.unwrap_or(plan.dunning);
        plan.on_cancel = patch.on_cancel.unwrap_or(plan.on_cancel);
        plan.buyers = patch.buyers.apply(plan.buyers)?;
        session.update_plan(&plan).await?;
        if patch.expiry_reminder_days.is_some() {
            plan.expiry_reminder_days = reminder_days(patch.expiry_reminder_days)?;
            session
                .set_plan_expiry_reminder(plan.id, plan.expiry_reminder_days)
                .await?;
        }
        self.audit_setup(
            &mut session,
            principal,
            "plan_updated",
            json!({"plan_id": id, "product_id": plan.product_id, "name": plan.name}),
        )
        .await?;
        session.commit().await?;
        Ok(plan)
    }

    pub async fn plans(&self, principal: &Principal, product_id: Option<i64>) -> Result<Vec<Plan>> {
        let product_id = principal.require_listing(Permission::PlansRead, product_id)?;
        Ok(self.store.read().await?.plans(product_id).await?)
    }
}
