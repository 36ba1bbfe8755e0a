use chrono::{DateTime, Utc};
use keyturn_core::names::display_name;
use keyturn_core::{AccessToken, Permission, TokenHash, TokenSecret};
use serde_json::json;

use crate::Entity;
use crate::{now, Actor, App, AppError, Principal, Result};

/// The largest feature lock: the 32 bits Cryptolens's integer holds.
const MAX_FEATURE_LOCK: i64 = u32::MAX as i64;

#[derive(Debug, Clone)]
pub struct NewTokenInput {
    pub name: String,
    pub permissions: Vec<Permission>,
    pub product_id: Option<i64>,
    /// Cryptolens key lock: a license id, or -1 (callers must name the key).
    pub key_lock: Option<i64>,
    /// Cryptolens feature lock: license fields Activate and GetKey hide (`FieldsToReturn`
    /// bits; 0 hides nothing).
    pub feature_lock: i64,
    pub expires: Option<DateTime<Utc>>,
}

impl App {
    /// Turns a presented bearer token into a principal; anything unknown, revoked or expired is
    /// simply unauthenticated, with no hint which.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal> {
        let token = self
            .token_row(&TokenHash::of(presented))
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let at = now();
        if token.revoked.is_some() || token.expires.is_some_and(|e| e <= at) {
            return Err(AppError::Unauthenticated);
        }
        Ok(Principal::new(
            Actor::Token(token.id),
            token.permissions.clone(),
            token.product_id,
        )
        .with_key_lock(token.key_lock)
        .with_feature_lock(token.feature_lock))
    }

    /// Creates a token. It never grants more than its creator holds: only permissions the
    /// creator has, no wider product. A token locked to a license is limited to that
    /// license's product as well.
    pub async fn create_token(
        &self,
        principal: &Principal,
        input: NewTokenInput,
    ) -> Result<(AccessToken, TokenSecret)> {
        principal.require_unrestricted(Permission::TokensManage)?;
        let name = display_name("name", &input.name)?;
        if input.permissions.is_empty() {
            return Err(AppError::invalid(
                "permissions",
                "must name at least one permission",
            ));
        }
        let at = now();
        if input.expires.is_some_and(|e| e <= at) {
            return Err(AppError::invalid("expires", "must be in the future"));
        }
        let mut permissions = input.permissions;
        permissions.sort();
        permissions.dedup();
        let key_lock = input.key_lock.filter(|k| *k != 0);
        if key_lock.is_some_and(|k| k < -1) {
            return Err(AppError::invalid(
                "key_lock",
                "must be a license id, or -1 (callers must name the key)",
            ));
        }
        if !(0..=MAX_FEATURE_LOCK).contains(&input.feature_lock) {
            return Err(AppError::invalid(
                "feature_lock",
                format!("must be between 0 and {MAX_FEATURE_LOCK} (FieldsToReturn bits)"),
            ));
        }
        principal.require_grantable(
            &permissions,
            input.product_id,
            key_lock,
            input.feature_lock,
        )?;
        let mut session = self.store.write().await?;
        let mut product_id = input.product_id;
        if let Some(product_id) = product_id {
            session
                .product(product_id)
                .await?
                .ok_or(AppError::invalid("product_id", "no such product"))?;
        }
        if let Some(license_id) = key_lock.filter(|k| *k > 0) {
            let license = session
                .license(license_id)
                .await?
                .ok_or(AppError::invalid("key_lock", "no license has this id"))?;
            if product_id.is_some_and(|p| p != license.product_id) {
                return Err(AppError::invalid(
                    "key_lock",
                    "the license belongs to another product than product_id",
                ));
            }
            product_id = Some(license.product_id);
        }
        let secret = TokenSecret::generate();
        let token = session
            .insert_token(
                &name,
                &secret.hash(),
                &permissions,
                product_id,
                key_lock,
                input.feature_lock,
                input.expires,
                at,
            )
            .await?;
        // What the token may do, never its secret.
        self.audit_setup(
            &mut session,
            principal,
            "token_created",
            json!({
                "token_id": token.id,
                "name": token.name,
                "permissions": token.permissions,
                "product_id": token.product_id,
                "key_lock": token.key_lock,
                "expires": token.expires,
            }),
        )
        .await?;
        session.commit().await?;
        tracing::info!(token.id = token.id, actor = %principal.actor.label(), "access token created");
        Ok((token, secret))
    }

    /// On a new installation, creates the first admin token and returns its secret; once any
    /// token exists, returns `None`.
    pub async fn bootstrap_admin_token(&self) -> Result<Option<TokenSecret>> {
        let mut session = self.store.write().await?;
        if session.count_tokens().await? > 0 {
            return Ok(None);
        }
        let secret = TokenSecret::generate();
        session
            .insert_token(
                "initial admin",
                &secret.hash(),
                &[Permission::Admin],
                None,
                None,
                0,
                None,
                now(),
            )
            .await?;
        session.commit().await?;
        Ok(Some(secret))
    }

    pub async fn tokens(&self, principal: &Principal) -> Result<Vec<AccessToken>> {
        principal.require_unrestricted(Permission::TokensManage)?;
        Ok(self.store.read().await?.tokens().await?)
    }

    pub async fn revoke_token(&self, principal: &Principal, id: i64) -> Result<AccessToken> {
        principal.require_unrestricted(Permission::TokensManage)?;
        let mut session = self.store.write().await?;
        if !session.revoke_token(id, now()).await? {
            return Err(AppError::NotFound(Entity::Token));
        }
        let token = session
            .token(id)
            .await?
            .ok_or(AppError::NotFound(Entity::Token))?;
        self.audit_setup(
            &mut session,
            principal,
            "token_revoked",
            json!({"token_id": id, "name": token.name}),
        )
        .await?;
        session.commit().await?;
        tracing::info!(token.id = id, actor = %principal.actor.label(), "access token revoked");
        Ok(token)
    }
}
