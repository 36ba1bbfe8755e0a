//! The license object on the Cryptolens wire, in its forms:
//! - `SignMethod=1`: compact PascalCase JSON with Unix-second dates, base64-encoded, signed over
//!   exactly those bytes (RSA PKCS#1 v1.5, SHA-256);
//! - the object form (`SignMethod=0` and listings): camelCase with ISO dates, for `SignMethod=0`
//!   signed over the UTF-16LE comma-joined rendering .NET's `LicenseKey` verifies.
//!
//! `ModelVersion` 1 lists machines as `{Mid, IP, Time}`, 2 adds `FriendlyName`, 3 adds
//! `FloatingExpires` and the `Reseller` slot. Lists are never null, machine objects carry no
//! other keys, and floating seats show as `floating:<machine code>`.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use keyturn_app::ClLicense;
use keyturn_core::{Activation, DataObject, License};
use serde::Serialize;

/// How a license without an end is shown: Cryptolens licenses always have an expiry, so the
/// SDKs' expiry checks need one far enough away (and within every SDK's date range).
const PERPETUAL: Duration = Duration::days(36_500);
const FLOATING: &str = "floating:";
/// The prefix of a floating seat taken as overdraft; the SDKs compare what follows its 19
/// characters with the machine code when overdraft is allowed.
const OVERDRAFT: &str = "floating:overdraft:";

/// License fields a reply hides: Cryptolens's `FieldsToReturn`, one bit per field, with the
/// values the Cryptolens C++ SDK names (other bits hide nothing; the fields it treats as
/// mandatory — product, dates, period, features, block, trial activation — are never hidden).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hidden(u32);

impl Hidden {
    pub const ID: u32 = 1 << 1;
    pub const KEY: u32 = 1 << 2;
    pub const NOTES: u32 = 1 << 3;
    pub const GLOBAL_ID: u32 = 1 << 4;
    pub const CUSTOMER: u32 = 1 << 5;
    pub const ACTIVATED_MACHINES: u32 = 1 << 6;
    pub const ALLOWED_MACHINES: u32 = 1 << 7;
    pub const MAX_NO_OF_MACHINES: u32 = 1 << 8;
    pub const DATA_OBJECTS: u32 = 1 << 9;

    /// From a `FieldsToReturn` value or feature lock; `None` when it is not 32 unsigned bits.
    pub fn from_bits(bits: i64) -> Option<Self> {
        u32::try_from(bits).ok().map(Hidden)
    }

    /// Both sets of hidden fields.
    pub fn and(self, other: Hidden) -> Hidden {
        Hidden(self.0 | other.0)
    }

    fn hides(self, field: u32) -> bool {
        self.0 & field != 0
    }
}

/// The license as a reply with `hidden` fields shows it: each hidden field is still there,
/// with a neutral value (0, an empty text, none, an empty list), because the Python SDK reads
/// every field by name. Hidden activated machines leave only the calling machine's own entry
/// (`machine`, the code Activate was called with), as Cryptolens documents. Signatures are
/// made over what is shown.
pub fn shown<'a>(view: &'a ClLicense, hidden: Hidden, machine: Option<&str>) -> Cow<'a, ClLicense> {
    if hidden == Hidden::default() {
        return Cow::Borrowed(view);
    }
    let mut shown = view.clone();
    if hidden.hides(Hidden::GLOBAL_ID) {
        shown.global_id = 0;
    }
    let l = &mut shown.license;
    if hidden.hides(Hidden::ID) {
        l.id = 0;
    }
    if hidden.hides(Hidden::KEY) {
        l.key = String::new();
    }
    if hidden.hides(Hidden::NOTES) {
        l.notes = String::new();
    }
    if hidden.hides(Hidden::CUSTOMER) {
        shown.customer = None;
    }
    if hidden.hides(Hidden::ACTIVATED_MACHINES) {
        shown
            .machines
            .retain(|a| machine.is_some_and(|m| a.fingerprint == m));
    }
    if hidden.hides(Hidden::ALLOWED_MACHINES) {
        l.allowed_machines.clear();
    }
    if hidden.hides(Hidden::MAX_NO_OF_MACHINES) {
        l.max_machines = 0;
    }
    if hidden.hides(Hidden::DATA_OBJECTS) {
        shown.data_objects.clear();
    }
    Cow::Owned(shown)
}

