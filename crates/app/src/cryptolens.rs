//! The use cases behind the Cryptolens Web API v3 (`/api/...`). Each checks the token's
//! Cryptolens method permission, product lock and key lock, then runs Keyturn's own use case
//! (activation under the same license lock, license creation, blocking…) so both APIs share one
//! set of rules. Wire formats live in the HTTP layer.

use keyturn_core::data_object::MAX_PER_OWNER;
use keyturn_core::key_search::{self, KeyOrder};
use keyturn_core::names::display_name;
use keyturn_core::validation::admit_known_machine;
use keyturn_core::ValidationCode;
use keyturn_core::{
    Activation, Customer, DataObject, DataOwner, DomainError, ExpiryRule, License, LicenseKey,
    Permission, Product, TokenHash, TokenSecret,
};
use keyturn_store::{KeySearch, LicenseFilter, UsageKind};

use crate::activations::ActivationRequest;
use crate::customers::{company, email, CustomerPatch};
use crate::licenses::{Extension, LicensePatch, LicenseSpec, TrialRequest};
use crate::Entity;
use crate::{now, App, AppError, NewCustomerInput, Principal, Result};

/// Cryptolens's page size for `GetKeys`.
pub const KEYS_PER_PAGE: i64 = 99;
/// The longest list a Cryptolens listing returns in one reply.
const MAX_LIST: i64 = 500;
/// Length of a `CreateTrialKey` trial when the product has no trial plan (Cryptolens's default).
pub const TRIAL_DAYS: i64 = 15;

/// A license with everything a Cryptolens reply shows about it.
#[derive(Debug, Clone)]
pub struct ClLicense {
    pub license: License,
    /// The product's features in order: F1..F8 are the first eight.
    pub product_features: Vec<String>,
    pub customer: Option<Customer>,
    /// Live activations, oldest first.
    pub machines: Vec<Activation>,
    /// The license's own data objects (not its machines'), in id order.
    pub data_objects: Vec<DataObject>,
    /// Whether the license counts as blocked when the view was made: blocked, or expired in a
    /// product that blocks expired licenses (what Cryptolens's hourly job would have blocked).
    pub blocked: bool,
    /// Cryptolens's `GlobalId`, unique across products: Keyturn's license id, which is.
    pub global_id: i64,
}

impl ClLicense {
    /// Whether the license has the product's feature number `n` (1-based, Cryptolens F1..F8).
    pub fn feature_slot(&self, n: usize) -> bool {
        n >= 1
            && self
                .product_features
                .get(n - 1)
                .is_some_and(|f| self.license.has_feature(f))
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClActivation {
    pub product_id: i64,
    pub key: String,
    pub machine_code: String,
    pub friendly_name: Option<String>,
    pub ip: Option<String>,
    /// Seconds a floating seat is held; 0 for node-locked activation.
    pub floating_interval: i64,
    pub max_overdraft: i64,
    /// `OSInfo`, recorded with the activation.
    pub os_info: Option<String>,
}

/// `CreateKey`'s parameters, already parsed.
#[derive(Debug, Clone, Default)]
pub struct ClNewKey {
    pub product_id: i64,
    /// Days; 0 for a license without an end.
    pub period: i64,
    pub features: [bool; 8],
    pub notes: String,
    pub block: bool,
    pub customer_id: Option<i64>,
    pub new_customer: bool,
    pub add_or_use_existing_customer: bool,
    pub customer: NewCustomerInput,
    pub trial_activation: bool,
    pub max_no_of_machines: i64,
    pub allowed_machines: Vec<String>,
    pub no_of_keys: i64,
}

#[derive(Debug, Clone)]
pub struct ClCreated {
    pub keys: Vec<License>,
    pub customer_id: Option<i64>,
}

/// A product as `GetProducts` shows it.
#[derive(Debug, Clone)]
pub struct ClProduct {
    pub product: Product,
    /// The product's own data objects (not its licenses'), in id order.
    pub data_objects: Vec<DataObject>,
}

/// One page of a product's keys.
#[derive(Debug, Clone)]
pub struct ClKeyPage {
    pub keys: Vec<ClLicense>,
    pub total: i64,
    pub page_count: i64,
}

/// A license change `ChangeCustomer` made; `false` when the customer did not exist and the
/// license was left without one (Cryptolens reports that in its message).
pub type CustomerFound = bool;

fn feature_names(product: &Product, slots: &[bool; 8]) -> Result<Vec<String>> {
    slots
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(i, _)| feature_of(product, i as i64 + 1))
        .collect()
}

/// The product feature that Cryptolens calls F`n`.
fn feature_of(product: &Product, n: i64) -> Result<String> {
    if !(1..=8).contains(&n) {
        return Err(AppError::invalid("feature", "must be between 1 and 8"));
    }
    product
        .features
        .get(n as usize - 1)
        .cloned()
        .ok_or_else(|| {
            AppError::invalid(
                "feature",
                format!(
                    "product {} defines {} features, so it has no F{n}",
                    product.id,
                    product.features.len()
                ),
            )
        })
}

impl App {
    /// Finds the license a key-method names: the method's permission and the product lock
    /// first, then the product, then the key within it, which must be within the token's reach
    /// (a key-locked token is refused any other key, found or not).
    async fn cl_lookup(
        &self,
        principal: &Principal,
        method: Permission,
        product_id: i64,
        key: &str,
    ) -> Result<License> {
        principal.require(method)?;
        principal.require_product(product_id)?;
        let key = LicenseKey::parse(key)?;
        let product = self.product_row(product_id).await?;
        if product.is_none() && principal.license_lock().is_none() {
            return Err(AppError::NotFound(Entity::Product));
        }
        let found = self
            .license_state(key.as_str())
            .await?
            .map(|s| s.license.clone())
            .filter(|l| l.product_id == product_id);
        principal.require_license(method, found.as_ref())?;
        found.ok_or(AppError::NotFound(Entity::License))
    }

