use keyturn_core::Permission;

use crate::{AppError, Result};

/// Who is acting. Recorded in the audit log as `token:<id>`, `cli`, `system`, `licensee` or `<provider>:<event id>`.
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
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Token(id) => format!("token:{id}"),
            Actor::Cli => "cli".into(),
            Actor::System => "system".into(),
            Actor::Licensee => "licensee".into(),
            Actor::ProviderEvent { provider, event_id } => format!("{provider}:{event_id}"),
        }
    }
}

/// An authenticated caller and what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    permissions: Vec<Permission>,
    product_id: Option<i64>,
    key_lock: Option<i64>,
}

impl Principal {
    pub(crate) fn new(actor: Actor, permissions: Vec<Permission>, product_id: Option<i64>) -> Self {
        Self {
            actor,
            permissions,
            product_id,
            key_lock: None,
        }
    }

    pub(crate) fn with_key_lock(mut self, key_lock: Option<i64>) -> Self {
        self.key_lock = key_lock.filter(|k| *k != 0);
        self
    }

    /// The Cryptolens key lock: `Some(id)` limits the token to one license, `Some(-1)` (or
    /// less) obliges callers to name the key and allows minting key-locked tokens.
    pub fn key_lock(&self) -> Option<i64> {
        self.key_lock
    }

    /// The same caller, allowed `permissions` for one step of a use case it was already
    /// authorised for (a Cryptolens method that runs a native use case). The product
    /// restriction stays unless `unrestricted`; the audit log still names the caller.
    pub(crate) fn acting_with(&self, permissions: Vec<Permission>, unrestricted: bool) -> Self {
        Self {
            actor: self.actor.clone(),
            permissions,
            product_id: if unrestricted { None } else { self.product_id },
            key_lock: self.key_lock,
        }
    }

    /// The product lock alone: `product_id` must be the token's product, if it has one.
    pub fn require_product(&self, product_id: i64) -> Result<()> {
        match self.product_id {
            Some(allowed) if allowed != product_id => Err(AppError::Forbidden(format!(
                "this token is limited to product {allowed}"
            ))),
            _ => Ok(()),
        }
    }

    /// A Cryptolens method call: the method's permission, the product lock (when the method
    /// is about a product) and the key lock: a token locked to one license may touch only it,
    /// so methods not about one license (`license_id` `None`) are refused to it.
    pub fn require_method(
        &self,
        method: Permission,
        product_id: Option<i64>,
        license_id: Option<i64>,
    ) -> Result<()> {
        self.require(method)?;
        if let Some(product_id) = product_id {
            self.require_product(product_id)?;
        }
        match (self.key_lock, license_id) {
            (Some(lock), Some(id)) if lock > 0 && lock != id => Err(AppError::Forbidden(format!(
                "this token is limited to license {lock}"
            ))),
            (Some(lock), None) if lock > 0 => Err(AppError::Forbidden(format!(
                "this token is limited to license {lock}"
            ))),
            _ => Ok(()),
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

    /// The product a listing is about: the one `asked` for, which must be within the token's
    /// product restriction, or else the restriction itself.
    pub fn listed_product(&self, asked: Option<i64>) -> Result<Option<i64>> {
        match (self.product_id, asked) {
            (Some(scope), Some(asked)) if scope != asked => Err(AppError::Forbidden(format!(
                "this token is limited to product {scope}"
            ))),
            (Some(scope), _) => Ok(Some(scope)),
            (None, asked) => Ok(asked),
        }
    }

    pub fn require(&self, wanted: Permission) -> Result<()> {
        if self.permissions.iter().any(|p| p.grants(wanted)) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this token lacks the permission {wanted}"
            )))
        }
    }

    /// Requires `wanted`, and that `product_id` is within the token's product restriction.
    pub fn require_for(&self, wanted: Permission, product_id: i64) -> Result<()> {
        self.require(wanted)?;
        match self.product_id {
            Some(allowed) if allowed != product_id => Err(AppError::Forbidden(format!(
                "this token is limited to product {allowed}"
            ))),
            _ => Ok(()),
        }
    }

    /// Requires `wanted` without any product restriction (actions that span products).
    pub fn require_unrestricted(&self, wanted: Permission) -> Result<()> {
        self.require(wanted)?;
        if let Some(allowed) = self.product_id {
            return Err(AppError::Forbidden(format!(
                "this token is limited to product {allowed}"
            )));
        }
        Ok(())
    }

    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }
}
