//! What sales people do in the console: issue licenses from a plan for a customer (new or
//! existing), have their keys mailed, and look through customers.
//!
//! Invariants:
//!
//! * Issuing is one transaction: the new customer (if any), every license, the key mail in the
//!   outbox and the audit entries are stored together or not at all, so there is never a
//!   customer without the licenses it was made for, nor keys that were promised by mail but
//!   not queued. The licenses are made by the same code as the API's (`insert_licenses`).
//! * A user limited to a product issues only that product's plans and picks only customers
//!   that hold one of its licenses; a customer it creates holds one as soon as the transaction
//!   commits, as with a product token's Cryptolens `CreateKey`.
//! * Lists are keyset pages filtered in the database; a customer search is a prefix of the
//!   lower-cased name or email, two range scans over their indexes.

use keyturn_core::names::display_name;
use keyturn_core::payment::Payment;
use keyturn_core::{Customer, License, Permission};
use keyturn_store::{CustomerFilter, LicenseFilter, PaymentFilter};
use serde_json::json;

use crate::customers::{company, email};
use crate::licenses::{LicenseSpec, MAX_QUANTITY};
use crate::mail::{queue_keys, KeyMail};
use crate::{now, App, AppError, Entity, NewCustomerInput, Page, PageRequest, Principal, Result};

/// The longest customer search text.
const MAX_PREFIX_CHARS: usize = 200;
/// The most payments a customer page shows (newest first); the payments list has them all.
pub const CUSTOMER_PAYMENTS_SHOWN: i64 = 100;

/// Whom new licenses are for.
#[derive(Debug, Clone)]
pub enum CustomerChoice {
    Existing(i64),
    New(NewCustomerInput),
}

/// Licenses to issue from one plan.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub plan_id: i64,
    pub quantity: i64,
    pub customer: CustomerChoice,
    /// Queue the mail that hands the customer their keys.
    pub send_mail: bool,
}

/// What an issue made.
#[derive(Debug, Clone)]
pub struct Issued {
    pub customer: Customer,
    /// In id order.
    pub licenses: Vec<License>,
    /// Whether the key mail was queued.
    pub mailed: bool,
}

/// A customer with what the user may see of their licenses and payments.
#[derive(Debug, Clone)]
pub struct CustomerOverview {
    pub customer: Customer,
    /// `None`: the user may not read licenses.
    pub licenses: Option<Page<License>>,
    /// Newest first, at most [`CUSTOMER_PAYMENTS_SHOWN`]; `None` for users who may not read
    /// payments (which span products: unrestricted users only, as on the API).
    pub payments: Option<Vec<Payment>>,
}

/// A page of a list with the customers its rows name (as far as the user may see them), so
/// the list shows names rather than ids.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub page: Page<T>,
    pub customers: Vec<Customer>,
}

impl<T> Listed<T> {
    /// The customer with this id, if the list has it.
    pub fn customer(&self, id: Option<i64>) -> Option<&Customer> {
        id.and_then(|id| self.customers.iter().find(|c| c.id == id))
    }
}

/// A customer search text as typed: trimmed, lower-cased, on one line; `None` when empty.
fn customer_prefix(text: &str) -> Result<Option<String>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_PREFIX_CHARS {
        return Err(AppError::invalid(
            "q",
            format!("must be at most {MAX_PREFIX_CHARS} characters"),
        ));
    }
    Ok(Some(display_name("q", text)?.to_lowercase()))
}