    /// What an expired license of `product_id` may do on the Cryptolens API.
    async fn cl_expiry(&self, product_id: i64) -> Result<ExpiryRule> {
        let product = self
            .product_row(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        Ok(ExpiryRule::cryptolens(product.block_expired_licenses))
    }

    /// Refuses a license a program may not use on the Cryptolens API (Activate, GetKey,
    /// Deactivate): a blocked one, and an expired one when its product blocks expired licenses,
    /// both with Cryptolens's blocked-key answer. Other expired licenses are used as Cryptolens
    /// uses them: the program checks `Expires` itself.
    async fn cl_usable(&self, license: &License) -> Result<ExpiryRule> {
        let expiry = self.cl_expiry(license.product_id).await?;
        admit_known_machine(license, None, expiry, now()).map_err(AppError::Refused)?;
        Ok(expiry)
    }

    /// The reply view of a license as it is now.
    pub async fn cl_view(&self, license: License) -> Result<ClLicense> {
        let product = self
            .product_row(license.product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let blocked =
            ExpiryRule::cryptolens(product.block_expired_licenses).blocks(&license, now());
        let customer = match license.customer_id {
            Some(id) => self.customer_row(id).await?.map(|c| (*c).clone()),
            None => None,
        };
        let (machines, data_objects) = match self
            .license_state(&license.key)
            .await?
            .filter(|s| s.license.id == license.id)
        {
            Some(state) => (
                state.live(now()).into_owned(),
                self.license_data_objects(&state).await?,
            ),
            None => Default::default(),
        };
        Ok(ClLicense {
            global_id: license.id,
            license,
            product_features: product.features.clone(),
            customer,
            machines,
            data_objects,
            blocked,
        })
    }

    /// `Activate`: node-locked or floating, through the same locked activation as the native
    /// API. A key without a machine limit records no machine, as in Cryptolens.
    pub async fn cl_activate(&self, principal: &Principal, req: ClActivation) -> Result<ClLicense> {
        let license = self
            .cl_lookup(principal, Permission::ClActivate, req.product_id, &req.key)
            .await?;
        // Counted for the dashboard here when the native activation below is not reached.
        let usable = self.cl_usable(&license).await;
        if usable.is_err() {
            self.usage
                .note_activation(now(), Some(license.product_id), &usable);
        }
        let expiry = usable?;
        let floating = req.floating_interval > 0;
        if !license.machine_limited() && !floating {
            self.usage.note(
                now(),
                UsageKind::Activation,
                Some(license.product_id),
                ValidationCode::Valid,
            );
            return self.cl_view(license).await;
        }
        let outcome = self
            .activate(ActivationRequest {
                key: license.key,
                fingerprint: req.machine_code,
                name: req.friendly_name,
                ip: req.ip,
                product_id: Some(req.product_id),
                lease_seconds: floating.then_some(req.floating_interval),
                max_overdraft: req.max_overdraft,
                actor: Some(principal.actor.clone()),
                expiry,
                os_info: req.os_info,
            })
            .await?;
        self.cl_view(outcome.license).await
    }

    /// `GetKey`: reads only.
    pub async fn cl_get_key(
        &self,
        principal: &Principal,
        product_id: i64,
        key: &str,
    ) -> Result<ClLicense> {
        let license = self
            .cl_lookup(principal, Permission::ClGetKey, product_id, key)
            .await?;
        // GetKey is how Cryptolens programs validate: counted as a validation.
        let usable = self.cl_usable(&license).await;
        let code = match &usable {
            Ok(_) => Some(ValidationCode::Valid),
            Err(AppError::Refused(refusal)) => Some(refusal.code()),
            Err(_) => None,
        };
        if let Some(code) = code {
            self.usage
                .note(now(), UsageKind::Validation, Some(license.product_id), code);
        }
        usable?;
        self.cl_view(license).await
    }

    /// `Deactivate`. With `floating`, releases a floating seat and succeeds when there is none.
    pub async fn cl_deactivate(
        &self,
        principal: &Principal,
        product_id: i64,
        key: &str,
        machine_code: &str,
        floating: bool,
    ) -> Result<()> {
        let license = self
            .cl_lookup(principal, Permission::ClDeactivate, product_id, key)
            .await?;
        self.cl_usable(&license).await?;
        match self
            .deactivate_by(
                principal.actor.clone(),
                &license.key,
                machine_code,
                Some(product_id),
                floating,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(AppError::NotFound(Entity::Activation)) if floating => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `CreateKey`: one or more licenses, with an existing, new or reused customer, all or none.
    pub async fn cl_create_key(&self, principal: &Principal, req: ClNewKey) -> Result<ClCreated> {
        principal.require_method(Permission::ClCreateKey, Some(req.product_id))?;
        let wants_customer = req.new_customer || req.add_or_use_existing_customer;
        if wants_customer {
            principal.require(Permission::ClAddCustomer)?;
        }
        if req.period < 0 {
            return Err(AppError::invalid("period", "must not be negative"));
        }
        let at = now();
        let mut session = self.store.write().await?;
        let product = session
            .product(req.product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let features = feature_names(&product, &req.features)?;
        // The customer, and whether this call made it (then it has no license yet to show
        // that the token may see it).
        let (customer_id, created) = if wants_customer {
            let mail = email(req.customer.email.as_deref().filter(|e| !e.is_empty()))?;
            // Only a customer the token can see is reused; otherwise a new one is made.
            let existing = match (&mail, req.add_or_use_existing_customer) {
                (Some(mail), true) => session
                    .customers(Some(mail), principal.product_scope(), None, 1)
                    .await?
                    .into_iter()
                    .next(),
                _ => None,
            };
            match existing {
                Some(c) => (Some(c.id), None),
                None => {
                    let (name, mail, firm) = new_customer_fields(&req.customer)?;
                    let c = crate::customers::insert_customer(
                        &mut session,
                        &name,
                        mail.as_deref(),
                        firm.as_deref(),
                        at,
                    )
                    .await?;
                    (Some(c.id), Some(c.id))
                }
            }
        } else {
            match req.customer_id.filter(|id| *id != 0) {
                Some(id) => {
                    let c = self
                        .customer_in_reach(&mut session, principal, id)
                        .await?
                        .ok_or(AppError::NotFound(Entity::Customer))?;
                    (Some(c.id), None)
                }
                None => (None, None),
            }
        };
        let spec = LicenseSpec {
            product_id: Some(product.id),
            period_days: (req.period > 0).then_some(req.period),
            max_machines: Some(req.max_no_of_machines),
            features: Some(features),
            customer_id,
            notes: Some(req.notes),
            blocked: Some(req.block),
            quantity: Some(req.no_of_keys),
            trial_activation: Some(req.trial_activation),
            allowed_machines: Some(req.allowed_machines),
            ..Default::default()
        };
        let delegate = principal.acting_with(vec![Permission::LicensesWrite]);
        let keys = self
            .insert_licenses(&mut session, &delegate, &spec, created, at)
            .await?;
        session.commit().await?;
        Ok(ClCreated { keys, customer_id })
    }

    /// `CreateTrialKey`: the machine's trial of the product (its trial plan, or a 15-day trial
    /// for one machine), the same one however often it asks.
    pub async fn cl_create_trial_key(
        &self,
        principal: &Principal,
        product_id: i64,
        machine_code: &str,
        friendly_name: Option<String>,
        ip: Option<String>,
    ) -> Result<License> {
        principal.require_method(Permission::ClCreateTrialKey, Some(product_id))?;
        self.store
            .read()
            .await?
            .product(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let (license, _) = self
            .create_trial(TrialRequest {
                product_id,
                plan_id: None,
                fingerprint: machine_code.to_owned(),
                name: friendly_name,
                ip,
                default_days: Some(TRIAL_DAYS),
                actor: Some(principal.actor.clone()),
            })
            .await?;
        Ok(license)
    }

    /// `ExtendLicense`: days from the current expiry (or from now once expired); negative days
    /// shorten the license.
    pub async fn cl_extend(
        &self,
        principal: &Principal,
        product_id: i64,
        key: &str,
        days: i64,
    ) -> Result<License> {
        let license = self
            .cl_lookup(principal, Permission::ClExtendLicense, product_id, key)
            .await?;
        let delegate = principal.acting_with(vec![Permission::LicensesWrite]);
        match days {
            0 => Ok(license),
            d if d > 0 => {
                self.extend_license(&delegate, license.id, Extension::Days(d))
                    .await
            }
            d => {
                if d < -36_500 {
                    return Err(AppError::invalid("days", "must be at least -36500"));
                }
                let to = license.extended_by(d, now())?.ok_or_else(|| {
                    AppError::Conflict("the license is perpetual; it cannot be shortened".into())
                })?;
                self.update_license(
                    &delegate,
                    license.id,
                    LicensePatch {
                        expires: Some(Some(to)),
                        ..Default::default()
                    },
                )
                .await
            }
        }
    }

    /// `BlockKey` / `UnblockKey`.
    pub async fn cl_set_blocked(
        &self,
        principal: &Principal,
        product_id: i64,
        key: &str,
        blocked: bool,
    ) -> Result<License> {
        let method = if blocked {
            Permission::ClBlockKey
        } else {
            Permission::ClUnblockKey
        };
        let license = self.cl_lookup(principal, method, product_id, key).await?;
        let delegate = principal.acting_with(vec![Permission::LicensesWrite]);
        self.set_blocked(&delegate, license.id, blocked).await
    }

    /// `AddFeature` / `RemoveFeature` with Cryptolens's feature number 1..8.
    pub async fn cl_set_feature(
        &self,
        principal: &Principal,
        product_id: i64,
        key: &str,
        feature: i64,
        on: bool,
    ) -> Result<License> {
        let method = if on {
            Permission::ClAddFeature
        } else {
            Permission::ClRemoveFeature
        };
        let license = self.cl_lookup(principal, method, product_id, key).await?;
        let product = self
            .store
            .read()
            .await?
            .product(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let name = feature_of(&product, feature)?;
        let delegate = principal.acting_with(vec![Permission::LicensesWrite]);
        if on {
            self.add_feature(&delegate, license.id, &name).await
        } else if license.has_feature(&name) {
            self.remove_feature(&delegate, license.id, &name).await
        } else {
            Ok(license)
        }
    }

    /// `MachineLockLimit`, `ChangeNotes`: a plain change of the license's settings.
    pub async fn cl_update(
        &self,
        principal: &Principal,
        method: Permission,
        product_id: i64,
        key: &str,
        patch: LicensePatch,
    ) -> Result<License> {
        let license = self.cl_lookup(principal, method, product_id, key).await?;
        let delegate = principal.acting_with(vec![Permission::LicensesWrite]);
        self.update_license(&delegate, license.id, patch).await
    }

    /// `ChangeCustomer`: an unknown customer (or 0) leaves the license without one.
    pub async fn cl_change_customer(
        &self,
        principal: &Principal,
        product_id: i64,
        key: &str,
        customer_id: i64,
    ) -> Result<CustomerFound> {
        let license = self
            .cl_lookup(principal, Permission::ClChangeCustomer, product_id, key)
            .await?;
        let customer = match customer_id {
            0 => None,
            id => {
                let mut session = self.store.read().await?;
                self.customer_in_reach(&mut session, principal, id).await?
            }
        };
        let found = customer.is_some() || customer_id == 0;
        let delegate = principal.acting_with(vec![Permission::LicensesWrite]);
        self.update_license(
            &delegate,
            license.id,
            LicensePatch {
                customer_id: Some(customer.map(|c| c.id)),
                ..Default::default()
            },
        )
        .await?;
        Ok(found)
    }

    /// `auth/KeyLock`: a new token locked to one license, with the Cryptolens methods the
    /// caller may call (its method scope, as in Cryptolens) and nothing else: none of the
    /// caller's native permissions, so the new token reaches nothing beyond the methods.
    /// Only a token whose key lock is -1 may mint them.
    pub async fn cl_key_lock(
        &self,
        principal: &Principal,
        product_id: i64,
        key: &str,
    ) -> Result<(i64, TokenSecret)> {
        if principal.key_lock().is_none_or(|k| k >= 0) {
            return Err(AppError::Forbidden(
                "only a token with key lock -1 may create key-locked tokens".into(),
            ));
        }
        principal.require_product(product_id)?;
        let key = LicenseKey::parse(key)?;
        let mut session = self.store.write().await?;
        session
            .product(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let license = session
            .license_by_key(key.as_str())
            .await?
            .filter(|l| l.product_id == product_id)
            .ok_or(AppError::NotFound(Entity::License))?;
        let methods: Vec<Permission> = Permission::ALL
            .into_iter()
            .filter(|p| p.is_cryptolens_method() && principal.holds(*p))
            .collect();
        if methods.is_empty() {
            return Err(AppError::Forbidden(
                "this token may call no Cryptolens method to pass on".into(),
            ));
        }
        // The new token hides what its minter's callers cannot see.
        let feature_lock = principal.feature_lock();
        principal.require_grantable(&methods, Some(product_id), Some(license.id), feature_lock)?;
        let secret = TokenSecret::generate();
        let name = format!("key lock for license {}", license.id);
        session
            .insert_token(
                &name,
                &secret.hash(),
                &methods,
                Some(product_id),
                Some(license.id),
                feature_lock,
                None,
                now(),
            )
            .await?;
        session.commit().await?;
        tracing::info!(license.id = license.id, actor = %principal.actor.label(), "key-locked token created");
        Ok((license.id, secret))
    }

    /// `AddCustomer`: the customer and its secret (shown only in this reply).
    pub async fn cl_add_customer(
        &self,
        principal: &Principal,
        input: NewCustomerInput,
    ) -> Result<(Customer, TokenSecret)> {
        principal.require_method(Permission::ClAddCustomer, None)?;
        let (name, mail, firm) = new_customer_fields(&input)?;
        // A customer outside any license: not for a token limited to a product, which makes
        // customers only with its licenses (`CreateKey` with `NewCustomer`).
        let delegate = principal.acting_with(vec![Permission::CustomersWrite]);
        self.create_customer_with_secret(
            &delegate,
            NewCustomerInput {
                name,
                email: mail,
                company: firm,
            },
        )
        .await
    }

    /// `EditCustomer`: the fields given replace the customer's, and `renew_secret` gives it a
    /// new secret. Customers belong to every product, so only a token without a product or
    /// key lock changes them.
    pub async fn cl_edit_customer(
        &self,
        principal: &Principal,
        id: i64,
        patch: CustomerPatch,
        renew_secret: bool,
    ) -> Result<(Customer, Option<TokenSecret>)> {
        principal.require(Permission::ClEditCustomer)?;
        let delegate = principal.acting_with(vec![Permission::CustomersWrite]);
        let secret = renew_secret.then(TokenSecret::generate_customer_secret);
        let customer = self
            .edit_customer(&delegate, id, patch, secret.as_ref())
            .await?;
        Ok((customer, secret))
    }

    /// `RemoveCustomer`: as [`App::delete_customer`], for a token without a product or key
    /// lock.
    pub async fn cl_remove_customer(&self, principal: &Principal, id: i64) -> Result<Customer> {
        principal.require(Permission::ClRemoveCustomer)?;
        let delegate = principal.acting_with(vec![Permission::CustomersWrite]);
        self.delete_customer(&delegate, id).await
    }

    /// `GetCustomerLicensesBySecret`: the licenses of the customer holding `secret`, as
    /// [`App::cl_customer_licenses`] shows them. An unknown secret is an unknown customer.
    pub async fn cl_customer_licenses_by_secret(
        &self,
        principal: &Principal,
        secret: &str,
    ) -> Result<Vec<ClLicense>> {
        principal.require_method(Permission::ClGetCustomerLicensesBySecret, None)?;
        let customer = self
            .store
            .read()
            .await?
            .customer_by_secret(&TokenHash::of(secret))
            .await?
            .ok_or(AppError::NotFound(Entity::Customer))?;
        self.cl_licenses_of(principal, customer.id).await
    }

    /// `GetCustomers`: up to `limit` (at most 500) customers in creation order; for a token
    /// limited to a product, the customers of that product's licenses.
    pub async fn cl_customers(&self, principal: &Principal, limit: i64) -> Result<Vec<Customer>> {
        let product_id = principal.require_listing(Permission::ClGetCustomers, None)?;
        let limit = if limit <= 0 {
            MAX_LIST
        } else {
            limit.min(MAX_LIST)
        };
        Ok(self
            .store
            .read()
            .await?
            .customers(None, product_id, None, limit)
            .await?)
    }

    /// `GetCustomerLicenses`: a customer's licenses (within the token's product, if locked).
    pub async fn cl_customer_licenses(
        &self,
        principal: &Principal,
        customer_id: i64,
    ) -> Result<Vec<ClLicense>> {
        principal.require_method(Permission::ClGetCustomerLicenses, None)?;
        self.cl_licenses_of(principal, customer_id).await
    }

    /// A customer's licenses (within the token's product, if locked), once the method's
    /// permission was checked; a customer out of reach is one that does not exist.
    async fn cl_licenses_of(
        &self,
        principal: &Principal,
        customer_id: i64,
    ) -> Result<Vec<ClLicense>> {
        let licenses = {
            let mut session = self.store.read().await?;
            self.customer_in_reach(&mut session, principal, customer_id)
                .await?
                .ok_or(AppError::NotFound(Entity::Customer))?;
            session
                .licenses(&LicenseFilter {
                    customer_id: Some(customer_id),
                    product_id: principal.product_scope(),
                    limit: MAX_LIST,
                    ..Default::default()
                })
                .await?
        };
        let mut out = Vec::with_capacity(licenses.len());
        for license in licenses {
            out.push(self.cl_view(license).await?);
        }
        Ok(out)
    }

    /// `GetKeys`: page `page` (from 1) of a product's keys that match `search` (Cryptolens's
    /// `SearchQuery`, empty for all) in the order `order_by` names (`ID ascending` when empty),
    /// 99 to a page, with how many match in all.
    pub async fn cl_keys(
        &self,
        principal: &Principal,
        product_id: i64,
        page: i64,
        search: &str,
        order_by: &str,
    ) -> Result<ClKeyPage> {
        principal.require_method(Permission::ClGetKeys, Some(product_id))?;
        if page < 1 {
            return Err(AppError::invalid("page", "must be 1 or more"));
        }
        let filter = key_search::parse(search, now().date_naive()).map_err(DomainError::from)?;
        let order = KeyOrder::parse(order_by)?;
        let (licenses, total) = {
            let mut session = self.store.read().await?;
            let product = session
                .product(product_id)
                .await?
                .ok_or(AppError::NotFound(Entity::Product))?;
            session
                .search_licenses(&KeySearch {
                    product_id,
                    filter: filter.as_ref(),
                    features: &product.features,
                    expired_blocked_at: product.block_expired_licenses.then(now),
                    order,
                    limit: KEYS_PER_PAGE,
                    offset: (page - 1).saturating_mul(KEYS_PER_PAGE),
                })
                .await?
        };
        let mut keys = Vec::with_capacity(licenses.len());
        for license in licenses {
            keys.push(self.cl_view(license).await?);
        }
        Ok(ClKeyPage {
            keys,
            total,
            page_count: (total + KEYS_PER_PAGE - 1) / KEYS_PER_PAGE,
        })
    }

    /// `GetProducts`: all products, or the token's one, each with its own data objects.
    pub async fn cl_products(&self, principal: &Principal) -> Result<Vec<ClProduct>> {
        let only = principal.require_listing(Permission::ClGetProducts, None)?;
        let mut session = self.store.read().await?;
        let products = session.products(only).await?;
        let mut out = Vec::with_capacity(products.len());
        for product in products {
            let data_objects = session
                .data_objects(DataOwner::Product(product.id), None, MAX_PER_OWNER)
                .await?;
            out.push(ClProduct {
                product,
                data_objects,
            });
        }
        Ok(out)
    }
}

/// A customer as Cryptolens lets one be created: the name may be left out when an email or
/// company identifies the customer.
fn new_customer_fields(
    input: &NewCustomerInput,
) -> Result<(String, Option<String>, Option<String>)> {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mail = email(given(&input.email).as_deref())?;
    let firm = company(given(&input.company).as_deref())?;
    let name = match input.name.trim() {
        "" => mail
            .clone()
            .or_else(|| firm.clone())
            .ok_or_else(|| AppError::invalid("name", "give a name, an email or a company"))?,
        name => display_name("name", name)?,
    };
    Ok((name, mail, firm))
}
