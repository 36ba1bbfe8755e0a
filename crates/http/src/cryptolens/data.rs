//! The `data/*` methods (data objects) and `message/*` methods.
//!
//! Each data-object operation comes in three forms: `…ToKey` (`ProductId`, `Key`),
//! `…ToMachineCode` (plus `MachineCode`) and the generic one (`ReferencerType`/`ReferencerId`
//! to add or list; `Id` to change or remove). The key forms name an object by `Id` or, when
//! `Id` is 0, by `Name`. Increments and decrements take `IntValue` without its sign, as
//! Cryptolens does, and honour `Bound` when `EnableBound` is set.

use chrono::DateTime;
use keyturn_app::{AppError, ClDataTarget, DataChange, DataSelector, NewDataObject, NewMessage};
use keyturn_core::{DataObject, DataOwner, Message};
use serde::Serialize;
use serde_json::json;

use super::methods::Call;
use super::params::Params;
use super::reply::{ok, ClError, ClResult};
use keyturn_app::Entity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Add,
    List,
    Remove,
    SetInt,
    SetString,
    Increment,
    Decrement,
}

/// Which object or owner a method names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Generic,
    Key,
    MachineCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMethod {
    Data(Operation, Form),
    GetMessages,
    CreateMessage,
    RemoveMessage,
}

impl DataMethod {
    /// From `group/method` in lower case.
    pub fn parse(path: &str) -> Option<Self> {
        if let Some(message) = path.strip_prefix("message/") {
            return match message {
                "getmessages" => Some(DataMethod::GetMessages),
                "createmessage" => Some(DataMethod::CreateMessage),
                "removemessage" => Some(DataMethod::RemoveMessage),
                _ => None,
            };
        }
        let name = path.strip_prefix("data/")?;
        let (name, form) = match (
            name.strip_suffix("tomachinecode"),
            name.strip_suffix("tokey"),
        ) {
            (Some(base), _) => (base, Form::MachineCode),
            (None, Some(base)) => (base, Form::Key),
            (None, None) => (name, Form::Generic),
        };
        let operation = match name {
            "adddataobject" => Operation::Add,
            "listdataobjects" => Operation::List,
            "removedataobject" => Operation::Remove,
            "setintvalue" => Operation::SetInt,
            "setstringvalue" => Operation::SetString,
            "incrementintvalue" => Operation::Increment,
            "decrementintvalue" => Operation::Decrement,
            _ => return None,
        };
        Some(DataMethod::Data(operation, form))
    }
}

pub async fn run(method: DataMethod, c: Call) -> ClResult {
    match method {
        DataMethod::Data(operation, form) => data(operation, form, c).await,
        DataMethod::GetMessages => get_messages(c).await,
        DataMethod::CreateMessage => create_message(c).await,
        DataMethod::RemoveMessage => remove_message(c).await,
    }
}

/// As in Cryptolens, a key the token may not reach reads the same as a key that does not exist.
fn app_error(e: AppError) -> ClError {
    match e {
        AppError::NotFound(Entity::License) => ClError::KeyOrPermission,
        e => ClError::from(e),
    }
}

async fn data(operation: Operation, form: Form, c: Call) -> ClResult {
    let p = &c.params;
    let app = &c.state.app;
    let principal = &c.principal;
    let target = target(p, form, operation)?;
    match operation {
        Operation::Add => {
            let new = NewDataObject {
                name: p.text("Name").unwrap_or_default(),
                string_value: p.text("StringValue").unwrap_or_default(),
                int_value: p.int("IntValue", 0)?,
                unique: p.bool("CheckForDuplicates", false)?,
            };
            let Some(target) = target else {
                return Err(ClError::IncorrectInput(
                    "account-wide data objects (ReferencerType User) are not supported".into(),
                ));
            };
            let object = app
                .cl_add_data_object(principal, target, new)
                .await
                .map_err(app_error)?;
            Ok(ok(json!({"id": object.id}), ""))
        }
        Operation::List => {
            let contains = p.text("Contains");
            let show_all = form == Form::Generic && p.bool("ShowAll", false)?;
            let objects = match (show_all, target) {
                (true, _) => {
                    app.cl_all_data_objects(principal, contains.as_deref())
                        .await
                }
                (false, Some(target)) => {
                    app.cl_data_objects(principal, target, contains.as_deref())
                        .await
                }
                // Nothing belongs to the account as a whole.
                (false, None) => Ok(Vec::new()),
            }
            .map_err(app_error)?;
            let items: Vec<DataItem> = objects.iter().map(|o| item(o, show_all)).collect();
            Ok(ok(json!({"dataObjects": items}), ""))
        }
        Operation::Remove => {
            let (target, which) = addressed(p, target)?;
            app.cl_remove_data_object(principal, target, which)
                .await
                .map_err(app_error)?;
            Ok(ok(json!({}), ""))
        }
        Operation::SetInt | Operation::SetString | Operation::Increment | Operation::Decrement => {
            let change = change(p, operation)?;
            let (target, which) = addressed(p, target)?;
            app.cl_change_data_object(principal, target, which, change)
                .await
                .map_err(app_error)?;
            Ok(ok(json!({}), ""))
        }
    }
}

