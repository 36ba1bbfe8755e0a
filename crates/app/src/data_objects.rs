//! Data objects of products, licenses and activated machines: custom fields and usage counters.
//!
//! Who reaches which:
//! - Native API: a license's and its machines' objects with `licenses:read`/`licenses:write`,
//!   a product's with `products:read`/`products:write`, within the token's reach as for the
//!   license or product itself ([`Principal`]): another product's owner is answered as a
//!   missing one, and a key-locked token reaches only its license's and its machines' objects.
//! - Cryptolens API: the operation's permission (`cryptolens:incrementintvalue` covers
//!   `IncrementIntValue`, `…ToKey` and `…ToMachineCode`) and the token's product lock, plus its
//!   key lock. The key and machine-code forms name a key and, as in Cryptolens, need a token
//!   whose key lock is -1 (any key the caller names) or that key's id: any other token gets the
//!   same "not found" as a key that does not exist, so a token shipped inside a program learns
//!   nothing about other keys. The generic forms name an owner or object by id: refused to a
//!   -1 token (which must name its key), and a token locked to one key reaches only that key's
//!   objects and its machines'.
//!
//! A counter changes in one conditional UPDATE ([`Session::step_data_int`]), never by reading
//! and writing back, so concurrent increments on any number of nodes end exactly at the bound.
//! Adding an object holds its owner's row, so the per-owner cap and `CheckForDuplicates` hold
//! under concurrency too. Every change of a license's or machine's objects is in the license's
//! audit log, in the same transaction.

use keyturn_core::data_object::{self, Step, MAX_PER_OWNER};
use keyturn_core::AuditAction;
use keyturn_core::{DataObject, DataOwner, License, LicenseKey, Permission};
use keyturn_store::{DataOwnerRow, Session};
use serde_json::json;

use crate::licenses::record;
use crate::Entity;
use crate::{now, Actor, App, AppError, Principal, Result};

/// The most objects one generic listing (`ListDataObjects` with `ShowAll`) returns.
const MAX_LIST: i64 = 1000;

/// How a call names one object of an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSelector {
    Id(i64),
    /// Its name, which must be unique among the owner's objects.
    Name(String),
}

#[derive(Debug, Clone, Default)]
pub struct NewDataObject {
    pub name: String,
    pub string_value: String,
    pub int_value: i64,
    /// Refuse the object if the owner already has one of this name (`CheckForDuplicates`).
    pub unique: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataChange {
    /// Sets the values given.
    Set {
        string_value: Option<String>,
        int_value: Option<i64>,
    },
    /// Adds `amount` (at least 0), staying at or below `bound`.
    Increment { amount: i64, bound: Option<i64> },
    /// Subtracts `amount` (at least 0), staying at or above `bound`.
    Decrement { amount: i64, bound: Option<i64> },
}

impl DataChange {
    /// The Cryptolens permissions a change needs.
    fn cl_permissions(&self) -> Vec<Permission> {
        match self {
            DataChange::Set {
                string_value,
                int_value,
            } => {
                let mut needed = Vec::new();
                if int_value.is_some() {
                    needed.push(Permission::ClSetIntValue);
                }
                if string_value.is_some() {
                    needed.push(Permission::ClSetStringValue);
                }
                needed
            }
            DataChange::Increment { .. } => vec![Permission::ClIncrementIntValue],
            DataChange::Decrement { .. } => vec![Permission::ClDecrementIntValue],
        }
    }

    fn action(&self) -> AuditAction {
        match self {
            DataChange::Set { .. } => AuditAction::DataObjectSet,
            DataChange::Increment { .. } => AuditAction::DataObjectIncremented,
            DataChange::Decrement { .. } => AuditAction::DataObjectDecremented,
        }
    }
}

/// Where a Cryptolens data-object method points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClDataTarget {
    /// `…ToKey`: `ProductId` and `Key`.
    Key { product_id: i64, key: String },
    /// `…ToMachineCode`: a machine activated on the key.
    Machine {
        product_id: i64,
        key: String,
        machine_code: String,
    },
    /// The generic methods' `ReferencerType` and `ReferencerId`.
    Owner(DataOwner),
    /// The generic methods that name the object by `Id` alone.
    Object,
}

