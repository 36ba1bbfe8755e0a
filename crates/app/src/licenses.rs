//! Issuing and managing licenses. Every change is written together with its audit entry.

use chrono::{DateTime, Utc};
use keyturn_core::names::display_name;
use keyturn_core::AuditAction;
use keyturn_core::{
    dates, AllowedMachines, Fingerprint, LeaseSeconds, License, LicenseEvent, LicenseKey,
    MachineLimit, Metadata, Notes, PeriodDays, Permission,
};
use keyturn_store::{LicenseFilter, NewLicense, Session};
use serde_json::{json, Value};

use crate::catalog::product_features;
use crate::webhooks::emit::Snapshot;
use crate::Entity;
use crate::{now, Actor, App, AppError, Page, PageRequest, Principal, Result};

/// The most licenses one request may create.
pub const MAX_QUANTITY: i64 = 1000;
/// The most keys one import may carry.
pub const MAX_IMPORT: usize = 10_000;

/// What a new license should be: from a plan, from explicit fields, or a plan with overrides.
#[derive(Debug, Clone, Default)]
pub struct LicenseSpec {
    pub product_id: Option<i64>,
    pub plan_id: Option<i64>,
    pub period_days: Option<i64>,
    pub expires: Option<DateTime<Utc>>,
    pub max_machines: Option<i64>,
    pub features: Option<Vec<String>>,
    pub floating_lease_seconds: Option<i64>,
    pub trial: Option<bool>,
    pub customer_id: Option<i64>,
    pub notes: Option<String>,
    pub metadata: Option<Value>,
    pub blocked: Option<bool>,
    pub quantity: Option<i64>,
    pub trial_activation: Option<bool>,
    pub allowed_machines: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy)]
pub enum Extension {
    Days(i64),
    Until(DateTime<Utc>),
}

/// Changes to a license's settings; fields left `None` stay as they are.
#[derive(Debug, Clone, Default)]
pub struct LicensePatch {
    pub max_machines: Option<i64>,
    /// `Some(None)` detaches the customer.
    pub customer_id: Option<Option<i64>>,
    pub notes: Option<String>,
    pub metadata: Option<Value>,
    /// `Some(None)` makes the license perpetual.
    pub expires: Option<Option<DateTime<Utc>>>,
    pub floating_lease_seconds: Option<Option<i64>>,
}

#[derive(Debug, Clone, Default)]
pub struct LicenseQuery {
    pub product_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub email: Option<String>,
    pub blocked: Option<bool>,
    pub expires_before: Option<DateTime<Utc>>,
    /// Trials only (`Some(true)`) or no trials.
    pub trial: Option<bool>,
    pub page: PageRequest,
}

/// A program asking for a trial of a product on one machine.
#[derive(Debug, Clone, Default)]
pub struct TrialRequest {
    pub product_id: i64,
    pub plan_id: Option<i64>,
    pub fingerprint: String,
    pub name: Option<String>,
    pub ip: Option<String>,
    /// When the product has no trial plan: issue a trial of this many days for one machine
    /// (the Cryptolens `CreateTrialKey` behaviour) instead of refusing.
    pub default_days: Option<i64>,
    /// Who asks; the licensee unless a token acts for it.
    pub actor: Option<Actor>,
}

/// The one place a license to insert is put together: what `plan` (when there is one)
/// describes for `product_id`, issued at `at`, and nothing else. Each use case then sets what it
/// decides; the key is drawn on insert.
pub(crate) fn new_license(
    product_id: i64,
    plan: Option<&keyturn_core::Plan>,
    at: DateTime<Utc>,
) -> NewLicense {
    let period_days = plan.and_then(|p| p.period_days);
    NewLicense {
        key: String::new(),
        product_id,
        plan_id: plan.map(|p| p.id),
        customer_id: None,
        expires: period_days.map(|d| dates::later_by_days(at, d)),
        period_days,
        features: plan.map(|p| p.features.clone()).unwrap_or_default(),
        max_machines: plan.map_or(0, |p| p.max_machines),
        floating_lease_seconds: plan.and_then(|p| p.floating_lease_seconds),
        trial: plan.is_some_and(|p| p.trial),
        notes: String::new(),
        blocked: false,
        metadata: json!({}),
        trial_activation: false,
        allowed_machines: Vec::new(),
    }
}

