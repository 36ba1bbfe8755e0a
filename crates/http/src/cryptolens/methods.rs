//! One handler per Cryptolens method: read the parameters by their Cryptolens names and
//! defaults, call one use case, render Cryptolens's reply.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, DurationRound, Utc};
use keyturn_app::{
    AppError, ClActivation, ClLicense, ClNewKey, ClProduct, CustomerPatch, LicensePatch,
    NewCustomerInput, Principal, SignatureSlot,
};
use keyturn_core::{Customer, Permission, RsaDigest};
use serde::Serialize;
use serde_json::{json, Value};

use super::data::DataMethod;
use super::license::{self, iso, Hidden};
use super::params::{Params, SignMethod};
use super::reply::{json_response, ok, ClError, ClResult};
use crate::AppState;

/// One authenticated call.
pub struct Call {
    pub state: AppState,
    pub principal: Principal,
    pub params: Params,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Activate,
    GetKey,
    Deactivate,
    CreateKey,
    CreateTrialKey,
    ExtendLicense,
    BlockKey,
    UnblockKey,
    AddFeature,
    RemoveFeature,
    MachineLockLimit,
    ChangeNotes,
    ChangeCustomer,
    KeyLock,
    AddCustomer,
    EditCustomer,
    RemoveCustomer,
    GetCustomerLicenses,
    GetCustomerLicensesBySecret,
    GetCustomers,
    GetKeys,
    GetProducts,
    /// Data objects and messages.
    Data(DataMethod),
}

impl Method {
    /// From `group/method` in lower case.
    pub fn parse(path: &str) -> Option<Self> {
        use Method::*;
        Some(match path {
            "key/activate" => Activate,
            "key/getkey" => GetKey,
            "key/deactivate" => Deactivate,
            "key/createkey" => CreateKey,
            "key/createtrialkey" => CreateTrialKey,
            "key/extendlicense" => ExtendLicense,
            "key/blockkey" => BlockKey,
            "key/unblockkey" => UnblockKey,
            "key/addfeature" => AddFeature,
            "key/removefeature" => RemoveFeature,
            "key/machinelocklimit" => MachineLockLimit,
            "key/changenotes" => ChangeNotes,
            "key/changecustomer" => ChangeCustomer,
            "auth/keylock" => KeyLock,
            "customer/addcustomer" => AddCustomer,
            "customer/editcustomer" => EditCustomer,
            "customer/removecustomer" => RemoveCustomer,
            "customer/getcustomerlicenses" => GetCustomerLicenses,
            "customer/getcustomerlicensesbysecret" => GetCustomerLicensesBySecret,
            "customer/getcustomers" => GetCustomers,
            "product/getkeys" => GetKeys,
            "product/getproducts" => GetProducts,
            _ => return DataMethod::parse(path).map(Data),
        })
    }
}

/// Cryptolens methods Keyturn does not serve, by their lower-case path (a trailing `/` names
/// a whole group): how Cryptolens spells them, and what to use instead.
const NOT_SUPPORTED: [(&str, &str, &str); 7] = [
    (
        "key/changereseller",
        "key/ChangeReseller",
        "Keyturn has no resellers.",
    ),
    (
        "key/createkeyfromtemplate",
        "key/CreateKeyFromTemplate",
        "Create keys with key/CreateKey, or from a plan with Keyturn's own API.",
    ),
    (
        "data/uploadvaluestokey",
        "data/UploadValuesToKey",
        "Count usage with data/IncrementIntValueToKey.",
    ),
    (
        "subscription/recordusage",
        "subscription/RecordUsage",
        "Keyturn does not report metered usage to Stripe.",
    ),
    (
        "paymentform/createsession",
        "paymentform/CreateSession",
        "Use Keyturn's payment forms (/buy/…) instead.",
    ),
    ("ai/", "ai/*", "Keyturn has no usage analytics."),
    (
        "userauth/",
        "userauth/*",
        "Keyturn has no user accounts; list a customer's licenses with \
         customer/GetCustomerLicensesBySecret.",
    ),
];

