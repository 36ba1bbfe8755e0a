use keyturn_core::names::display_name;
use keyturn_core::webhook::EventType;
use keyturn_core::AuditAction;
use keyturn_core::{Customer, Email, Permission, TokenSecret};
use keyturn_store::Session;
use serde_json::json;

use crate::licenses::record;
use crate::Entity;
use crate::{now, App, AppError, Page, PageRequest, Principal, Result};

#[derive(Debug, Clone, Default)]
pub struct NewCustomerInput {
    pub name: String,
    pub email: Option<String>,
    pub company: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CustomerPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the field.
    pub email: Option<Option<String>>,
    pub company: Option<Option<String>>,
}

/// Writes a new customer with its `customer.created` event: every path that creates one
/// (the API, the Cryptolens API, payments, imports) goes through here.
pub(crate) async fn insert_customer(
    s: &mut Session,
    name: &str,
    email: Option<&str>,
    company: Option<&str>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Customer> {
    let customer = s.insert_customer(name, email, company, at).await?;
    crate::webhooks::emit::customer(s, EventType::CustomerCreated, &customer, at).await?;
    Ok(customer)
}

/// Saves a changed customer with its `customer.updated` event.
pub(crate) async fn save_customer(
    s: &mut Session,
    customer: &Customer,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    s.update_customer(customer).await?;
    crate::webhooks::emit::customer(s, EventType::CustomerUpdated, customer, at).await
}

pub(crate) fn email(input: Option<&str>) -> Result<Option<String>> {
    Ok(input.map(Email::parse).transpose()?.map(Email::into_string))
}

pub(crate) fn company(input: Option<&str>) -> Result<Option<String>> {
    input
        .map(|c| display_name("company", c))
        .transpose()
        .map_err(Into::into)
}

// Customers are shared by all products, so only unrestricted tokens manage them. A token limited
// to a product sees a customer only through its product's licenses.
impl App {
    /// Customer `id` if `principal` may see it (and attach it to a license): any customer for
    /// an unrestricted caller; for a product's token, one holding a license of that product;
    /// for a key-locked token, its license's own customer. Any other is `None`, as if it did
    /// not exist.
    pub(crate) async fn customer_in_reach(
        &self,
        session: &mut Session,
        principal: &Principal,
        id: i64,
    ) -> Result<Option<Customer>> {
        let Some(customer) = session.customer(id).await? else {
            return Ok(None);
        };
        if let Some(lock) = principal.license_lock() {
            let own = session.license(lock).await?.and_then(|l| l.customer_id);
            return Ok((own == Some(id)).then_some(customer));
        }
        match principal.product_scope() {
            Some(p) if !session.customer_holds_product(id, p).await? => Ok(None),
            _ => Ok(Some(customer)),
        }
    }

    pub async fn create_customer(
        &self,
        principal: &Principal,
        input: NewCustomerInput,
    ) -> Result<Customer> {
        self.insert_new_customer(principal, input, None).await
    }

    /// Creates a customer together with its secret ([`App::new_customer_secret`]), as
    /// Cryptolens's `AddCustomer` does.
    pub async fn create_customer_with_secret(
        &self,
        principal: &Principal,
        input: NewCustomerInput,
    ) -> Result<(Customer, TokenSecret)> {
        let secret = TokenSecret::generate_customer_secret();
        let customer = self
            .insert_new_customer(principal, input, Some(&secret))
            .await?;
        Ok((customer, secret))
    }

    async fn insert_new_customer(
        &self,
        principal: &Principal,
        input: NewCustomerInput,
        secret: Option<&TokenSecret>,
    ) -> Result<Customer> {
        principal.require_unrestricted(Permission::CustomersWrite)?;
        let name = display_name("name", &input.name)?;
        let email = email(input.email.as_deref())?;
        let company = company(input.company.as_deref())?;
        let mut session = self.store.write().await?;
        let customer = insert_customer(
            &mut session,
            &name,
            email.as_deref(),
            company.as_deref(),
            now(),
        )
        .await?;
        if let Some(secret) = secret {
            session
                .set_customer_secret(customer.id, Some(&secret.hash()))
                .await?;
        }
        session.commit().await?;
        Ok(customer)
    }

    /// A new secret for a customer, replacing any it had: with it, a program lists the
    /// customer's licenses (Cryptolens `GetCustomerLicensesBySecret`). Shown only now; the
    /// server keeps its hash.
    pub async fn new_customer_secret(&self, principal: &Principal, id: i64) -> Result<TokenSecret> {
        let secret = TokenSecret::generate_customer_secret();
        self.edit_customer(principal, id, CustomerPatch::default(), Some(&secret))
            .await?;
        Ok(secret)
    }

    /// Removes a customer: its licenses stay, without a customer (each notes it in its audit
    /// log). A customer that payments or subscriptions name stays, since those records keep
    /// who paid.
    pub async fn delete_customer(&self, principal: &Principal, id: i64) -> Result<Customer> {
        principal.require_unrestricted(Permission::CustomersWrite)?;
        let mut session = self.store.write().await?;
        let customer = session
            .customer(id)
            .await?
            .ok_or(AppError::NotFound(Entity::Customer))?;
        if session.customer_has_payments(id).await? {
            return Err(AppError::Conflict(
                "the customer has payments or subscriptions, which keep it".into(),
            ));
        }
        let at = now();
        for license in session.detach_customer(id, at).await? {
            record(
                &mut session,
                license,
                &principal.actor,
                AuditAction::CustomerRemoved,
                json!({"customer_id": id}),
                at,
            )
            .await?;
        }
        session.delete_customer(id).await?;
        session.commit().await?;
        tracing::info!(customer.id = id, actor = %principal.actor.label(), "customer removed");
        Ok(customer)
    }

    pub async fn customer(&self, principal: &Principal, id: i64) -> Result<Customer> {
        principal.require_unrestricted(Permission::CustomersRead)?;
        self.store
            .read()
            .await?
            .customer(id)
            .await?
            .ok_or(AppError::NotFound(Entity::Customer))
    }

    pub async fn customers(
        &self,
        principal: &Principal,
        email_filter: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Customer>> {
        principal.require_unrestricted(Permission::CustomersRead)?;
        let (after, limit) = page.resolve()?;
        let email = email(email_filter)?;
        let rows = self
            .store
            .read()
            .await?
            .customers(email.as_deref(), None, after, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |c| c.id))
    }

    pub async fn update_customer(
        &self,
        principal: &Principal,
        id: i64,
        patch: CustomerPatch,
    ) -> Result<Customer> {
        self.edit_customer(principal, id, patch, None).await
    }

    /// Changes a customer and, with `new_secret`, gives it that secret (the caller shows it
    /// once; the server keeps its hash), in one transaction.
    pub async fn edit_customer(
        &self,
        principal: &Principal,
        id: i64,
        patch: CustomerPatch,
        new_secret: Option<&TokenSecret>,
    ) -> Result<Customer> {
        principal.require_unrestricted(Permission::CustomersWrite)?;
        let mut session = self.store.write().await?;
        let mut customer = session
            .customer(id)
            .await?
            .ok_or(AppError::NotFound(Entity::Customer))?;
        if let Some(name) = patch.name {
            customer.name = display_name("name", &name)?;
        }
        if let Some(e) = patch.email {
            customer.email = email(e.as_deref())?;
        }
        if let Some(c) = patch.company {
            customer.company = company(c.as_deref())?;
        }
        save_customer(&mut session, &customer, now()).await?;
        if let Some(secret) = new_secret {
            session
                .set_customer_secret(id, Some(&secret.hash()))
                .await?;
        }
        session.commit().await?;
        Ok(customer)
    }
}