/// Inserts a license under a freshly drawn key, drawing again in the (astronomically unlikely)
/// case that the key is taken.
pub(crate) async fn insert_with_fresh_key(
    session: &mut Session,
    mut new: NewLicense,
    at: DateTime<Utc>,
) -> Result<License> {
    for _ in 0..8 {
        new.key = LicenseKey::generate().into_string();
        if let Some(license) = session.insert_license(&new, at).await? {
            return Ok(license);
        }
    }
    Err(AppError::Conflict(
        "could not draw an unused license key".into(),
    ))
}

/// Writes a license's audit entry, and the webhook events it announces, in the change's
/// transaction: every change of a license and its activations passes through here.
pub(crate) async fn record(
    session: &mut Session,
    license_id: i64,
    actor: &Actor,
    action: AuditAction,
    details: Value,
    at: DateTime<Utc>,
) -> Result<()> {
    record_with(session, license_id, actor, action, details, None, at).await
}

/// [`record`] for a change that removed what its events show (a deleted license or
/// activation), given as it was.
pub(crate) async fn record_with(
    session: &mut Session,
    license_id: i64,
    actor: &Actor,
    action: AuditAction,
    details: Value,
    snapshot: Option<Snapshot<'_>>,
    at: DateTime<Utc>,
) -> Result<()> {
    session
        .insert_license_event(license_id, &actor.label(), action.as_str(), &details, at)
        .await?;
    crate::webhooks::emit::audited(session, license_id, action, &details, snapshot, at).await
}