/// The answer to a method Keyturn does not serve: its name and, for a Cryptolens method,
/// what to use instead. `path` is `group/method` in lower case, as [`super::method_of`] gives it.
pub fn not_supported(path: &str) -> String {
    let known = NOT_SUPPORTED
        .iter()
        .find(|(p, _, _)| match p.strip_suffix('/') {
            Some(group) => path.split('/').next() == Some(group),
            None => path == *p,
        });
    match known {
        Some((_, name, instead)) => format!("Keyturn does not support {name}. {instead}"),
        None => {
            // The path is the caller's: shown short, in the characters a method name has.
            let shown: String = path
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '/')
                .take(80)
                .collect();
            format!("Keyturn does not support the method \"{shown}\".")
        }
    }
}

pub async fn run(method: Method, call: Call) -> ClResult {
    use Method::*;
    match method {
        Activate => activate(call).await,
        GetKey => get_key(call).await,
        Deactivate => deactivate(call).await,
        CreateKey => create_key(call).await,
        CreateTrialKey => create_trial_key(call).await,
        ExtendLicense => extend_license(call).await,
        BlockKey => set_blocked(call, true).await,
        UnblockKey => set_blocked(call, false).await,
        AddFeature => set_feature(call, true).await,
        RemoveFeature => set_feature(call, false).await,
        MachineLockLimit => machine_lock_limit(call).await,
        ChangeNotes => change_notes(call).await,
        ChangeCustomer => change_customer(call).await,
        KeyLock => key_lock(call).await,
        AddCustomer => add_customer(call).await,
        EditCustomer => edit_customer(call).await,
        RemoveCustomer => remove_customer(call).await,
        GetCustomerLicenses => customer_licenses(call).await,
        GetCustomerLicensesBySecret => customer_licenses_by_secret(call).await,
        GetCustomers => customers(call).await,
        GetKeys => get_keys(call).await,
        GetProducts => products(call).await,
        Data(method) => super::data::run(method, call).await,
    }
}

/// `ProductId` and `Key`, which every key method takes.
fn key_ref(p: &Params) -> Result<(i64, String), ClError> {
    Ok((p.required_int("ProductId")?, p.required_text("Key")?))
}

fn model_version(p: &Params) -> Result<i64, ClError> {
    Ok(p.int("ModelVersion", 1)?.clamp(1, 3))
}

fn now_seconds() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .expect("truncating to seconds never overflows")
}

async fn activate(c: Call) -> ClResult {
    let p = &c.params;
    let (product_id, key) = key_ref(p)?;
    let req = ClActivation {
        product_id,
        key,
        machine_code: p.raw("MachineCode").unwrap_or("").to_owned(),
        friendly_name: p.text("FriendlyName"),
        ip: c.ip.clone(),
        floating_interval: p.int("FloatingTimeInterval", 0)?,
        max_overdraft: p.int("MaxOverdraft", 0)?,
        os_info: p.text("OSInfo"),
    };
    let mut options = ReplyOptions::parse(p, &c.principal)?;
    let machine = req.machine_code.clone();
    options.machine = Some(&machine);
    let view = c.state.app.cl_activate(&c.principal, req).await?;
    license_reply(&c.state, &view, options).await
}

async fn get_key(c: Call) -> ClResult {
    let (product_id, key) = key_ref(&c.params)?;
    let options = ReplyOptions::parse(&c.params, &c.principal)?;
    let view = c
        .state
        .app
        .cl_get_key(&c.principal, product_id, &key)
        .await?;
    license_reply(&c.state, &view, options).await
}

async fn deactivate(c: Call) -> ClResult {
    let p = &c.params;
    let (product_id, key) = key_ref(p)?;
    let machine_code = p.raw("MachineCode").unwrap_or("").to_owned();
    let floating = p.bool("Floating", false)?;
    c.state
        .app
        .cl_deactivate(&c.principal, product_id, &key, &machine_code, floating)
        .await?;
    Ok(ok(json!({}), ""))
}

