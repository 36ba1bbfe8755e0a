//! Bringing a product's licenses over from another licensing server (`keyturn import
//! cryptolens`): products, customers, keys with their machines and data objects, each applied
//! in a transaction of its own.
//!
//! Importing is idempotent. A key keeps its key string, which is what finds it again; a
//! product, customer or data object is found by its id on the source, recorded when it was
//! first brought in (the `imported` table). Importing again updates what the source changed and
//! adds what is new, and never duplicates. The source wins for every field it has: a re-run
//! overwrites changes made here to an imported key's terms. Machines are only ever added
//! (never deactivated here because the source lacks them), and only as far as the key's
//! machine limit admits them: activations beyond the limit never exist.

use chrono::{DateTime, Utc};
use keyturn_core::names::display_name;
use keyturn_core::AuditAction;
use keyturn_core::{
    data_object, AllowedMachines, FeatureName, Fingerprint, LicenseKey, MachineLimit, Notes,
    PeriodDays, Permission, Product,
};
use keyturn_store::{DataOwnerRow, ImportOrigin, NewLicense, Session};
use serde::Serialize;
use serde_json::json;

use crate::catalog::prepare_product;
use crate::customers::{company, email};
use crate::licenses::record;
use crate::Entity;
use crate::{now, App, AppError, Principal, Result};

const PRODUCT: &str = "product";
const CUSTOMER: &str = "customer";
const DATA_OBJECT: &str = "data_object";

/// The server imported from.
#[derive(Debug, Clone)]
pub struct ImportSource {
    /// The kind of server (`cryptolens`).
    pub origin: String,
    /// Its address, as the import was pointed at it.
    pub server: String,
}

impl ImportSource {
    fn origin(&self) -> ImportOrigin<'_> {
        ImportOrigin {
            origin: &self.origin,
            server: &self.server,
        }
    }
}

/// A product as the source describes it.
#[derive(Debug, Clone, Default)]
pub struct ImportedProduct {
    pub source_id: i64,
    pub name: String,
    /// The source's names of its feature slots F1..F8 (empty when it has none).
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportedCustomer {
    pub source_id: i64,
    pub name: String,
    pub email: Option<String>,
    pub company: Option<String>,
}

/// A node-locked machine of a key.
#[derive(Debug, Clone)]
pub struct ImportedMachine {
    pub fingerprint: String,
    pub name: Option<String>,
    pub ip: Option<String>,
    pub activated: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ImportedDataObject {
    pub source_id: i64,
    pub name: String,
    pub string_value: String,
    pub int_value: i64,
}

#[derive(Debug, Clone)]
pub struct ImportedKey {
    pub key: String,
    pub created: DateTime<Utc>,
    /// `None`: the key has no end.
    pub expires: Option<DateTime<Utc>>,
    pub period_days: Option<i64>,
    /// F1..F8.
    pub features: [bool; 8],
    pub notes: String,
    pub blocked: bool,
    pub customer: Option<ImportedCustomer>,
    pub machines: Vec<ImportedMachine>,
    pub trial_activation: bool,
    pub max_machines: i64,
    pub allowed_machines: Vec<String>,
    pub data_objects: Vec<ImportedDataObject>,
}

/// What importing one row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Imported {
    Created,
    Updated,
    Unchanged,
}

/// What importing one key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyImported {
    pub key: Imported,
    pub customer: Option<Imported>,
    pub machines_added: usize,
    /// Machines left out: beyond the key's machine limit, or not a valid machine code.
    pub machines_left_out: usize,
    pub data_objects: usize,
    /// Features appended to the product for slots it did not have yet.
    pub features_added: Vec<String>,
}

