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
}

impl Principal {
    pub(crate) fn new(actor: Actor, permissions: Vec<Permission>, product_id: Option<i64>) -> Self {
        Self {
            actor,
            permissions,
            product_id,
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