pub fn expires(license: &License) -> DateTime<Utc> {
    license
        .expires
        .unwrap_or_else(|| keyturn_core::dates::later(license.created, PERPETUAL))
}

pub fn mid(a: &Activation) -> String {
    match (a.lease_expires, a.overdraft) {
        (Some(_), true) => format!("{OVERDRAFT}{}", a.fingerprint),
        (Some(_), false) => format!("{FLOATING}{}", a.fingerprint),
        (None, _) => a.fingerprint.clone(),
    }
}

/// .NET's invariant `DateTime` text without offset, as the object form carries it.
pub fn iso(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn notes(license: &License) -> Option<&str> {
    Some(license.notes.as_str()).filter(|n| !n.is_empty())
}

fn allowed_machines(license: &License) -> Option<String> {
    (!license.allowed_machines.is_empty()).then(|| license.allowed_machines.join("\n"))
}

fn features(view: &ClLicense) -> [bool; 8] {
    std::array::from_fn(|i| view.feature_slot(i + 1))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CustomerJson<'a> {
    id: i64,
    name: &'a str,
    email: &'a str,
    company_name: &'a str,
    created: i64,
}

/// A license's data object: PascalCase in the signed JSON, camelCase in the object form.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataObjectJson<'a> {
    id: i64,
    name: &'a str,
    string_value: &'a str,
    int_value: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataObjectObject<'a> {
    id: i64,
    name: &'a str,
    string_value: &'a str,
    int_value: i32,
}

#[derive(Serialize)]
#[serde(untagged)]
enum MachineJson {
    V1 {
        #[serde(rename = "Mid")]
        mid: String,
        #[serde(rename = "IP")]
        ip: String,
        #[serde(rename = "Time")]
        time: i64,
    },
    V2 {
        #[serde(rename = "Mid")]
        mid: String,
        #[serde(rename = "FriendlyName")]
        friendly_name: String,
        #[serde(rename = "IP")]
        ip: String,
        #[serde(rename = "Time")]
        time: i64,
    },
    V3 {
        #[serde(rename = "Mid")]
        mid: String,
        #[serde(rename = "FriendlyName")]
        friendly_name: String,
        #[serde(rename = "IP")]
        ip: String,
        #[serde(rename = "Time")]
        time: i64,
        #[serde(rename = "FloatingExpires")]
        floating_expires: i64,
    },
}