/// Whether a native call reads or changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

impl App {
    // ---- native API -------------------------------------------------------------------

    /// The owner's objects in id order.
    pub async fn data_objects(
        &self,
        principal: &Principal,
        owner: DataOwner,
    ) -> Result<Vec<DataObject>> {
        let row = self.owner_row(principal, owner, Access::Read).await?;
        self.objects_of(row.owner, None).await
    }

    pub async fn add_data_object(
        &self,
        principal: &Principal,
        owner: DataOwner,
        new: NewDataObject,
    ) -> Result<DataObject> {
        let row = self.owner_row(principal, owner, Access::Write).await?;
        self.add_to(&principal.actor, row, new).await
    }

    pub async fn change_data_object(
        &self,
        principal: &Principal,
        owner: DataOwner,
        id: i64,
        change: DataChange,
    ) -> Result<DataObject> {
        let row = self.owner_row(principal, owner, Access::Write).await?;
        let object = self.select(row.owner, &DataSelector::Id(id)).await?;
        self.change(&principal.actor, object, change).await
    }

    pub async fn remove_data_object(
        &self,
        principal: &Principal,
        owner: DataOwner,
        id: i64,
    ) -> Result<()> {
        let row = self.owner_row(principal, owner, Access::Write).await?;
        let object = self.select(row.owner, &DataSelector::Id(id)).await?;
        self.remove(&principal.actor, object).await
    }

    /// An owner as the native API reaches it: by the permission of what owns it, within the
    /// token's reach as for the license or product itself (a key-locked token reaches its
    /// license's objects and its machines'; another product's owner is as if missing).
    async fn owner_row(
        &self,
        principal: &Principal,
        owner: DataOwner,
        access: Access,
    ) -> Result<DataOwnerRow> {
        let needed = match (owner, access) {
            (DataOwner::Product(_), Access::Read) => Permission::ProductsRead,
            (DataOwner::Product(_), Access::Write) => Permission::ProductsWrite,
            (_, Access::Read) => Permission::LicensesRead,
            (_, Access::Write) => Permission::LicensesWrite,
        };
        principal.require(needed)?;
        let found = self.find_owner(owner).await?;
        let license = found.as_ref().and_then(|(_, l)| l.as_ref());
        match owner {
            DataOwner::Product(_) => principal.require_in_product(
                needed,
                found.as_ref().map(|(row, _)| row.product_id),
                Entity::Product,
            )?,
            DataOwner::License(_) => principal.require_license(needed, license)?,
            DataOwner::Machine(_) => {
                principal.require_license_part(needed, license, Entity::Activation)?
            }
        }
        found.map(|(row, _)| row).ok_or_else(|| missing(owner))
    }

    // ---- Cryptolens API ---------------------------------------------------------------

    /// `AddDataObject`, `AddDataObjectToKey`, `AddDataObjectToMachineCode`.
    pub async fn cl_add_data_object(
        &self,
        principal: &Principal,
        target: ClDataTarget,
        new: NewDataObject,
    ) -> Result<DataObject> {
        principal.require(Permission::ClAddDataObject)?;
        let row = self.cl_owner(principal, &target).await?;
        self.add_to(&principal.actor, row, new).await
    }

    /// `ListDataObjects…`: the owner's objects whose name contains `contains`.
    pub async fn cl_data_objects(
        &self,
        principal: &Principal,
        target: ClDataTarget,
        contains: Option<&str>,
    ) -> Result<Vec<DataObject>> {
        principal.require(Permission::ClListDataObjects)?;
        let row = self.cl_owner(principal, &target).await?;
        self.objects_of(row.owner, contains).await
    }

