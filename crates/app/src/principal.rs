use keyturn_core::{License, Permission};

use crate::Entity;
use crate::{AppError, Result};

/// Who is acting. Recorded in the audit log as `token:<id>`, `cli`, `system`, `licensee`, `user:<email>` (a console user) or `<provider>:<event id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Token(i64),
    Cli,
    System,
    /// Whoever holds a license key: programs activating, validating or starting a trial.
    Licensee,
    /// A payment provider's event, e.g. `stripe:evt_123`.
    ProviderEvent {
        provider: String,
        event_id: String,
    },
    /// A person signed in to the admin console.
    User {
        id: i64,
        email: String,
    },
    /// A buyer signed in to the customer portal, by the (lower-cased) email they proved.
    Customer {
        email: String,
    },
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Token(id) => format!("token:{id}"),
            Actor::Cli => "cli".into(),
            Actor::System => "system".into(),
            Actor::Licensee => "licensee".into(),
            Actor::ProviderEvent { provider, event_id } => format!("{provider}:{event_id}"),
            Actor::User { email, .. } => format!("user:{email}"),
            Actor::Customer { email } => format!("customer:{email}"),
        }
    }
}

/// An authenticated caller and what it may do.
///
/// Every use case asks the principal before it acts, and the principal is the one place that
/// knows a token's three limits: its permissions, its product scope and its key lock. The
/// methods come in the shapes use cases need, so none has to combine the limits itself:
///
/// * [`Principal::require_license`] for anything about one license (read, change, delete, its
///   activations and audit log, on either API) after looking the license up;
/// * [`Principal::require_for`] / [`Principal::require_in_product`] for things of one product;
/// * [`Principal::require_listing`] for listings, which it narrows to the token's product;
/// * [`Principal::require_unrestricted`] for what spans products (customers, payments, tokens).
///
/// Two rules hold throughout. A key-locked token (Cryptolens key lock, a license id) touches
/// its one license and nothing else: it is refused every other license, whether or not that
/// exists, and every use case that is not about one license. And what lies outside a token's
/// product looks exactly like what does not exist, so a token cannot probe other products.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    permissions: Vec<Permission>,
    product_id: Option<i64>,
    key_lock: Option<i64>,
    feature_lock: i64,
}

impl Principal {
    pub(crate) fn new(actor: Actor, permissions: Vec<Permission>, product_id: Option<i64>) -> Self {
        Self {
            actor,
            permissions,
            product_id,
            key_lock: None,
            feature_lock: 0,
        }
    }

    pub(crate) fn with_key_lock(mut self, key_lock: Option<i64>) -> Self {
        self.key_lock = key_lock.filter(|k| *k != 0);
        self
    }

    pub(crate) fn with_feature_lock(mut self, feature_lock: i64) -> Self {
        self.feature_lock = feature_lock;
        self
    }

    /// The Cryptolens feature lock: license fields (`FieldsToReturn` bits) that Activate and
    /// GetKey hide from this caller whatever it asks; 0 hides nothing.
    pub fn feature_lock(&self) -> i64 {
        self.feature_lock
    }

    /// The Cryptolens key lock: `Some(id)` limits the token to one license, `Some(-1)` (or
    /// less) obliges callers to name the key and allows minting key-locked tokens.
    pub fn key_lock(&self) -> Option<i64> {
        self.key_lock
    }

    /// The one license this principal is limited to, if any.
    pub fn license_lock(&self) -> Option<i64> {
        self.key_lock.filter(|k| *k > 0)
    }

    /// The same caller, allowed `permissions` for one step of a use case it was already
    /// authorised for (a Cryptolens method that runs a native use case). The product scope and
    /// key lock stay; the audit log still names the caller.
    pub(crate) fn acting_with(&self, permissions: Vec<Permission>) -> Self {
        Self {
            actor: self.actor.clone(),
            permissions,
            product_id: self.product_id,
            key_lock: self.key_lock,
            feature_lock: self.feature_lock,
        }
    }

    /// The operator at the server's own command line: may do everything.
    pub fn cli() -> Self {
        Self::new(Actor::Cli, vec![Permission::Admin], None)
    }

    /// Keyturn itself (payment events, housekeeping).
    pub fn system() -> Self {
        Self::new(Actor::System, vec![Permission::Admin], None)
    }

    /// The one product this principal is limited to, if any.
    pub fn product_scope(&self) -> Option<i64> {
        self.product_id
    }

    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    /// Whether the principal holds `wanted` (directly or through `admin`).
    pub fn holds(&self, wanted: Permission) -> bool {
        self.permissions.iter().any(|p| p.grants(wanted))
    }