/// The owner a call names; `None` for the account as a whole (`ReferencerType` User).
fn target(p: &Params, form: Form, operation: Operation) -> Result<Option<ClDataTarget>, ClError> {
    Ok(Some(match form {
        Form::Key => ClDataTarget::Key {
            product_id: p.required_int("ProductId")?,
            key: p.required_text("Key")?,
        },
        Form::MachineCode => ClDataTarget::Machine {
            product_id: p.required_int("ProductId")?,
            key: p.required_text("Key")?,
            machine_code: p.required_text("MachineCode")?,
        },
        Form::Generic if matches!(operation, Operation::Add | Operation::List) => {
            let id = p.int("ReferencerId", 0)?;
            match referencer_type(p)? {
                0 => return Ok(None),
                1 => ClDataTarget::Owner(DataOwner::Product(id)),
                2 => ClDataTarget::Owner(DataOwner::License(id)),
                _ => ClDataTarget::Owner(DataOwner::Machine(id)),
            }
        }
        Form::Generic => ClDataTarget::Object,
    }))
}

/// `ReferencerType`: a number, or the .NET SDK's enum name.
fn referencer_type(p: &Params) -> Result<i64, ClError> {
    let named = match p.text("ReferencerType") {
        None => return Ok(0),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "user" => Some(0),
            "product" => Some(1),
            "key" => Some(2),
            "machinecode" => Some(3),
            _ => None,
        },
    };
    match named {
        Some(n) => Ok(n),
        None => match p.int("ReferencerType", 0)? {
            n @ 0..=3 => Ok(n),
            n => Err(ClError::IncorrectInput(format!(
                "ReferencerType: {n} is not 0 (User), 1 (Product), 2 (Key) or 3 (MachineCode)"
            ))),
        },
    }
}

/// The object a change or removal names: `Id`, or (in the key forms) `Name` when `Id` is 0.
fn addressed(
    p: &Params,
    target: Option<ClDataTarget>,
) -> Result<(ClDataTarget, DataSelector), ClError> {
    let target = target.unwrap_or(ClDataTarget::Object);
    let id = p.int("Id", 0)?;
    let which = match (id, p.text("Name")) {
        (0, Some(name)) if target != ClDataTarget::Object => DataSelector::Name(name),
        (0, _) => return Err(ClError::IncorrectInput("Id or Name is required".into())),
        (id, _) => DataSelector::Id(id),
    };
    Ok((target, which))
}

fn change(p: &Params, operation: Operation) -> Result<DataChange, ClError> {
    let bound = || -> Result<Option<i64>, ClError> {
        let bound = p.int("Bound", 0)?;
        Ok(p.bool("EnableBound", false)?.then_some(bound))
    };
    // Cryptolens reads the step without its sign: 10 and -10 both move by ten.
    let amount = || -> Result<i64, ClError> {
        p.int("IntValue", 0)?
            .checked_abs()
            .ok_or_else(|| ClError::IncorrectInput("IntValue is out of range".into()))
    };
    Ok(match operation {
        Operation::SetInt => DataChange::Set {
            string_value: None,
            int_value: Some(p.int("IntValue", 0)?),
        },
        Operation::SetString => DataChange::Set {
            string_value: Some(p.text("StringValue").unwrap_or_default()),
            int_value: None,
        },
        Operation::Increment => DataChange::Increment {
            amount: amount()?,
            bound: bound()?,
        },
        _ => DataChange::Decrement {
            amount: amount()?,
            bound: bound()?,
        },
    })
}

/// A data object in a listing. With `ShowAll`, also what it belongs to (2 = key, with the
/// license id; 3 = machine code, with the activation id; 1 = product).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataItem<'a> {
    id: i64,
    name: &'a str,
    string_value: &'a str,
    int_value: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    referencer_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referencer_id: Option<i64>,
}

fn item(o: &DataObject, with_owner: bool) -> DataItem<'_> {
    let (kind, id) = match o.owner() {
        DataOwner::Product(id) => (1, id),
        DataOwner::License(id) => (2, id),
        DataOwner::Machine(id) => (3, id),
    };
    DataItem {
        id: o.id,
        name: &o.name,
        string_value: &o.string_value,
        int_value: o.int_value,
        referencer_type: with_owner.then_some(kind),
        referencer_id: with_owner.then_some(id),
    }
}

/// A message as the SDKs read it: `created` in Unix seconds.
#[derive(Serialize)]
struct MessageItem<'a> {
    id: i64,
    content: &'a str,
    created: i64,
    channel: &'a str,
}

fn message_item(m: &Message) -> MessageItem<'_> {
    MessageItem {
        id: m.id,
        content: &m.content,
        created: m.created.timestamp(),
        channel: &m.channel,
    }
}

/// `Time`: Unix seconds; 0 or absent for none.
fn time(p: &Params) -> Result<Option<DateTime<chrono::Utc>>, ClError> {
    match p.int("Time", 0)? {
        0 => Ok(None),
        t => DateTime::from_timestamp(t, 0)
            .map(Some)
            .ok_or_else(|| ClError::IncorrectInput(format!("Time: {t} is out of range"))),
    }
}

async fn get_messages(c: Call) -> ClResult {
    let channel = c.params.text("Channel");
    let after = time(&c.params)?;
    let messages = c
        .state
        .app
        .cl_messages(&c.principal, channel, after)
        .await?;
    let items: Vec<MessageItem> = messages.iter().map(message_item).collect();
    Ok(ok(json!({"messages": items}), ""))
}

async fn create_message(c: Call) -> ClResult {
    let p = &c.params;
    let new = NewMessage {
        product_id: None,
        channel: p.text("Channel").unwrap_or_default(),
        content: p.text("Content").unwrap_or_default(),
        created: time(p)?,
    };
    let message = c.state.app.cl_post_message(&c.principal, new).await?;
    Ok(ok(json!({"messageId": message.id}), ""))
}

async fn remove_message(c: Call) -> ClResult {
    let id = c.params.required_int("Id")?;
    c.state.app.cl_delete_message(&c.principal, id).await?;
    Ok(ok(json!({}), ""))
}