impl App {
    /// Resolves a spec against its plan and product into the license to insert. The spec's
    /// customer must be one the caller may see, unless it is `created`: made by this very
    /// transaction for these licenses.
    async fn resolve_spec(
        &self,
        session: &mut Session,
        principal: &Principal,
        spec: &LicenseSpec,
        created: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<NewLicense> {
        let plan = match spec.plan_id {
            Some(id) => {
                let found = session.plan(id).await?;
                principal
                    .require_in_product(
                        Permission::LicensesWrite,
                        found.as_ref().map(|p| p.product_id),
                        Entity::Plan,
                    )
                    .map_err(|e| match e {
                        AppError::NotFound(_) => AppError::invalid("plan_id", "no such plan"),
                        e => e,
                    })?;
                found
            }
            None => None,
        };
        let product_id = match (&plan, spec.product_id) {
            (Some(plan), Some(p)) if plan.product_id != p => {
                return Err(AppError::invalid(
                    "product_id",
                    format!("plan {} belongs to product {}", plan.id, plan.product_id),
                ))
            }
            (Some(plan), _) => plan.product_id,
            (None, Some(p)) => p,
            (None, None) => {
                return Err(AppError::invalid(
                    "product_id",
                    "give product_id or plan_id",
                ))
            }
        };
        principal.require_for(Permission::LicensesWrite, product_id)?;
        let product = session
            .product(product_id)
            .await?
            .ok_or(AppError::invalid("product_id", "no such product"))?;
        let period_days = spec
            .period_days
            .or(plan.as_ref().and_then(|p| p.period_days));
        let period_days = PeriodDays::parse_optional(period_days)?;
        let expires = match (spec.expires, period_days) {
            (Some(expires), _) => Some(dates::in_range("expires", expires)?),
            (None, Some(days)) => Some(dates::add_days("period_days", at, days)?),
            (None, None) => None,
        };
        let features = match (&spec.features, &plan) {
            (Some(f), _) => product_features(&product, f)?,
            (None, Some(plan)) => plan.features.clone(),
            (None, None) => Vec::new(),
        };
        let max_machines = spec
            .max_machines
            .or(plan.as_ref().map(|p| p.max_machines))
            .unwrap_or(0);
        let max_machines = MachineLimit::parse(max_machines)?.get();
        let floating_lease_seconds = spec
            .floating_lease_seconds
            .or(plan.as_ref().and_then(|p| p.floating_lease_seconds));
        let floating_lease_seconds = LeaseSeconds::parse_optional(floating_lease_seconds)?;
        let notes = Notes::parse(spec.notes.clone().unwrap_or_default())?.into_string();
        let metadata = Metadata::parse(spec.metadata.clone().unwrap_or_else(|| json!({})))?;
        if let Some(customer_id) = spec.customer_id.filter(|c| Some(*c) != created) {
            self.customer_in_reach(session, principal, customer_id)
                .await?
                .ok_or(AppError::invalid("customer_id", "no such customer"))?;
        }
        let mut new = new_license(product_id, plan.as_ref(), at);
        new.customer_id = spec.customer_id;
        new.expires = expires;
        new.period_days = period_days;
        new.features = features;
        new.max_machines = max_machines;
        new.floating_lease_seconds = floating_lease_seconds;
        new.trial = spec.trial.unwrap_or(new.trial);
        new.notes = notes;
        new.blocked = spec.blocked.unwrap_or(false);
        new.metadata = metadata.into_value();
        new.trial_activation = spec.trial_activation.unwrap_or(false);
        new.allowed_machines =
            AllowedMachines::parse(spec.allowed_machines.as_deref().unwrap_or_default())?
                .into_vec();
        Ok(new)
    }

    /// Creates `quantity` (default 1) licenses from one spec, all or none.
    pub async fn create_licenses(
        &self,
        principal: &Principal,
        spec: LicenseSpec,
    ) -> Result<Vec<License>> {
        let at = now();
        let mut session = self.store.write().await?;
        let created = self
            .insert_licenses(&mut session, principal, &spec, None, at)
            .await?;
        session.commit().await?;
        Ok(created)
    }

    /// The body of [`App::create_licenses`] inside a caller's transaction, so a use case can
    /// create licenses together with other rows (a new customer, `created`) all or none.
    pub(crate) async fn insert_licenses(
        &self,
        session: &mut Session,
        principal: &Principal,
        spec: &LicenseSpec,
        created: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<Vec<License>> {
        principal.require(Permission::LicensesWrite)?;
        let quantity = spec.quantity.unwrap_or(1);
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(AppError::invalid(
                "quantity",
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        let new = self
            .resolve_spec(session, principal, spec, created, at)
            .await?;
        let mut created = Vec::with_capacity(quantity as usize);
        for _ in 0..quantity {
            let license = insert_with_fresh_key(session, new.clone(), at).await?;
            record(
                session,
                license.id,
                &principal.actor,
                AuditAction::Created,
                json!({
                    "plan_id": license.plan_id,
                    "expires": license.expires,
                    "features": license.features,
                    "max_machines": license.max_machines,
                    "customer_id": license.customer_id,
                }),
                at,
            )
            .await?;
            created.push(license);
        }
        Ok(created)
    }

    /// Imports licenses whose keys were issued elsewhere (another licensing server, a store),
    /// all made from one spec, all or none. Returns how many were imported.
    pub async fn import_licenses(
        &self,
        principal: &Principal,
        spec: LicenseSpec,
        keys: Vec<String>,
    ) -> Result<u64> {
        principal.require(Permission::LicensesWrite)?;
        if spec.quantity.is_some() {
            return Err(AppError::invalid(
                "quantity",
                "an import makes one license per key",
            ));
        }
        if keys.is_empty() || keys.len() > MAX_IMPORT {
            return Err(AppError::invalid(
                "keys",
                format!("must hold between 1 and {MAX_IMPORT} keys"),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        let mut parsed = Vec::with_capacity(keys.len());
        for key in &keys {
            let key = LicenseKey::parse(key)?.into_string();
            if !seen.insert(key.clone()) {
                return Err(AppError::invalid(
                    "keys",
                    format!("{key} appears more than once"),
                ));
            }
            parsed.push(key);
        }
        let at = now();
        let mut session = self.store.write().await?;
        let new = self
            .resolve_spec(&mut session, principal, &spec, None, at)
            .await?;
        if let Some(taken) = session.existing_keys(&parsed).await?.first() {
            return Err(AppError::Conflict(format!(
                "a license with key {taken} exists already"
            )));
        }
        let details = json!({
            "plan_id": new.plan_id,
            "expires": new.expires,
            "features": new.features,
            "max_machines": new.max_machines,
            "customer_id": new.customer_id,
        });
        let imported = session
            .import_licenses(&new, &parsed, &principal.actor.label(), &details, at)
            .await?;
        crate::webhooks::emit::imported(&mut session, &imported, &details, at).await?;
        session.commit().await?;
        Ok(imported.len() as u64)
    }

    pub async fn license(&self, principal: &Principal, id: i64) -> Result<License> {
        principal.require(Permission::LicensesRead)?;
        let found = self.store.read().await?.license(id).await?;
        principal.require_license(Permission::LicensesRead, found.as_ref())?;
        found.ok_or(AppError::NotFound(Entity::License))
    }

    pub async fn license_by_key(&self, principal: &Principal, key: &str) -> Result<License> {
        principal.require(Permission::LicensesRead)?;
        let key = LicenseKey::parse(key)?;
        let found = self
            .store
            .read()
            .await?
            .license_by_key(key.as_str())
            .await?;
        principal.require_license(Permission::LicensesRead, found.as_ref())?;
        found.ok_or(AppError::NotFound(Entity::License))
    }

    pub async fn licenses(&self, principal: &Principal, q: LicenseQuery) -> Result<Page<License>> {
        let product_id = principal.require_listing(Permission::LicensesRead, q.product_id)?;
        let (after, limit) = q.page.resolve()?;
        let email = q
            .email
            .as_deref()
            .map(keyturn_core::Email::parse)
            .transpose()?
            .map(keyturn_core::Email::into_string);
        let rows = self
            .store
            .read()
            .await?
            .licenses(&LicenseFilter {
                product_id,
                customer_id: q.customer_id,
                email,
                blocked: q.blocked,
                expires_before: q.expires_before,
                trial: q.trial,
                after,
                limit: limit + 1,
                offset: 0,
            })
            .await?;
        Ok(Page::from_rows(rows, limit, |l| l.id))
    }

    /// Opens a write transaction holding license `id`, after checking the caller may `need` it.
    pub(crate) async fn locked(
        &self,
        principal: &Principal,
        id: i64,
        need: Permission,
    ) -> Result<(Session, License)> {
        principal.require(need)?;
        let mut session = self.store.write().await?;
        let found = session.lock_license(id).await?;
        principal.require_license(need, found.as_ref())?;
        let license = found.ok_or(AppError::NotFound(Entity::License))?;
        Ok((session, license))
    }

    /// Saves a changed license with its audit entry and commits.
    async fn save(
        &self,
        mut session: Session,
        principal: &Principal,
        license: &License,
        action: AuditAction,
        details: Value,
    ) -> Result<License> {
        let at = now();
        session.update_license(license, at).await?;
        record(
            &mut session,
            license.id,
            &principal.actor,
            action,
            details,
            at,
        )
        .await?;
        let saved = session
            .license(license.id)
            .await?
            .ok_or(AppError::NotFound(Entity::License))?;
        session.commit().await?;
        Ok(saved)
    }

    pub async fn extend_license(
        &self,
        principal: &Principal,
        id: i64,
        extension: Extension,
    ) -> Result<License> {
        let (session, mut license) = self
            .locked(principal, id, Permission::LicensesWrite)
            .await?;
        let from = license.expires;
        let to = match extension {
            Extension::Days(days) => {
                if !(1..=36_500).contains(&days) {
                    return Err(AppError::invalid("days", "must be between 1 and 36500"));
                }
                license.extended_by(days, now())?.ok_or_else(|| {
                    AppError::Conflict("the license is perpetual; it cannot be extended".into())
                })?
            }
            Extension::Until(until) => {
                let until = dates::in_range("until", until)?;
                if from.is_some_and(|f| until <= f) {
                    return Err(AppError::invalid(
                        "until",
                        "must be later than the current expiry (set expires to shorten a license)",
                    ));
                }
                until
            }
        };
        license.expires = Some(to);
        self.save(
            session,
            principal,
            &license,
            AuditAction::Extended,
            json!({"from": from, "to": to}),
        )
        .await
    }

    pub async fn set_blocked(
        &self,
        principal: &Principal,
        id: i64,
        blocked: bool,
    ) -> Result<License> {
        self.set_blocked_because(principal, id, blocked, BlockReasons::default())
            .await
    }

    /// Blocks or unblocks a license, with the reasons written to its audit log: the vendor's
    /// own, and the one its buyer sees in the customer portal while the block lasts.
    pub async fn set_blocked_because(
        &self,
        principal: &Principal,
        id: i64,
        blocked: bool,
        reasons: BlockReasons<'_>,
    ) -> Result<License> {
        let text = |field: &'static str, r: Option<&str>| {
            r.map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| display_name(field, r))
                .transpose()
        };
        let reason = text("reason", reasons.internal)?;
        let public_reason = if blocked {
            text("public_reason", reasons.public)?
        } else {
            None
        };
        let (session, mut license) = self
            .locked(principal, id, Permission::LicensesWrite)
            .await?;
        let was = license.blocked;
        license.blocked = blocked;
        let action = if blocked {
            AuditAction::Blocked
        } else {
            AuditAction::Unblocked
        };
        let mut details = json!({"was_blocked": was});
        if let Some(reason) = reason {
            details["reason"] = json!(reason);
        }
        if let Some(reason) = public_reason {
            details["public_reason"] = json!(reason);
        }
        self.save(session, principal, &license, action, details)
            .await
    }

    pub async fn add_feature(
        &self,
        principal: &Principal,
        id: i64,
        feature: &str,
    ) -> Result<License> {
        let (mut session, mut license) = self
            .locked(principal, id, Permission::LicensesWrite)
            .await?;
        let product = session
            .product(license.product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let feature = product_features(&product, &[feature.to_owned()])?.remove(0);
        if !license.has_feature(&feature) {
            license.features.push(feature.clone());
        }
        self.save(
            session,
            principal,
            &license,
            AuditAction::FeatureAdded,
            json!({"feature": feature}),
        )
        .await
    }

    pub async fn remove_feature(
        &self,
        principal: &Principal,
        id: i64,
        feature: &str,
    ) -> Result<License> {
        let (session, mut license) = self
            .locked(principal, id, Permission::LicensesWrite)
            .await?;
        let feature = keyturn_core::FeatureName::parse(feature)?.into_string();
        if !license.has_feature(&feature) {
            return Err(AppError::NotFound(Entity::LicenseFeature));
        }
        license.features.retain(|f| *f != feature);
        self.save(
            session,
            principal,
            &license,
            AuditAction::FeatureRemoved,
            json!({"feature": feature}),
        )
        .await
    }

    pub async fn update_license(
        &self,
        principal: &Principal,
        id: i64,
        patch: LicensePatch,
    ) -> Result<License> {
        let (mut session, mut license) = self
            .locked(principal, id, Permission::LicensesWrite)
            .await?;
        let before = license.clone();
        if let Some(n) = patch.max_machines {
            license.max_machines = MachineLimit::parse(n)?.get();
        }
        if let Some(customer_id) = patch.customer_id {
            if let Some(cid) = customer_id {
                self.customer_in_reach(&mut session, principal, cid)
                    .await?
                    .ok_or(AppError::invalid("customer_id", "no such customer"))?;
            }
            license.customer_id = customer_id;
        }
        if let Some(notes) = patch.notes {
            license.notes = Notes::parse(notes)?.into_string();
        }
        if let Some(metadata) = patch.metadata {
            license.metadata = Metadata::parse(metadata)?.into_value();
        }
        if let Some(expires) = patch.expires {
            license.expires = expires
                .map(|at| dates::in_range("expires", at))
                .transpose()?;
        }
        if let Some(lease) = patch.floating_lease_seconds {
            license.floating_lease_seconds = LeaseSeconds::parse_optional(lease)?;
        }
        let changes = diff(&before, &license);
        self.save(
            session,
            principal,
            &license,
            AuditAction::Updated,
            json!({"changes": changes}),
        )
        .await
    }

    pub async fn delete_license(&self, principal: &Principal, id: i64) -> Result<()> {
        let (mut session, license) = self
            .locked(principal, id, Permission::LicensesDelete)
            .await?;
        session.delete_license(id).await?;
        record_with(
            &mut session,
            id,
            &principal.actor,
            AuditAction::Deleted,
            json!({"key": license.key, "product_id": license.product_id}),
            Some(Snapshot::License(&license)),
            now(),
        )
        .await?;
        session.commit().await?;
        Ok(())
    }

    /// A license's audit log; readable after the license is deleted, by unrestricted tokens.
    pub async fn license_events(
        &self,
        principal: &Principal,
        id: i64,
        page: &PageRequest,
    ) -> Result<Page<LicenseEvent>> {
        principal.require(Permission::EventsRead)?;
        let (after, limit) = page.resolve()?;
        let mut session = self.store.read().await?;
        let found = session.license(id).await?;
        if found.is_some() || principal.restricted() {
            principal.require_license(Permission::EventsRead, found.as_ref())?;
        }
        let rows = session.license_events(id, after, limit + 1).await?;
        if rows.is_empty() && after.is_none() {
            return Err(AppError::NotFound(Entity::License));
        }
        Ok(Page::from_rows(rows, limit, |e| e.id))
    }

    /// Issues (or returns again) the trial license of one machine for a product, activated on
    /// that machine. A machine gets one trial per product, however often or concurrently it asks.
    pub async fn create_trial(&self, req: TrialRequest) -> Result<(License, bool)> {
        let fingerprint = Fingerprint::parse(&req.fingerprint)?;
        let name = crate::activations::machine_name(req.name.as_deref())?;
        let at = now();
        let mut session = self.store.write().await?;
        if let Some(existing) = session
            .trial_license(req.product_id, fingerprint.as_str())
            .await?
        {
            let license = session
                .license(existing)
                .await?
                .ok_or(AppError::NotFound(Entity::License))?;
            return Ok((license, false));
        }
        let plan = match req.plan_id {
            Some(id) => Some(
                session
                    .plan(id)
                    .await?
                    .filter(|p| p.product_id == req.product_id && p.trial)
                    .ok_or(AppError::invalid(
                        "plan_id",
                        "no trial plan with this id for this product",
                    ))?,
            ),
            None => session
                .plans(Some(req.product_id))
                .await?
                .into_iter()
                .find(|p| p.trial),
        };
        let new = match (&plan, req.default_days) {
            (Some(plan), _) => {
                let mut new = new_license(plan.product_id, Some(plan), at);
                new.trial = true;
                new
            }
            (None, Some(days)) => {
                PeriodDays::parse(days)?;
                session
                    .product(req.product_id)
                    .await?
                    .ok_or(AppError::NotFound(Entity::Product))?;
                let mut new = new_license(req.product_id, None, at);
                new.expires = Some(dates::add_days("days", at, days)?);
                new.period_days = Some(days);
                new.max_machines = 1;
                new.trial = true;
                new
            }
            (None, None) => return Err(AppError::NotFound(Entity::TrialPlan)),
        };
        let actor = req.actor.unwrap_or(Actor::Licensee);
        let new_plan_id = new.plan_id;
        let license = insert_with_fresh_key(&mut session, new, at).await?;
        if !session
            .insert_trial(req.product_id, fingerprint.as_str(), license.id, at)
            .await?
        {
            // Another request for the same machine won the race: hand out its trial.
            drop(session);
            let mut session = self.store.read().await?;
            let existing = session
                .trial_license(req.product_id, fingerprint.as_str())
                .await?
                .ok_or(AppError::NotFound(Entity::Trial))?;
            let license = session
                .license(existing)
                .await?
                .ok_or(AppError::NotFound(Entity::License))?;
            return Ok((license, false));
        }
        let activation = session
            .insert_activation(
                license.id,
                fingerprint.as_str(),
                name.as_deref(),
                req.ip.as_deref(),
                license.lease_until(at),
                at,
            )
            .await?;
        record(
            &mut session,
            license.id,
            &actor,
            AuditAction::Created,
            json!({"trial": true, "plan_id": new_plan_id, "fingerprint": fingerprint.as_str()}),
            at,
        )
        .await?;
        record(
            &mut session,
            license.id,
            &actor,
            AuditAction::Activated,
            json!({"activation_id": activation.id, "fingerprint": fingerprint.as_str()}),
            at,
        )
        .await?;
        session.commit().await?;
        Ok((license, true))
    }
}

/// Field-by-field changes between two states of a license, for the audit log.
fn diff(before: &License, after: &License) -> Value {
    let (Value::Object(a), Value::Object(b)) = (json!(before), json!(after)) else {
        return json!({});
    };
    let changes: serde_json::Map<String, Value> = b
        .into_iter()
        .filter(|(k, v)| a.get(k) != Some(v) && k != "updated")
        .map(|(k, v)| {
            let from = a.get(&k).cloned().unwrap_or(Value::Null);
            (k, json!({"from": from, "to": v}))
        })
        .collect();
    Value::Object(changes)
}

/// Why a license is blocked: `internal` stays in the audit log for the vendor's people,
/// `public` is shown to the buyer in the customer portal until the license is unblocked.
#[derive(Debug, Default, Clone, Copy)]
pub struct BlockReasons<'a> {
    pub internal: Option<&'a str>,
    pub public: Option<&'a str>,
}
