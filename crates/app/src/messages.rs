//! Messages to programs: a vendor posts them per product (or for all products) and channel;
//! programs fetch the ones newer than the last they saw (Cryptolens `GetMessages`).
//!
//! Posting and deleting need `products:write` for the message's product; a message for every
//! product needs a token without a product restriction. Reading needs `products:read`, and a
//! restricted token sees what its product's programs see: its product's messages and those for
//! every product. The Cryptolens methods check their own permission, then the same rules.

use chrono::{DateTime, Utc};
use keyturn_core::{message, Message, Permission};
use keyturn_store::MessageFilter;

use crate::Entity;
use crate::{now, App, AppError, Principal, Result};

/// The most messages a listing returns: the newest ones.
pub const MAX_MESSAGES: i64 = 500;

#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub product_id: Option<i64>,
    pub channel: String,
    pub content: String,
    /// Publication time; now when not given.
    pub created: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// What this product's programs see (its messages and those for every product).
    pub product_id: Option<i64>,
    pub channel: Option<String>,
    /// Only messages published strictly after this.
    pub after: Option<DateTime<Utc>>,
}

impl App {
    pub async fn post_message(&self, principal: &Principal, new: NewMessage) -> Result<Message> {
        match new.product_id {
            Some(product) => principal.require_for(Permission::ProductsWrite, product)?,
            None => principal.require_unrestricted(Permission::ProductsWrite)?,
        }
        let channel = message::channel(&new.channel)?;
        let content = message::content(&new.content)?;
        let mut session = self.store.write().await?;
        if let Some(product) = new.product_id {
            session
                .product(product)
                .await?
                .ok_or(AppError::NotFound(Entity::Product))?;
        }
        let posted = session
            .insert_message(
                new.product_id,
                &channel,
                &content,
                new.created.unwrap_or_else(now),
            )
            .await?;
        session.commit().await?;
        tracing::info!(message.id = posted.id, actor = %principal.actor.label(), "message posted");
        Ok(posted)
    }

    /// The newest messages that match, oldest first.
    pub async fn messages(&self, principal: &Principal, q: MessageQuery) -> Result<Vec<Message>> {
        principal.require(Permission::ProductsRead)?;
        self.visible_messages(principal, q).await
    }

    pub async fn delete_message(&self, principal: &Principal, id: i64) -> Result<()> {
        let mut session = self.store.write().await?;
        let found = session
            .message(id)
            .await?
            .ok_or(AppError::NotFound(Entity::Message))?;
        match found.product_id {
            Some(product) => principal.require_for(Permission::ProductsWrite, product)?,
            None => principal.require_unrestricted(Permission::ProductsWrite)?,
        }
        session.delete_message(id).await?;
        session.commit().await?;
        Ok(())
    }

    /// `GetMessages`: a channel's messages (all channels when `None`) published after `after`.
    pub async fn cl_messages(
        &self,
        principal: &Principal,
        channel: Option<String>,
        after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Message>> {
        principal.require(Permission::ClGetMessages)?;
        let q = MessageQuery {
            product_id: None,
            channel,
            after,
        };
        self.visible_messages(principal, q).await
    }

    /// `CreateMessage`: a message for every product, or for the token's product.
    pub async fn cl_post_message(&self, principal: &Principal, new: NewMessage) -> Result<Message> {
        principal.require(Permission::ClEditMessages)?;
        let new = NewMessage {
            product_id: principal.product_scope(),
            ..new
        };
        let delegate = principal.acting_with(vec![Permission::ProductsWrite]);
        self.post_message(&delegate, new).await
    }

    /// `RemoveMessage`.
    pub async fn cl_delete_message(&self, principal: &Principal, id: i64) -> Result<()> {
        principal.require(Permission::ClEditMessages)?;
        let delegate = principal.acting_with(vec![Permission::ProductsWrite]);
        self.delete_message(&delegate, id).await
    }

    async fn visible_messages(
        &self,
        principal: &Principal,
        q: MessageQuery,
    ) -> Result<Vec<Message>> {
        let product_id = principal.listed_product(q.product_id)?;
        let channel = q.channel.as_deref().map(message::channel).transpose()?;
        Ok(self
            .store
            .read()
            .await?
            .messages(&MessageFilter {
                product_id,
                channel,
                after: q.after,
                limit: MAX_MESSAGES,
            })
            .await?)
    }
}