    /// `ListDataObjects` with `ShowAll`: every object the token reaches, with its owner.
    pub async fn cl_all_data_objects(
        &self,
        principal: &Principal,
        contains: Option<&str>,
    ) -> Result<Vec<DataObject>> {
        principal.require(Permission::ClListDataObjects)?;
        match principal.key_lock() {
            None => Ok(self
                .store
                .read()
                .await?
                .all_data_objects(principal.product_scope(), contains, MAX_LIST)
                .await?),
            Some(lock) if lock > 0 => {
                let target = ClDataTarget::Owner(DataOwner::License(lock));
                let row = self.cl_owner(principal, &target).await?;
                self.objects_of(row.owner, contains).await
            }
            Some(_) => Err(AppError::NotFound(Entity::License)),
        }
    }

    /// `SetIntValue…`, `SetStringValue…`, `IncrementIntValue…`, `DecrementIntValue…`.
    pub async fn cl_change_data_object(
        &self,
        principal: &Principal,
        target: ClDataTarget,
        which: DataSelector,
        change: DataChange,
    ) -> Result<DataObject> {
        for needed in change.cl_permissions() {
            principal.require(needed)?;
        }
        let object = self.cl_object(principal, target, &which).await?;
        self.change(&principal.actor, object, change).await
    }

    /// `RemoveDataObject…`.
    pub async fn cl_remove_data_object(
        &self,
        principal: &Principal,
        target: ClDataTarget,
        which: DataSelector,
    ) -> Result<()> {
        principal.require(Permission::ClRemoveDataObject)?;
        let object = self.cl_object(principal, target, &which).await?;
        self.remove(&principal.actor, object).await
    }

    /// The object a Cryptolens call names: within its target, or by id alone.
    async fn cl_object(
        &self,
        principal: &Principal,
        target: ClDataTarget,
        which: &DataSelector,
    ) -> Result<DataObject> {
        if target == ClDataTarget::Object {
            let DataSelector::Id(id) = which else {
                return Err(AppError::invalid("id", "is required"));
            };
            let found = self.store.read().await?.data_object(*id).await?;
            let reached = match found {
                Some(object) => self
                    .cl_owner(principal, &ClDataTarget::Owner(object.owner()))
                    .await
                    .map(|_| object),
                None => Err(AppError::NotFound(Entity::DataObject)),
            };
            // An object beyond the token's reach is answered as a missing one: to a key-locked
            // token as a key it may not use, to others as an object that does not exist.
            return match reached {
                Err(AppError::NotFound(_)) if principal.key_lock().is_some() => {
                    Err(AppError::NotFound(Entity::License))
                }
                Err(AppError::NotFound(_)) => Err(AppError::NotFound(Entity::DataObject)),
                other => other,
            };
        }
        let row = self.cl_owner(principal, &target).await?;
        self.select(row.owner, which).await
    }