impl App {
    /// The customers named by `ids` (rows of one page), for a user who may read customers;
    /// none for others. The rows were listed within the user's reach, and so are their
    /// customers.
    pub(crate) async fn named_customers(
        &self,
        principal: &Principal,
        mut ids: Vec<i64>,
    ) -> Result<Vec<Customer>> {
        if !principal.holds(Permission::CustomersRead) {
            return Ok(Vec::new());
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(self.store.read().await?.customers_by_ids(&ids).await?)
    }

    /// A page of licenses ([`App::licenses`]) with their customers.
    pub async fn license_list(
        &self,
        principal: &Principal,
        q: crate::LicenseQuery,
    ) -> Result<Listed<License>> {
        let page = self.licenses(principal, q).await?;
        let ids = page.data.iter().filter_map(|l| l.customer_id).collect();
        let customers = self.named_customers(principal, ids).await?;
        Ok(Listed { page, customers })
    }

    /// Issues `quantity` licenses of a plan for a customer, all or none, and queues the key
    /// mail when asked (the customer must then have an email address).
    pub async fn issue_licenses(&self, principal: &Principal, req: IssueRequest) -> Result<Issued> {
        principal.require(Permission::LicensesWrite)?;
        if !(1..=MAX_QUANTITY).contains(&req.quantity) {
            return Err(AppError::invalid(
                "quantity",
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        let at = now();
        let mut session = self.store.write().await?;
        let (customer, created) = match &req.customer {
            CustomerChoice::Existing(id) => {
                principal.require(Permission::CustomersRead)?;
                let customer = self
                    .customer_in_reach(&mut session, principal, *id)
                    .await?
                    .ok_or(AppError::invalid("customer", "no such customer"))?;
                (customer, None)
            }
            CustomerChoice::New(input) => {
                principal.require(Permission::CustomersWrite)?;
                let name = display_name("name", &input.name)?;
                let mail = email(input.email.as_deref())?;
                let firm = company(input.company.as_deref())?;
                let customer = session
                    .insert_customer(&name, mail.as_deref(), firm.as_deref(), at)
                    .await?;
                let id = customer.id;
                (customer, Some(id))
            }
        };
        if req.send_mail && customer.email.is_none() {
            return Err(AppError::invalid(
                "send_mail",
                "the customer has no email address to mail the keys to",
            ));
        }
        let spec = LicenseSpec {
            plan_id: Some(req.plan_id),
            customer_id: Some(customer.id),
            quantity: Some(req.quantity),
            ..LicenseSpec::default()
        };
        let licenses = self
            .insert_licenses(&mut session, principal, &spec, created, at)
            .await?;
        let mailed = match (req.send_mail, licenses.first()) {
            (true, Some(first)) => {
                let product = session
                    .product(first.product_id)
                    .await?
                    .ok_or(AppError::NotFound(Entity::Product))?;
                let keys: Vec<String> = licenses.iter().map(|l| l.key.clone()).collect();
                let mail = KeyMail {
                    to: customer.email.as_deref(),
                    name: Some(&customer.name),
                    product: &product.name,
                    product_id: product.id,
                    template: None,
                    portal: self.portal_url(),
                };
                queue_keys(&mut session, mail, &keys, at).await?
            }
            _ => false,
        };
        let ids: Vec<i64> = licenses.iter().map(|l| l.id).collect();
        session
            .insert_console_event(
                &principal.actor.label(),
                "licenses_issued",
                &json!({
                    "plan_id": req.plan_id,
                    "customer_id": customer.id,
                    "customer_created": created.is_some(),
                    "license_ids": ids,
                    "mailed": mailed,
                }),
                at,
            )
            .await?;
        session.commit().await?;
        tracing::info!(customer.id = customer.id, count = licenses.len(), mailed, actor = %principal.actor.label(), "licenses issued");
        Ok(Issued {
            customer,
            licenses,
            mailed,
        })
    }

    /// The licenses of one issue again, for the page that shows their keys: the customer's
    /// licenses with ids from `first` to `last`, as far as the user may see them.
    pub async fn issued_licenses(
        &self,
        principal: &Principal,
        customer_id: i64,
        first: i64,
        last: i64,
    ) -> Result<(Customer, Vec<License>)> {
        let product_id = principal.require_listing(Permission::LicensesRead, None)?;
        principal.require(Permission::CustomersRead)?;
        let span = last
            .checked_sub(first)
            .filter(|s| (0..MAX_QUANTITY).contains(s))
            .ok_or(AppError::invalid("to", "is not the end of one issue"))?;
        let mut session = self.store.read().await?;
        let customer = self
            .customer_in_reach(&mut session, principal, customer_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Customer))?;
        let mut licenses = session
            .licenses(&LicenseFilter {
                product_id,
                customer_id: Some(customer_id),
                after: Some(first.saturating_sub(1)),
                limit: span + 1,
                ..LicenseFilter::default()
            })
            .await?;
        licenses.retain(|l| l.id <= last);
        Ok((customer, licenses))
    }

    /// Customers whose name or email starts with `prefix` (all without one), in id order; a
    /// user limited to a product sees those holding one of its licenses.
    pub async fn customer_list(
        &self,
        principal: &Principal,
        prefix: &str,
        page: &PageRequest,
    ) -> Result<Page<Customer>> {
        let product_id = principal.require_listing(Permission::CustomersRead, None)?;
        let prefix = customer_prefix(prefix)?;
        let (after, limit) = page.resolve()?;
        let rows = self
            .store
            .read()
            .await?
            .customer_list(&CustomerFilter {
                prefix,
                product_id,
                after,
                limit: limit + 1,
            })
            .await?;
        Ok(Page::from_rows(rows, limit, |c| c.id))
    }

    /// One customer with a page of their licenses (keyset, `licenses`) and their newest
    /// payments, each as far as the user may see.
    pub async fn customer_overview(
        &self,
        principal: &Principal,
        id: i64,
        licenses: &PageRequest,
    ) -> Result<CustomerOverview> {
        principal.require_listing(Permission::CustomersRead, None)?;
        let (after, limit) = licenses.resolve()?;
        let mut session = self.store.read().await?;
        let customer = self
            .customer_in_reach(&mut session, principal, id)
            .await?
            .ok_or(AppError::NotFound(Entity::Customer))?;
        let licenses = match principal.require_listing(Permission::LicensesRead, None) {
            Ok(product_id) => {
                let rows = session
                    .licenses(&LicenseFilter {
                        product_id,
                        customer_id: Some(id),
                        after,
                        limit: limit + 1,
                        ..LicenseFilter::default()
                    })
                    .await?;
                Some(Page::from_rows(rows, limit, |l| l.id))
            }
            Err(_) => None,
        };
        let payments = if principal
            .require_unrestricted(Permission::PaymentsRead)
            .is_ok()
        {
            Some(
                session
                    .payment_list(&PaymentFilter {
                        customer_id: Some(id),
                        limit: CUSTOMER_PAYMENTS_SHOWN,
                        ..PaymentFilter::default()
                    })
                    .await?,
            )
        } else {
            None
        };
        Ok(CustomerOverview {
            customer,
            licenses,
            payments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_prefixes_are_lower_cased_single_lines() {
        assert_eq!(customer_prefix("  ").unwrap(), None);
        assert_eq!(
            customer_prefix(" Ada@Example ").unwrap().as_deref(),
            Some("ada@example")
        );
        assert!(customer_prefix("two\nlines").is_err());
        assert!(customer_prefix(&"x".repeat(201)).is_err());
    }
}