fn machine_json(a: &Activation, model: i64) -> MachineJson {
    let mid = mid(a);
    let ip = a.ip.clone().unwrap_or_default();
    let time = a.created.timestamp();
    let friendly_name = a.name.clone().unwrap_or_default();
    match model {
        ..=1 => MachineJson::V1 { mid, ip, time },
        2 => MachineJson::V2 {
            mid,
            friendly_name,
            ip,
            time,
        },
        _ => MachineJson::V3 {
            mid,
            friendly_name,
            ip,
            time,
            floating_expires: a.lease_expires.map_or(0, |t| t.timestamp()),
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LicenseJson<'a> {
    product_id: i64,
    #[serde(rename = "ID")]
    id: i64,
    key: &'a str,
    created: i64,
    expires: i64,
    period: i64,
    #[serde(rename = "F1")]
    f1: bool,
    #[serde(rename = "F2")]
    f2: bool,
    #[serde(rename = "F3")]
    f3: bool,
    #[serde(rename = "F4")]
    f4: bool,
    #[serde(rename = "F5")]
    f5: bool,
    #[serde(rename = "F6")]
    f6: bool,
    #[serde(rename = "F7")]
    f7: bool,
    #[serde(rename = "F8")]
    f8: bool,
    notes: Option<&'a str>,
    block: bool,
    global_id: i64,
    customer: Option<CustomerJson<'a>>,
    activated_machines: Vec<MachineJson>,
    trial_activation: bool,
    max_no_of_machines: i64,
    allowed_machines: Option<String>,
    data_objects: Vec<DataObjectJson<'a>>,
    /// Present (as null) from model version 3 on.
    #[serde(skip_serializing_if = "Option::is_none")]
    reseller: Option<Option<()>>,
    sign_date: i64,
}

/// The exact bytes `licenseKey` carries base64-encoded with `SignMethod=1`.
pub fn string_form(view: &ClLicense, model: i64, sign_date: DateTime<Utc>) -> Vec<u8> {
    let l = &view.license;
    let f = features(view);
    let body = LicenseJson {
        product_id: l.product_id,
        id: l.id,
        key: &l.key,
        created: l.created.timestamp(),
        expires: expires(l).timestamp(),
        period: l.period_days.unwrap_or(0),
        f1: f[0],
        f2: f[1],
        f3: f[2],
        f4: f[3],
        f5: f[4],
        f6: f[5],
        f7: f[6],
        f8: f[7],
        notes: notes(l),
        block: view.blocked,
        global_id: view.global_id,
        customer: view.customer.as_ref().map(|c| CustomerJson {
            id: c.id,
            name: &c.name,
            email: c.email.as_deref().unwrap_or(""),
            company_name: c.company.as_deref().unwrap_or(""),
            created: c.created.timestamp(),
        }),
        activated_machines: view
            .machines
            .iter()
            .map(|a| machine_json(a, model))
            .collect(),
        trial_activation: l.trial_activation,
        max_no_of_machines: l.max_machines,
        allowed_machines: allowed_machines(l),
        data_objects: view
            .data_objects
            .iter()
            .map(|d| DataObjectJson {
                id: d.id,
                name: &d.name,
                string_value: &d.string_value,
                int_value: d.int_value,
            })
            .collect(),
        reseller: (model >= 3).then_some(None),
        sign_date: sign_date.timestamp(),
    };
    serde_json::to_vec(&body).expect("a license always serialises")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerObject<'a> {
    id: i64,
    name: &'a str,
    email: &'a str,
    company_name: &'a str,
    created: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MachineObject {
    mid: String,
    ip: String,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    friendly_name: Option<String>,
    /// Only from model version 3 on; `null` for node-locked machines.
    #[serde(skip_serializing_if = "Option::is_none")]
    floating_expires: Option<Option<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseObject<'a> {
    product_id: i64,
    id: i64,
    key: &'a str,
    created: String,
    expires: String,
    period: i64,
    f1: bool,
    f2: bool,
    f3: bool,
    f4: bool,
    f5: bool,
    f6: bool,
    f7: bool,
    f8: bool,
    notes: Option<&'a str>,
    block: bool,
    global_id: i64,
    customer: Option<CustomerObject<'a>>,
    activated_machines: Vec<MachineObject>,
    trial_activation: bool,
    max_no_of_machines: i64,
    allowed_machines: Option<String>,
    data_objects: Vec<DataObjectObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reseller: Option<Option<()>>,
    sign_date: String,
    signature: Option<&'a str>,
}

/// The object form. Unsigned objects (listings, `Sign=false`) still carry a sign date, since
/// .NET reads it into a non-nullable `DateTime`.
pub fn object_form(
    view: &ClLicense,
    model: i64,
    sign_date: DateTime<Utc>,
    signature: Option<&str>,
) -> serde_json::Value {
    let l = &view.license;
    let f = features(view);
    let body = LicenseObject {
        product_id: l.product_id,
        id: l.id,
        key: &l.key,
        created: iso(l.created),
        expires: iso(expires(l)),
        period: l.period_days.unwrap_or(0),
        f1: f[0],
        f2: f[1],
        f3: f[2],
        f4: f[3],
        f5: f[4],
        f6: f[5],
        f7: f[6],
        f8: f[7],
        notes: notes(l),
        block: view.blocked,
        global_id: view.global_id,
        customer: view.customer.as_ref().map(|c| CustomerObject {
            id: c.id,
            name: &c.name,
            email: c.email.as_deref().unwrap_or(""),
            company_name: c.company.as_deref().unwrap_or(""),
            created: iso(c.created),
        }),
        activated_machines: view
            .machines
            .iter()
            .map(|a| MachineObject {
                mid: mid(a),
                ip: a.ip.clone().unwrap_or_default(),
                time: iso(a.created),
                friendly_name: (model >= 2).then(|| a.name.clone().unwrap_or_default()),
                floating_expires: (model >= 3).then(|| a.lease_expires.map(iso)),
            })
            .collect(),
        trial_activation: l.trial_activation,
        max_no_of_machines: l.max_machines,
        allowed_machines: allowed_machines(l),
        data_objects: view
            .data_objects
            .iter()
            .map(|d| DataObjectObject {
                id: d.id,
                name: &d.name,
                string_value: &d.string_value,
                int_value: d.int_value,
            })
            .collect(),
        reseller: (model >= 3).then_some(None),
        sign_date: iso(sign_date),
        signature,
    };
    serde_json::to_value(&body).expect("a license always serialises")
}

/// What `SignMethod=0` signs: the values in declaration order rendered as .NET renders them,
/// joined with commas (the empty `Signature` last, so the text ends with a comma), as UTF-16LE.
pub fn legacy_signed_bytes(view: &ClLicense, sign_date: DateTime<Utc>) -> Vec<u8> {
    legacy_text(view, sign_date)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn dotnet_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

pub fn legacy_text(view: &ClLicense, sign_date: DateTime<Utc>) -> String {
    let l = &view.license;
    let mut parts: Vec<String> = vec![
        l.product_id.to_string(),
        l.id.to_string(),
        l.key.clone(),
        iso(l.created),
        iso(expires(l)),
        l.period_days.unwrap_or(0).to_string(),
    ];
    parts.extend(features(view).iter().map(|f| dotnet_bool(*f).to_owned()));
    parts.push(notes(l).unwrap_or("").to_owned());
    parts.push(dotnet_bool(view.blocked).to_owned());
    parts.push(view.global_id.to_string());
    parts.push(match &view.customer {
        Some(c) => format!(
            "{},{},{},{}",
            c.name,
            c.email.as_deref().unwrap_or(""),
            c.company.as_deref().unwrap_or(""),
            iso(c.created)
        ),
        None => String::new(),
    });
    let machines: String = view
        .machines
        .iter()
        .map(|a| {
            format!(
                "{},{},{},",
                mid(a),
                a.ip.as_deref().unwrap_or(""),
                iso(a.created)
            )
        })
        .collect();
    parts.push(format!("[{machines}]"));
    parts.push(dotnet_bool(l.trial_activation).to_owned());
    parts.push(l.max_machines.to_string());
    parts.push(allowed_machines(l).unwrap_or_default());
    parts.push(legacy_data_objects(&view.data_objects));
    parts.push(iso(sign_date));
    parts.push(String::new());
    parts.join(",")
}

/// .NET renders each data object as `Id,Name,StringValue,IntValue` and the list as `[` + each
/// followed by a comma + `]`.
fn legacy_data_objects(objects: &[DataObject]) -> String {
    let items: String = objects
        .iter()
        .map(|d| format!("{},{},{},{},", d.id, d.name, d.string_value, d.int_value))
        .collect();
    format!("[{items}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use keyturn_core::Customer;

    fn at(s: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(
            &chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap(),
        )
    }

    fn view() -> ClLicense {
        let created = at("2015-08-27T00:00:00");
        ClLicense {
            license: License {
                id: 4,
                key: "LEPWV-FOTPG-MWBEO-FBFPS".into(),
                product_id: 3349,
                plan_id: None,
                customer_id: None,
                created,
                updated: created,
                expires: Some(at("2015-09-26T00:00:00")),
                period_days: Some(30),
                features: vec![],
                max_machines: -1,
                floating_lease_seconds: None,
                trial: false,
                notes: String::new(),
                blocked: false,
                metadata: serde_json::json!({}),
                trial_activation: false,
                allowed_machines: vec![],
            },
            product_features: vec!["a".into(), "b".into()],
            customer: None,
            machines: vec![],
            data_objects: vec![],
            blocked: false,
            global_id: 4,
        }
    }

    #[test]
    fn legacy_text_matches_the_dotnet_rendering() {
        // The values .NET's LicenseKey renders for a recorded Cryptolens reply (GlobalId aside,
        // which Keyturn takes from the license id).
        let text = legacy_text(&view(), at("2016-06-11T09:23:28"));
        assert_eq!(
            text,
            "3349,4,LEPWV-FOTPG-MWBEO-FBFPS,2015-08-27T00:00:00,2015-09-26T00:00:00,30,\
             False,False,False,False,False,False,False,False,,False,4,,[],False,-1,,[],\
             2016-06-11T09:23:28,"
        );
        let bytes = legacy_signed_bytes(&view(), at("2016-06-11T09:23:28"));
        assert_eq!(&bytes[..4], &[b'3', 0, b'3', 0]);
        assert_eq!(bytes.len(), text.len() * 2);
    }

    #[test]
    fn string_form_has_the_sdk_field_names_and_never_null_lists() {
        let mut v = view();
        v.license.features = vec!["b".into()];
        v.customer = Some(Customer {
            id: 9,
            name: "Ann".into(),
            email: None,
            company: None,
            created: at("2015-08-27T00:00:00"),
        });
        v.machines = vec![Activation {
            id: 1,
            license_id: 4,
            fingerprint: "mc".into(),
            name: None,
            ip: Some("127.0.0.1".into()),
            os_info: Some("{\"OSName\":\"Linux\"}".into()),
            created: at("2015-08-28T00:00:00"),
            last_seen: at("2015-08-28T00:00:00"),
            lease_expires: Some(at("2015-08-28T00:05:00")),
            overdraft: false,
        }];
        let v1: serde_json::Value =
            serde_json::from_slice(&string_form(&v, 1, at("2016-01-01T00:00:00"))).unwrap();
        assert_eq!(v1["ID"], 4);
        assert_eq!(v1["F1"], false);
        assert_eq!(v1["F2"], true);
        assert_eq!(v1["Notes"], serde_json::Value::Null);
        assert_eq!(v1["DataObjects"], serde_json::json!([]));
        assert_eq!(v1["Customer"]["Email"], "");
        assert_eq!(
            v1["ActivatedMachines"],
            serde_json::json!([{"Mid": "floating:mc", "IP": "127.0.0.1", "Time": 1440720000}])
        );
        assert!(v1.get("Reseller").is_none());
        let v3: serde_json::Value =
            serde_json::from_slice(&string_form(&v, 3, at("2016-01-01T00:00:00"))).unwrap();
        assert_eq!(v3["Reseller"], serde_json::Value::Null);
        assert_eq!(
            v3["ActivatedMachines"][0]
                .as_object()
                .unwrap()
                .keys()
                .count(),
            5
        );
        assert_eq!(v3["ActivatedMachines"][0]["FloatingExpires"], 1440720300);
        let keys: Vec<&String> = v3.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 25);
    }

    #[test]
    fn data_objects_in_every_form() {
        let mut v = view();
        let at = at("2016-01-01T00:00:00");
        v.data_objects = vec![keyturn_core::DataObject {
            id: 12,
            product_id: 3349,
            license_id: Some(4),
            activation_id: None,
            name: "credits".into(),
            string_value: String::new(),
            int_value: -3,
            created: at,
            updated: at,
        }];
        let string: serde_json::Value = serde_json::from_slice(&string_form(&v, 1, at)).unwrap();
        assert_eq!(
            string["DataObjects"],
            serde_json::json!([{"Id": 12, "Name": "credits", "StringValue": "", "IntValue": -3}])
        );
        let object = object_form(&v, 1, at, None);
        assert_eq!(
            object["dataObjects"],
            serde_json::json!([{"id": 12, "name": "credits", "stringValue": "", "intValue": -3}])
        );
        assert!(legacy_text(&v, at).ends_with(",[12,credits,,-3,],2016-01-01T00:00:00,"));
    }
}