async fn create_key(c: Call) -> ClResult {
    let p = &c.params;
    let mut features = [false; 8];
    for (i, slot) in features.iter_mut().enumerate() {
        *slot = p.bool(&format!("F{}", i + 1), false)?;
    }
    p.int("ResellerId", 0)?;
    let req = ClNewKey {
        product_id: p.required_int("ProductId")?,
        period: p.int("Period", 0)?,
        features,
        notes: p.text("Notes").unwrap_or_default(),
        block: p.bool("Block", false)?,
        customer_id: Some(p.int("CustomerId", 0)?).filter(|id| *id != 0),
        new_customer: p.bool("NewCustomer", false)?,
        add_or_use_existing_customer: p.bool("AddOrUseExistingCustomer", false)?,
        customer: NewCustomerInput {
            name: p.text("Name").unwrap_or_default(),
            email: p.text("Email"),
            company: p.text("CompanyName"),
        },
        trial_activation: p.bool("TrialActivation", false)?,
        max_no_of_machines: p.int("MaxNoOfMachines", 0)?,
        allowed_machines: p
            .text("AllowedMachines")
            .map(|m| {
                m.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        no_of_keys: p.int("NoOfKeys", 1)?,
    };
    let created = c.state.app.cl_create_key(&c.principal, req).await?;
    let mut fields = json!({"key": created.keys[0].key});
    if let Some(id) = created.customer_id {
        fields["customerId"] = json!(id);
    }
    if created.keys.len() > 1 {
        fields["keys"] = json!(created.keys.iter().map(|l| &l.key).collect::<Vec<_>>());
    }
    Ok(ok(fields, ""))
}

async fn create_trial_key(c: Call) -> ClResult {
    let p = &c.params;
    let product_id = p.required_int("ProductId")?;
    let machine_code = p.text("MachineCode").ok_or(ClError::MachineCodeMissing)?;
    if machine_code.chars().count() > 128 {
        return Err(ClError::MachineCodeTooLong);
    }
    let license = c
        .state
        .app
        .cl_create_trial_key(
            &c.principal,
            product_id,
            &machine_code,
            p.text("FriendlyName"),
            c.ip.clone(),
        )
        .await?;
    Ok(ok(json!({"key": license.key}), ""))
}

async fn extend_license(c: Call) -> ClResult {
    let (product_id, key) = key_ref(&c.params)?;
    let days = c.params.int("NoOfDays", 0)?;
    c.state
        .app
        .cl_extend(&c.principal, product_id, &key, days)
        .await?;
    Ok(ok(json!({}), ""))
}

async fn set_blocked(c: Call, blocked: bool) -> ClResult {
    let (product_id, key) = key_ref(&c.params)?;
    c.state
        .app
        .cl_set_blocked(&c.principal, product_id, &key, blocked)
        .await?;
    Ok(ok(json!({}), ""))
}

async fn set_feature(c: Call, on: bool) -> ClResult {
    let (product_id, key) = key_ref(&c.params)?;
    let feature = c.params.required_int("Feature")?;
    c.state
        .app
        .cl_set_feature(&c.principal, product_id, &key, feature, on)
        .await?;
    Ok(ok(json!({}), ""))
}

async fn machine_lock_limit(c: Call) -> ClResult {
    let (product_id, key) = key_ref(&c.params)?;
    let patch = LicensePatch {
        max_machines: Some(c.params.required_int("NumberOfMachines")?),
        ..Default::default()
    };
    c.state
        .app
        .cl_update(
            &c.principal,
            Permission::ClMachineLockLimit,
            product_id,
            &key,
            patch,
        )
        .await?;
    Ok(ok(json!({}), ""))
}

async fn change_notes(c: Call) -> ClResult {
    let (product_id, key) = key_ref(&c.params)?;
    let patch = LicensePatch {
        notes: Some(c.params.text("Notes").unwrap_or_default()),
        ..Default::default()
    };
    c.state
        .app
        .cl_update(
            &c.principal,
            Permission::ClChangeNotes,
            product_id,
            &key,
            patch,
        )
        .await?;
    Ok(ok(json!({}), ""))
}

async fn change_customer(c: Call) -> ClResult {
    let (product_id, key) = key_ref(&c.params)?;
    let customer_id = c.params.int("CustomerId", 0)?;
    let found = c
        .state
        .app
        .cl_change_customer(&c.principal, product_id, &key, customer_id)
        .await?;
    let message = if found {
        ""
    } else {
        "Customer not found, so current key no longer references any customer."
    };
    Ok(ok(json!({}), message))
}

async fn key_lock(c: Call) -> ClResult {
    let (product_id, key) = key_ref(&c.params)?;
    let (key_id, secret) = c
        .state
        .app
        .cl_key_lock(&c.principal, product_id, &key)
        .await?;
    Ok(ok(json!({"keyId": key_id, "token": secret.expose()}), ""))
}

async fn add_customer(c: Call) -> ClResult {
    let p = &c.params;
    for flag in [
        "EnableCustomerAssociation",
        "AllowActivationManagement",
        "AllowMultipleUserAssociation",
    ] {
        p.bool(flag, false)?;
    }
    let input = NewCustomerInput {
        name: p.text("Name").unwrap_or_default(),
        email: p.text("Email"),
        company: p.text("CompanyName"),
    };
    let (customer, secret) = c.state.app.cl_add_customer(&c.principal, input).await?;
    let mut fields = json!({"customerId": customer.id, "secret": secret.expose()});
    // With association, the customer's way into the portal: the secret signs them in.
    if p.bool("EnableCustomerAssociation", false)? {
        fields["portalLink"] = json!(keyturn_app::App::portal_secret_link(
            c.state.settings.public_url.as_deref(),
            &secret
        ));
    }
    Ok(ok(fields, ""))
}

async fn edit_customer(c: Call) -> ClResult {
    let p = &c.params;
    let id = p.required_int("CustomerId")?;
    // Portal settings Keyturn has no portal for: read, so that bad values are refused.
    for flag in [
        "EnableCustomerAssociation",
        "AllowActivationManagement",
        "AllowMultipleUserAssociation",
    ] {
        p.bool(flag, false)?;
    }
    p.int("MaxNoOfDevices", 0)?;
    // What is not given (or given empty, as .NET sends a null) stays as it is.
    let patch = CustomerPatch {
        name: p.text("Name"),
        email: p.text("Email").map(Some),
        company: p.text("CompanyName").map(Some),
    };
    let renew = p.bool("Secret", false)?;
    let (customer, secret) = c
        .state
        .app
        .cl_edit_customer(&c.principal, id, patch, renew)
        .await?;
    let mut fields = json!({"customerId": customer.id});
    if let Some(secret) = secret {
        fields["secret"] = json!(secret.expose());
    }
    Ok(ok(fields, ""))
}

async fn remove_customer(c: Call) -> ClResult {
    let id = c.params.required_int("CustomerId")?;
    c.state.app.cl_remove_customer(&c.principal, id).await?;
    Ok(ok(json!({}), ""))
}

async fn customer_licenses_by_secret(c: Call) -> ClResult {
    let p = &c.params;
    let secret = p.required_text("Secret")?;
    p.bool("Detailed", false)?;
    p.bool("Metadata", false)?;
    let model = model_version(p)?;
    let views = c
        .state
        .app
        .cl_customer_licenses_by_secret(&c.principal, &secret)
        .await?;
    Ok(ok(json!({"licenseKeys": objects(&views, model)}), ""))
}

async fn customer_licenses(c: Call) -> ClResult {
    let p = &c.params;
    let customer_id = p.required_int("CustomerId")?;
    p.bool("Detailed", false)?;
    p.bool("Metadata", false)?;
    let model = model_version(p)?;
    let views = c
        .state
        .app
        .cl_customer_licenses(&c.principal, customer_id)
        .await?;
    Ok(ok(json!({"licenseKeys": objects(&views, model)}), ""))
}

fn objects(views: &[ClLicense], model: i64) -> Vec<Value> {
    views
        .iter()
        .map(|v| license::object_form(v, model, now_seconds(), None))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerItem<'a> {
    id: i64,
    name: &'a str,
    email: &'a str,
    company_name: &'a str,
    created: String,
}

fn customer_item(c: &Customer) -> CustomerItem<'_> {
    CustomerItem {
        id: c.id,
        name: &c.name,
        email: c.email.as_deref().unwrap_or(""),
        company_name: c.company.as_deref().unwrap_or(""),
        created: iso(c.created),
    }
}

async fn customers(c: Call) -> ClResult {
    let limit = c.params.int("Limit", 0)?;
    let list = c.state.app.cl_customers(&c.principal, limit).await?;
    let items: Vec<CustomerItem> = list.iter().map(customer_item).collect();
    Ok(ok(json!({"customers": items}), ""))
}

async fn get_keys(c: Call) -> ClResult {
    let p = &c.params;
    let product_id = p.required_int("ProductId")?;
    let page = p.int("Page", 1)?;
    let order_by = p.text("OrderBy").unwrap_or_default();
    let search = p.text("SearchQuery").unwrap_or_default();
    let model = model_version(p)?;
    let page = c
        .state
        .app
        .cl_keys(&c.principal, product_id, page, &search, &order_by)
        .await
        .map_err(|e| match e {
            // A query the caller must fix: say what and where, not only that it is wrong.
            AppError::Invalid(d) if d.field == "SearchQuery" || d.field == "OrderBy" => {
                ClError::Refused(format!("The input parameters were incorrect. {d}"))
            }
            e => e.into(),
        })?;
    Ok(ok(
        json!({
            "licenseKeys": objects(&page.keys, model),
            "returned": page.keys.len(),
            "total": page.total,
            "pageCount": page.page_count,
        }),
        "",
    ))
}

/// Cryptolens's key algorithm for the product's keys: SKM15 (1), keys that are random rather
/// than derived from the license's fields (SKGL, 0), as Keyturn's are.
const KEY_ALGORITHM_SKM15: i32 = 1;

/// A product as Cryptolens's `Product` model has it. Keyturn's features have no kinds (each is
/// a plain feature, type 0), and its licenses may be perpetual, so not all are time-limited.
fn product_item(item: &ClProduct) -> Value {
    let p = &item.product;
    let mut definitions: serde_json::Map<String, Value> = (1..=8)
        .map(|n| {
            let name = p.features.get(n - 1).cloned().unwrap_or_default();
            (format!("f{n}"), json!({"name": name, "type": 0}))
        })
        .collect();
    definitions.insert("allLicensesTimeLimited".into(), json!(false));
    definitions.insert(
        "blockExpiredLicenses".into(),
        json!(p.block_expired_licenses),
    );
    let data_objects: Vec<Value> = item
        .data_objects
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "name": d.name,
                "stringValue": d.string_value,
                "intValue": d.int_value,
            })
        })
        .collect();
    json!({
        "id": p.id,
        "name": p.name,
        "creationDate": iso(p.created),
        "description": p.description,
        "password": null,
        "isPublic": false,
        "keyAlgorithm": KEY_ALGORITHM_SKM15,
        "featureDefinitions": definitions,
        "dataObjects": data_objects,
    })
}