    /// The permission alone. Use cases call it first, before they look anything up, so that a
    /// missing permission is told the same whatever was asked about; the scope comes after,
    /// through one of the methods below.
    pub fn require(&self, wanted: Permission) -> Result<()> {
        if self.holds(wanted) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this token lacks the permission {wanted}"
            )))
        }
    }

    /// Whether `product_id` is within the token's product scope.
    pub fn reaches_product(&self, product_id: i64) -> bool {
        self.product_id.is_none_or(|p| p == product_id)
    }

    /// Refuses a key-locked principal: the use case is not about its one license.
    fn require_no_key_lock(&self) -> Result<()> {
        match self.license_lock() {
            Some(lock) => Err(limited_to_license(lock)),
            None => Ok(()),
        }
    }

    /// The product scope alone, for a product the caller names itself (so refusing it tells
    /// nothing about what exists).
    pub fn require_product(&self, product_id: i64) -> Result<()> {
        match self.product_id {
            Some(allowed) if allowed != product_id => Err(AppError::Forbidden(format!(
                "this token is limited to product {allowed}"
            ))),
            _ => Ok(()),
        }
    }

    /// Requires `wanted` on product `product_id`, named by the caller (creating a license or a
    /// plan in it, reading or changing it).
    pub fn require_for(&self, wanted: Permission, product_id: i64) -> Result<()> {
        self.require(wanted)?;
        self.require_no_key_lock()?;
        self.require_product(product_id)
    }

    /// Requires `wanted` on something of a product that the caller named by its own id (a
    /// plan), given the product of what the lookup found (`None`: nothing). Outside the
    /// token's product it is `NotFound(what)`, as if it did not exist.
    pub fn require_in_product(
        &self,
        wanted: Permission,
        found: Option<i64>,
        what: Entity,
    ) -> Result<()> {
        self.require(wanted)?;
        self.require_no_key_lock()?;
        match found {
            Some(product_id) if self.reaches_product(product_id) => Ok(()),
            _ => Err(AppError::NotFound(what)),
        }
    }

    /// Requires `wanted` on the license a lookup found for the caller (`None`: no such
    /// license), or on `what` belonging to it (its activation). A key-locked token is refused
    /// every license but its own, found or not; a product-scoped token is told that another
    /// product's license does not exist.
    pub fn require_license_part(
        &self,
        wanted: Permission,
        found: Option<&License>,
        what: Entity,
    ) -> Result<()> {
        self.require(wanted)?;
        match (self.license_lock(), found) {
            (Some(lock), Some(l)) if l.id == lock && self.reaches_product(l.product_id) => Ok(()),
            (Some(lock), _) => Err(limited_to_license(lock)),
            (None, Some(l)) if self.reaches_product(l.product_id) => Ok(()),
            (None, _) => Err(AppError::NotFound(what)),
        }
    }

    /// [`Principal::require_license_part`] for the license itself.
    pub fn require_license(&self, wanted: Permission, found: Option<&License>) -> Result<()> {
        self.require_license_part(wanted, found, Entity::License)
    }

    /// The product a listing is about: the one `asked` for, which must be within the token's
    /// product restriction, or else the restriction itself.
    pub fn listed_product(&self, asked: Option<i64>) -> Result<Option<i64>> {
        if let Some(asked) = asked {
            self.require_product(asked)?;
        }
        Ok(self.product_id.or(asked))
    }

    /// Requires `wanted` for a listing of licenses or what a vendor manages, and returns the
    /// product it must be limited to ([`Principal::listed_product`]). A key-locked token lists
    /// nothing.
    pub fn require_listing(&self, wanted: Permission, asked: Option<i64>) -> Result<Option<i64>> {
        self.require(wanted)?;
        self.require_no_key_lock()?;
        self.listed_product(asked)
    }

    /// Requires `wanted` without any restriction: no product scope, no key lock (actions that
    /// span products, such as customers, payments and tokens).
    pub fn require_unrestricted(&self, wanted: Permission) -> Result<()> {
        self.require(wanted)?;
        self.require_no_key_lock()?;
        if let Some(allowed) = self.product_id {
            return Err(AppError::Forbidden(format!(
                "this token is limited to product {allowed}"
            )));
        }
        Ok(())
    }

    /// Whether the principal is limited in any way beyond its permissions.
    pub fn restricted(&self) -> bool {
        self.product_id.is_some() || self.license_lock().is_some()
    }

    /// A Cryptolens method that is not about one named license (creating keys, listing
    /// customers or products): the method's permission, the product scope when the method is
    /// about a product, and no key lock. Methods about one license use
    /// [`Principal::require_license`] once the key is found.
    pub fn require_method(&self, method: Permission, product_id: Option<i64>) -> Result<()> {
        self.require(method)?;
        self.require_no_key_lock()?;
        match product_id {
            Some(product_id) => self.require_product(product_id),
            None => Ok(()),
        }
    }

    /// Checks that a token with these limits grants nothing this principal does not hold:
    /// every permission held, the same or a narrower product, the same key lock if locked,
    /// and every license field this principal's feature lock hides hidden as well.
    pub fn require_grantable(
        &self,
        permissions: &[Permission],
        product_id: Option<i64>,
        key_lock: Option<i64>,
        feature_lock: i64,
    ) -> Result<()> {
        if feature_lock & self.feature_lock != self.feature_lock {
            return Err(AppError::Forbidden(format!(
                "this token hides license fields {}, so the tokens it creates must hide them too",
                self.feature_lock
            )));
        }
        if let Some(p) = permissions.iter().find(|p| !self.holds(**p)) {
            return Err(AppError::Forbidden(format!(
                "this token cannot grant the permission {p}, which it does not hold"
            )));
        }
        if let Some(allowed) = self.product_id {
            if product_id != Some(allowed) {
                return Err(AppError::Forbidden(format!(
                    "this token can grant access to product {allowed} only"
                )));
            }
        }
        if let Some(lock) = self.license_lock() {
            if key_lock != Some(lock) {
                return Err(limited_to_license(lock));
            }
        }
        Ok(())
    }
}

fn limited_to_license(lock: i64) -> AppError {
    AppError::Forbidden(format!("this token is limited to license {lock}"))
}