    /// The owner a Cryptolens call points at, after the product and key locks.
    async fn cl_owner(&self, principal: &Principal, target: &ClDataTarget) -> Result<DataOwnerRow> {
        let lock = principal.key_lock();
        let out_of_reach = || AppError::NotFound(Entity::License);
        let (product_id, key, machine_code) = match target {
            ClDataTarget::Object => return Err(AppError::invalid("id", "is required")),
            ClDataTarget::Owner(owner) => {
                // Another product's owner is answered as a missing one.
                let row = match self.find_owner(*owner).await? {
                    Some((row, _)) if principal.reaches_product(row.product_id) => row,
                    _ => return Err(missing(*owner)),
                };
                // The generic forms are for unlocked tokens, or a token locked to this key.
                match (lock, row.license_id) {
                    (None, _) => {}
                    (Some(lock), Some(license)) if lock == license => {}
                    _ => return Err(out_of_reach()),
                }
                return Ok(row);
            }
            ClDataTarget::Key { product_id, key } => (*product_id, key, None),
            ClDataTarget::Machine {
                product_id,
                key,
                machine_code,
            } => (*product_id, key, Some(machine_code)),
        };
        principal.require_product(product_id)?;
        let key = LicenseKey::parse(key).map_err(|_| out_of_reach())?;
        self.product_row(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let state = self
            .license_state(key.as_str())
            .await?
            .filter(|s| s.license.product_id == product_id)
            .ok_or_else(out_of_reach)?;
        let license = &state.license;
        match lock {
            Some(lock) if lock < 0 || lock == license.id => {}
            _ => return Err(out_of_reach()),
        }
        let owner = match machine_code {
            None => DataOwner::License(license.id),
            Some(code) => {
                let activation = state
                    .live(now())
                    .iter()
                    .find(|a| a.fingerprint == *code)
                    .map(|a| a.id)
                    .ok_or(AppError::NotFound(Entity::Activation))?;
                DataOwner::Machine(activation)
            }
        };
        Ok(DataOwnerRow {
            owner,
            product_id,
            license_id: Some(license.id),
        })
    }

    // ---- shared -----------------------------------------------------------------------

    /// What an owner id refers to, with the license it belongs to (none for a product);
    /// `None` when it does not exist.
    async fn find_owner(
        &self,
        owner: DataOwner,
    ) -> Result<Option<(DataOwnerRow, Option<License>)>> {
        let mut session = self.store.read().await?;
        let (product_id, license) = match owner {
            DataOwner::Product(id) => match session.product(id).await? {
                Some(product) => (product.id, None),
                None => return Ok(None),
            },
            DataOwner::License(id) => match session.license(id).await? {
                Some(license) => (license.product_id, Some(license)),
                None => return Ok(None),
            },
            DataOwner::Machine(id) => {
                let Some(activation) = session.activation(id).await? else {
                    return Ok(None);
                };
                match session.license(activation.license_id).await? {
                    Some(license) => (license.product_id, Some(license)),
                    None => return Ok(None),
                }
            }
        };
        let row = DataOwnerRow {
            owner,
            product_id,
            license_id: license.as_ref().map(|l| l.id),
        };
        Ok(Some((row, license)))
    }

    async fn objects_of(
        &self,
        owner: DataOwner,
        contains: Option<&str>,
    ) -> Result<Vec<DataObject>> {
        Ok(self
            .store
            .read()
            .await?
            .data_objects(owner, contains, MAX_PER_OWNER)
            .await?)
    }

    /// One object of `owner`.
    async fn select(&self, owner: DataOwner, which: &DataSelector) -> Result<DataObject> {
        let mut session = self.store.read().await?;
        let id = match which {
            DataSelector::Id(id) => *id,
            DataSelector::Name(name) => match session.data_objects_named(owner, name).await?[..] {
                [id] => id,
                [] => return Err(AppError::NotFound(Entity::DataObject)),
                _ => {
                    return Err(AppError::invalid(
                        "name",
                        format!("several data objects are called {name:?}; name one by its id"),
                    ))
                }
            },
        };
        session
            .data_object(id)
            .await?
            .filter(|o| o.owner() == owner)
            .ok_or(AppError::NotFound(Entity::DataObject))
    }

    async fn add_to(
        &self,
        actor: &Actor,
        row: DataOwnerRow,
        new: NewDataObject,
    ) -> Result<DataObject> {
        let name = data_object::name(&new.name)?;
        let string_value = data_object::string_value(&new.string_value)?;
        let int_value = data_object::int_value("int_value", new.int_value)?;
        let mut session = self.store.write().await?;
        hold_owner(&mut session, row).await?;
        if new.unique
            && !session
                .data_objects_named(row.owner, &name)
                .await?
                .is_empty()
        {
            return Err(AppError::Conflict(format!(
                "a data object called {name:?} exists already"
            )));
        }
        if session.count_data_objects(row.owner).await? >= MAX_PER_OWNER {
            return Err(AppError::Conflict(format!(
                "at most {MAX_PER_OWNER} data objects per product, license or machine"
            )));
        }
        let at = now();
        let object = session
            .insert_data_object(row, &name, &string_value, int_value, at)
            .await?;
        audit(&mut session, actor, &object, AuditAction::DataObjectAdded).await?;
        session.commit().await?;
        Ok(object)
    }

    async fn change(
        &self,
        actor: &Actor,
        object: DataObject,
        change: DataChange,
    ) -> Result<DataObject> {
        let at = now();
        let mut session = self.store.write().await?;
        let changed = match &change {
            DataChange::Set {
                string_value,
                int_value,
            } => {
                let string_value = string_value
                    .as_deref()
                    .map(data_object::string_value)
                    .transpose()?;
                let int_value = int_value
                    .map(|v| data_object::int_value("int_value", v))
                    .transpose()?;
                session
                    .set_data_values(object.id, string_value.as_deref(), int_value, at)
                    .await?
            }
            DataChange::Increment { amount, bound } | DataChange::Decrement { amount, bound } => {
                let step = match change {
                    DataChange::Increment { .. } => Step::increment(*amount, *bound)?,
                    _ => Step::decrement(*amount, *bound)?,
                };
                match session.step_data_int(object.id, step, at).await? {
                    Some(changed) => Some(changed),
                    None if session.data_object(object.id).await?.is_some() => {
                        return Err(AppError::BoundReached)
                    }
                    None => None,
                }
            }
        };
        let changed = changed.ok_or(AppError::NotFound(Entity::DataObject))?;
        audit(&mut session, actor, &changed, change.action()).await?;
        session.commit().await?;
        Ok(changed)
    }

    async fn remove(&self, actor: &Actor, object: DataObject) -> Result<()> {
        let mut session = self.store.write().await?;
        let removed = session
            .delete_data_object(object.id)
            .await?
            .ok_or(AppError::NotFound(Entity::DataObject))?;
        audit(
            &mut session,
            actor,
            &removed,
            AuditAction::DataObjectRemoved,
        )
        .await?;
        session.commit().await?;
        Ok(())
    }

    /// A license's own data objects, as its Cryptolens replies show them: loaded with the
    /// cached license state the first time a reply needs them.
    pub(crate) async fn license_data_objects(
        &self,
        state: &crate::LicenseState,
    ) -> Result<Vec<DataObject>> {
        let id = state.license.id;
        let objects = state
            .data_objects
            .get_or_try_init(|| async {
                let mut session = self.store.read().await?;
                Ok::<_, AppError>(
                    session
                        .data_objects(DataOwner::License(id), None, MAX_PER_OWNER)
                        .await?,
                )
            })
            .await?;
        Ok(objects.clone())
    }
}

/// Holds the owner's row until commit, so concurrent adds to one owner take turns.
async fn hold_owner(session: &mut Session, row: DataOwnerRow) -> Result<()> {
    match (row.owner, row.license_id) {
        (DataOwner::Product(id), _) => {
            session
                .lock_product(id)
                .await?
                .ok_or(AppError::NotFound(Entity::Product))?;
        }
        (owner, Some(license)) => {
            session
                .lock_license(license)
                .await?
                .ok_or(AppError::NotFound(Entity::License))?;
            // Activations change only under their license's lock, so this one stays.
            if let DataOwner::Machine(id) = owner {
                session
                    .activation(id)
                    .await?
                    .ok_or(AppError::NotFound(Entity::Activation))?;
            }
        }
        (_, None) => return Err(AppError::NotFound(Entity::License)),
    }
    Ok(())
}

/// A change of a license's or machine's objects, in the license's audit log.
async fn audit(
    session: &mut Session,
    actor: &Actor,
    object: &DataObject,
    action: AuditAction,
) -> Result<()> {
    let Some(license_id) = object.license_id else {
        return Ok(());
    };
    let details = json!({
        "data_object": object.id,
        "name": object.name,
        "machine": object.activation_id,
        "int_value": object.int_value,
    });
    record(session, license_id, actor, action, details, now()).await
}

/// The answer for an owner that does not exist (or lies beyond the caller's reach).
fn missing(owner: DataOwner) -> AppError {
    AppError::NotFound(match owner {
        DataOwner::Product(_) => Entity::Product,
        DataOwner::License(_) => Entity::License,
        DataOwner::Machine(_) => Entity::Activation,
    })
}