async fn products(c: Call) -> ClResult {
    let list = c.state.app.cl_products(&c.principal).await?;
    let items: Vec<Value> = list.iter().map(product_item).collect();
    Ok(ok(json!({"products": items}), ""))
}

/// How the caller wants a license reply: signed or not, in which form and model, with metadata,
/// and which fields it hides.
#[derive(Debug, Clone, Copy)]
struct ReplyOptions<'a> {
    sign: bool,
    method: SignMethod,
    model: i64,
    metadata: bool,
    /// `FieldsToReturn` and the token's feature lock together: a caller may hide more than
    /// its token's lock, never less.
    hidden: Hidden,
    /// The machine Activate was called for: the one shown when machines are hidden.
    machine: Option<&'a str>,
}

impl ReplyOptions<'_> {
    fn parse(p: &Params, principal: &Principal) -> Result<Self, ClError> {
        let asked = p.int("FieldsToReturn", 0)?;
        let asked = Hidden::from_bits(asked).ok_or_else(|| {
            ClError::IncorrectInput(format!("FieldsToReturn: {asked} is not 0 to 4294967295"))
        })?;
        let locked = Hidden::from_bits(principal.feature_lock()).unwrap_or_default();
        Ok(Self {
            sign: p.bool("Sign", false)?,
            method: p.sign_method()?,
            model: model_version(p)?,
            metadata: p.bool("Metadata", false)?,
            hidden: asked.and(locked),
            machine: None,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StringReply<'a> {
    license_key: String,
    signature: Option<&'a str>,
    result: i32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectReply<'a> {
    license_key: Value,
    result: i32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
}

fn slot(view: &ClLicense, form: &'static str) -> SignatureSlot {
    SignatureSlot {
        product_id: view.license.product_id,
        subject_id: view.license.id,
        form,
    }
}

/// Activate/GetKey's reply. Signs only when the caller asked for a signed license, and then
/// through the signature cache, so an unchanged license is not signed again. The signature
/// covers the license as shown, hidden fields included.
async fn license_reply(state: &AppState, view: &ClLicense, o: ReplyOptions<'_>) -> ClResult {
    let metadata = match o.metadata {
        true => Some(metadata(state, view).await?),
        false => None,
    };
    let slot_of = |form: &'static str| slot(view, form);
    let view = &*license::shown(view, o.hidden, o.machine);
    let app = &state.app;
    let body = match o.method {
        SignMethod::String => {
            let form = match o.model {
                1 => "string/v1",
                2 => "string/v2",
                _ => "string/v3",
            };
            let (bytes, signature) = if o.sign {
                let signed = app
                    .sign_state(slot_of(form), RsaDigest::Sha256, |at| {
                        license::string_form(view, o.model, at)
                    })
                    .await?;
                (signed.message.to_vec(), Some(signed.signature))
            } else {
                (license::string_form(view, o.model, now_seconds()), None)
            };
            serde_json::to_value(StringReply {
                license_key: B64.encode(bytes),
                signature: signature.as_deref(),
                result: 0,
                message: "",
                metadata,
            })
        }
        SignMethod::Linq => {
            let object = if o.sign {
                let signed = app
                    .sign_state(slot_of("linq"), RsaDigest::Sha256, |at| {
                        license::legacy_signed_bytes(view, at)
                    })
                    .await?;
                license::object_form(view, o.model, signed.sign_date, Some(&signed.signature))
            } else {
                license::object_form(view, o.model, now_seconds(), None)
            };
            serde_json::to_value(ObjectReply {
                license_key: object,
                result: 0,
                message: "",
                metadata,
            })
        }
    }
    .expect("replies always serialise");
    Ok(json_response(axum::http::StatusCode::OK, &body))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseStatus {
    is_valid: bool,
    /// 0 none, 1 expired, 2 blocked.
    reason_for_invalidity: i32,
    trial: bool,
    time_limited: bool,
    time_left: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    activated_machines: usize,
    license_status: LicenseStatus,
    used_floating_machines: usize,
}

/// The `metadata` object and its signature: RSA PKCS#1 v1.5 with SHA-512 over the metadata
/// JSON, wrapped as `{"Data","Signature","Date","Version"}` and base64-encoded.
async fn metadata(state: &AppState, view: &ClLicense) -> Result<Value, ClError> {
    let l = &view.license;
    let at = Utc::now();
    let expired = l.is_expired(at);
    let meta = Metadata {
        activated_machines: view.machines.len(),
        license_status: LicenseStatus {
            is_valid: !view.blocked && !expired,
            reason_for_invalidity: if view.blocked {
                2
            } else if expired {
                1
            } else {
                0
            },
            trial: l.trial,
            time_limited: l.expires.is_some(),
            time_left: l.expires.map_or(0, |e| (e - at).num_days().max(0)),
        },
        used_floating_machines: view
            .machines
            .iter()
            .filter(|m| m.lease_expires.is_some())
            .count(),
    };
    let data = serde_json::to_vec(&meta).expect("metadata always serialises");
    let signed = state
        .app
        .sign_state(slot(view, "metadata"), RsaDigest::Sha512, |_| data.clone())
        .await?;
    let wrapper = json!({
        "Data": B64.encode(&signed.message),
        "Signature": &*signed.signature,
        "Date": signed.sign_date.timestamp(),
        "Version": 1,
    });
    let mut value = serde_json::to_value(&meta).expect("metadata always serialises");
    value["signature"] = json!(B64.encode(wrapper.to_string()));
    Ok(value)
}