/// A feature name made from a source's slot name: lower case, letters, digits and `-_.:`,
/// `f<n>` when nothing of it is left, and never one the product already has.
fn feature_name(source: Option<&str>, slot: usize, taken: &[String]) -> String {
    let mut name: String = source
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter_map(|c| match c {
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') => Some(c),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .take(60)
        .collect();
    name = name.trim_matches('-').to_owned();
    if name.is_empty() {
        name = format!("f{slot}");
    }
    let mut candidate = name.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

/// A customer's fields as this server accepts them: an invalid email or company is dropped
/// rather than losing the customer, and a customer without a name is named by what it has.
fn customer_fields(c: &ImportedCustomer) -> (String, Option<String>, Option<String>) {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mail = email(given(&c.email).as_deref()).ok().flatten();
    let firm = company(given(&c.company).as_deref()).ok().flatten();
    let name = display_name("name", &c.name)
        .ok()
        .or_else(|| mail.clone())
        .or_else(|| firm.clone())
        .unwrap_or_else(|| format!("Customer {}", c.source_id));
    (name, mail, firm)
}

/// Finds or creates the customer a source customer became (or, the first time, the customer
/// here with its email), bringing its fields up to date.
async fn upsert_customer(
    s: &mut Session,
    source: &ImportSource,
    c: &ImportedCustomer,
    at: DateTime<Utc>,
) -> Result<(i64, Imported)> {
    let (name, mail, firm) = customer_fields(c);
    let source_id = c.source_id.to_string();
    let mut known = match s.imported_id(source.origin(), CUSTOMER, &source_id).await? {
        Some(id) => s.customer(id).await?,
        None => None,
    };
    if known.is_none() {
        // Imported for the first time: a customer here with the same email (one a payment
        // created before the move, say) is the same person, not a second one.
        if let Some(id) = match &mail {
            Some(mail) => s.customer_by_email(mail).await?,
            None => None,
        } {
            s.record_imported(source.origin(), CUSTOMER, &source_id, id)
                .await?;
            known = s.customer(id).await?;
        }
    }
    match known {
        Some(mut existing) => {
            if existing.name == name && existing.email == mail && existing.company == firm {
                return Ok((existing.id, Imported::Unchanged));
            }
            existing.name = name;
            existing.email = mail;
            existing.company = firm;
            crate::customers::save_customer(s, &existing, at).await?;
            Ok((existing.id, Imported::Updated))
        }
        None => {
            let created =
                crate::customers::insert_customer(s, &name, mail.as_deref(), firm.as_deref(), at)
                    .await?;
            s.record_imported(source.origin(), CUSTOMER, &source_id, created.id)
                .await?;
            Ok((created.id, Imported::Created))
        }
    }
}

impl App {
    /// The product a source product becomes: the one it became before, or `into`, or a new
    /// one with the source's name and eight features named after the source's slots.
    pub async fn import_product(
        &self,
        principal: &Principal,
        source: &ImportSource,
        product: &ImportedProduct,
        into: Option<i64>,
    ) -> Result<(Product, Imported)> {
        principal.require_unrestricted(Permission::Admin)?;
        let source_id = product.source_id.to_string();
        let fresh = {
            let mut session = self.store.read().await?;
            session
                .imported_id(source.origin(), PRODUCT, &source_id)
                .await?
                .is_none()
        };
        // A product to create is prepared (keys drawn) before the transaction opens.
        let prepared = match (fresh, into) {
            (true, None) => {
                let mut features: Vec<String> = Vec::with_capacity(8);
                for slot in 1..=8 {
                    let name = feature_name(
                        product.features.get(slot - 1).map(String::as_str),
                        slot,
                        &features,
                    );
                    features.push(name);
                }
                let name = display_name("name", &product.name)
                    .unwrap_or_else(|_| format!("Imported product {source_id}"));
                Some(
                    prepare_product(crate::NewProductInput {
                        name,
                        features,
                        ..Default::default()
                    })
                    .await?,
                )
            }
            _ => None,
        };
        let at = now();
        let mut session = self.store.write().await?;
        let before = session
            .imported_id(source.origin(), PRODUCT, &source_id)
            .await?;
        let (local, outcome) = match (before, into, prepared) {
            (Some(was), Some(into), _) if was != into => {
                return Err(AppError::Conflict(format!(
                    "product {source_id} of {} was imported into product {was} before, not {into}",
                    source.server
                )))
            }
            (Some(was), _, _) => (
                session
                    .product(was)
                    .await?
                    .ok_or(AppError::NotFound(Entity::Product))?,
                Imported::Unchanged,
            ),
            (None, Some(into), _) => (
                session
                    .product(into)
                    .await?
                    .ok_or(AppError::NotFound(Entity::Product))?,
                Imported::Updated,
            ),
            (None, None, Some(prepared)) => (
                self.insert_product(&mut session, prepared, at).await?,
                Imported::Created,
            ),
            // Another import recorded it and was then undone between the two looks.
            (None, None, None) => {
                return Err(AppError::Conflict(
                    "the product changed while it was being imported; run the import again".into(),
                ))
            }
        };
        session
            .record_imported(source.origin(), PRODUCT, &source_id, local.id)
            .await?;
        session.commit().await?;
        Ok((local, outcome))
    }

    /// A source customer, created here or brought up to date.
    pub async fn import_customer(
        &self,
        principal: &Principal,
        source: &ImportSource,
        customer: &ImportedCustomer,
    ) -> Result<(i64, Imported)> {
        principal.require_unrestricted(Permission::Admin)?;
        let mut session = self.store.write().await?;
        let out = upsert_customer(&mut session, source, customer, now()).await?;
        session.commit().await?;
        Ok(out)
    }

    /// A product's own data objects from the source, created here or brought up to date.
    pub async fn import_product_data_objects(
        &self,
        principal: &Principal,
        source: &ImportSource,
        product_id: i64,
        objects: &[ImportedDataObject],
    ) -> Result<usize> {
        principal.require_unrestricted(Permission::Admin)?;
        let mut session = self.store.write().await?;
        session
            .product(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let owner = DataOwnerRow {
            owner: keyturn_core::DataOwner::Product(product_id),
            product_id,
            license_id: None,
        };
        let n = upsert_data_objects(&mut session, source, owner, objects, now()).await?;
        session.commit().await?;
        Ok(n)
    }

    /// One key of the source, into `product_id`: created under its own key string, or brought
    /// up to date when it was imported before. `source_features` names the source's slots, for
    /// slots the product does not have yet.
    pub async fn import_key(
        &self,
        principal: &Principal,
        source: &ImportSource,
        product_id: i64,
        source_features: &[String],
        k: &ImportedKey,
    ) -> Result<KeyImported> {
        principal.require_unrestricted(Permission::Admin)?;
        let key = LicenseKey::parse(&k.key)?.into_string();
        let notes = Notes::parse(k.notes.clone())?.into_string();
        let allowed = AllowedMachines::parse(&k.allowed_machines)?.into_vec();
        let max_machines = MachineLimit::parse(k.max_machines)?.get();
        let period_days = PeriodDays::parse_optional(k.period_days.filter(|d| *d > 0))?;
        let expires = k
            .expires
            .map(|e| keyturn_core::dates::in_range("expires", e))
            .transpose()?;
        let created = keyturn_core::dates::in_range("created", k.created)?;
        let at = now();
        let actor = principal.actor.clone();
        let mut session = self.store.write().await?;
        let mut product = session
            .lock_product(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;

        // The product's features for the slots the key uses, appended when it lacks them.
        let mut features_added = Vec::new();
        let highest = k.features.iter().rposition(|on| *on).map_or(0, |i| i + 1);
        while product.features.len() < highest {
            let slot = product.features.len() + 1;
            let name = feature_name(
                source_features.get(slot - 1).map(String::as_str),
                slot,
                &product.features,
            );
            FeatureName::parse(&name)?;
            product.features.push(name.clone());
            features_added.push(name);
        }
        if !features_added.is_empty() {
            session.update_product(&product).await?;
        }
        let features: Vec<String> = (0..8)
            .filter(|i| k.features[*i])
            .map(|i| product.features[i].clone())
            .collect();

        let customer = match &k.customer {
            Some(c) => Some(upsert_customer(&mut session, source, c, at).await?),
            None => None,
        };
        let customer_id = customer.map(|(id, _)| id);

        let existing = session.license_by_key(&key).await?;
        let (license, outcome) = match existing {
            Some(l) if l.product_id != product_id => {
                return Err(AppError::Conflict(format!(
                    "key {key} belongs to product {} here, not {product_id}",
                    l.product_id
                )))
            }
            Some(l) => {
                let mut license = session
                    .lock_license(l.id)
                    .await?
                    .ok_or(AppError::NotFound(Entity::License))?;
                let before = license.clone();
                license.customer_id = customer_id;
                license.expires = expires;
                license.period_days = period_days;
                license.features = features;
                license.max_machines = max_machines;
                license.notes = notes;
                license.blocked = k.blocked;
                license.trial_activation = k.trial_activation;
                license.allowed_machines = allowed;
                if license == before {
                    (license, Imported::Unchanged)
                } else {
                    session.update_license(&license, at).await?;
                    record(
                        &mut session,
                        license.id,
                        &actor,
                        AuditAction::Imported,
                        json!({"from": source.server, "updated": true}),
                        at,
                    )
                    .await?;
                    (license, Imported::Updated)
                }
            }
            None => {
                let new = NewLicense {
                    key: key.clone(),
                    product_id,
                    plan_id: None,
                    customer_id,
                    expires,
                    period_days,
                    features,
                    max_machines,
                    floating_lease_seconds: None,
                    trial: false,
                    notes,
                    blocked: k.blocked,
                    metadata: json!({}),
                    trial_activation: k.trial_activation,
                    allowed_machines: allowed,
                };
                let license = session
                    .insert_license(&new, created)
                    .await?
                    .ok_or_else(|| AppError::Conflict(format!("key {key} is taken")))?;
                record(
                    &mut session,
                    license.id,
                    &actor,
                    AuditAction::Imported,
                    json!({"from": source.server}),
                    at,
                )
                .await?;
                (license, Imported::Created)
            }
        };

        // Machines the source has activated, as far as the limit admits them.
        let mut live = session.live_activations(license.id, at).await?;
        let (mut machines_added, mut machines_left_out) = (0, 0);
        for m in &k.machines {
            let Ok(fingerprint) = Fingerprint::parse(&m.fingerprint) else {
                machines_left_out += 1;
                continue;
            };
            let fingerprint = fingerprint.as_str();
            if live.iter().any(|a| a.fingerprint == fingerprint) {
                continue;
            }
            let node_locked = live.iter().filter(|a| a.lease_expires.is_none()).count();
            let within = license.max_machines == 0
                || (node_locked as i64) < license.max_machines
                || license.allowed_machines.iter().any(|a| a == fingerprint);
            if !within {
                machines_left_out += 1;
                continue;
            }
            let activated = keyturn_core::dates::in_range("time", m.activated).unwrap_or(at);
            let name = m.name.as_deref().filter(|n| !n.is_empty());
            let ip = m.ip.as_deref().filter(|n| !n.is_empty());
            let activation = match session.activation_of(license.id, fingerprint).await? {
                // A lapsed floating seat of the same machine: replaced by the node-locked one.
                Some(old) => {
                    session.delete_activation(old.id).await?;
                    session
                        .insert_activation(license.id, fingerprint, name, ip, None, activated)
                        .await?
                }
                None => {
                    session
                        .insert_activation(license.id, fingerprint, name, ip, None, activated)
                        .await?
                }
            };
            live.push(activation);
            machines_added += 1;
        }

        let owner = DataOwnerRow {
            owner: keyturn_core::DataOwner::License(license.id),
            product_id,
            license_id: Some(license.id),
        };
        let data_objects =
            upsert_data_objects(&mut session, source, owner, &k.data_objects, at).await?;
        session.commit().await?;
        Ok(KeyImported {
            key: outcome,
            customer: customer.map(|(_, o)| o),
            machines_added,
            machines_left_out,
            data_objects,
            features_added,
        })
    }
}

/// Creates or updates an owner's data objects from the source; how many were created or
/// changed. Values this server cannot hold (a 33-bit integer, an overlong text) are refused.
async fn upsert_data_objects(
    s: &mut Session,
    source: &ImportSource,
    owner: DataOwnerRow,
    objects: &[ImportedDataObject],
    at: DateTime<Utc>,
) -> Result<usize> {
    let mut changed = 0;
    for o in objects {
        let name = data_object::name(&o.name)?;
        let text = data_object::string_value(&o.string_value)?;
        let int = i32::try_from(o.int_value).map_err(|_| {
            AppError::invalid(
                "int_value",
                format!(
                    "data object {:?} holds {}, beyond 32 bits",
                    o.name, o.int_value
                ),
            )
        })?;
        let source_id = o.source_id.to_string();
        let known = match s
            .imported_id(source.origin(), DATA_OBJECT, &source_id)
            .await?
        {
            Some(id) => s
                .data_object(id)
                .await?
                .filter(|d| d.owner() == owner.owner),
            None => None,
        };
        match known {
            Some(d) if d.string_value == text && d.int_value == int => {}
            Some(d) => {
                s.set_data_values(d.id, Some(&text), Some(int), at).await?;
                changed += 1;
            }
            None => {
                if s.count_data_objects(owner.owner).await? >= data_object::MAX_PER_OWNER {
                    return Err(AppError::invalid(
                        "data_objects",
                        format!(
                            "more than {} data objects for one owner",
                            data_object::MAX_PER_OWNER
                        ),
                    ));
                }
                let created = s.insert_data_object(owner, &name, &text, int, at).await?;
                s.record_imported(source.origin(), DATA_OBJECT, &source_id, created.id)
                    .await?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_from_source_slots() {
        let taken = vec!["pro".to_owned(), "f3".to_owned()];
        assert_eq!(feature_name(Some("Pro Version"), 1, &taken), "pro-version");
        assert_eq!(feature_name(Some("  PRO "), 1, &taken), "pro-2");
        assert_eq!(feature_name(Some("!!!"), 4, &taken), "f4");
        assert_eq!(feature_name(None, 3, &taken), "f3-2");
        assert_eq!(
            feature_name(Some("Time-Limited (trial)"), 2, &[]),
            "time-limited-trial"
        );
        let long = "x".repeat(300);
        assert!(FeatureName::parse(&feature_name(Some(&long), 1, &[])).is_ok());
    }

    #[test]
    fn customers_are_never_lost_to_a_bad_field() {
        let c = ImportedCustomer {
            source_id: 9,
            name: " ".into(),
            email: Some("not an email".into()),
            company: Some("Acme".into()),
        };
        assert_eq!(
            customer_fields(&c),
            ("Acme".into(), None, Some("Acme".into()))
        );
        let c = ImportedCustomer {
            source_id: 9,
            ..Default::default()
        };
        assert_eq!(customer_fields(&c).0, "Customer 9");
    }
}
