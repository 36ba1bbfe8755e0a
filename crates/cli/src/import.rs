//! `keyturn import cryptolens`: a product's keys, customers and data objects read through the
//! Cryptolens Web API of any Cryptolens-compatible server (`product/GetProducts`,
//! `customer/GetCustomers`, `product/GetKeys` page by page, `data/ListDataObjects`) and handed
//! to the import use cases, which make re-running it update rather than duplicate.
//!
//! What the API cannot give is said in the summary: the product's RSA key pair (bring it with
//! `keyturn product import-rsa-key`), floating seats (they lapse within minutes anyway) and the
//! data objects of single machines.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use keyturn_app::{
    App, AppError, ImportSource, Imported, ImportedCustomer, ImportedDataObject, ImportedKey,
    ImportedMachine, ImportedProduct, Principal,
};
use serde::Serialize;
use serde_json::Value;

/// The Cryptolens Web API of one server, called with one access token.
pub struct CryptolensSource {
    http: reqwest::Client,
    /// The server's address without `/api`, as imports record it.
    server: String,
    token: String,
}

impl std::fmt::Debug for CryptolensSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never printed.
        f.debug_struct("CryptolensSource")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// A value by name in any case (Cryptolens answers in camelCase; other servers may not).
fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    match v {
        Value::Object(map) => map
            .get(name)
            .or_else(|| {
                map.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .unwrap_or(&Value::Null),
        _ => &Value::Null,
    }
}

fn text(v: &Value, name: &str) -> Option<String> {
    match field(v, name) {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value, name: &str) -> Option<i64> {
    match field(v, name) {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn flag(v: &Value, name: &str) -> bool {
    match field(v, name) {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        Value::String(s) => s.eq_ignore_ascii_case("true") || s == "1",
        _ => false,
    }
}

/// A date as the object form carries it (ISO without offset, UTC), or Unix seconds.
fn date(v: &Value, name: &str) -> Option<DateTime<Utc>> {
    match field(v, name) {
        Value::Number(n) => n.as_i64().and_then(|s| DateTime::from_timestamp(s, 0)),
        Value::String(s) => {
            let s = s.trim();
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .ok()
                        .map(|d| d.and_utc())
                })
        }
        _ => None,
    }
}

fn customer(v: &Value) -> Option<ImportedCustomer> {
    Some(ImportedCustomer {
        source_id: int(v, "id")?,
        name: text(v, "name").unwrap_or_default(),
        email: text(v, "email"),
        company: text(v, "companyName"),
    })
}

fn data_objects(list: &Value) -> Vec<ImportedDataObject> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some(ImportedDataObject {
                source_id: int(d, "id")?,
                name: text(d, "name").unwrap_or_default(),
                string_value: text(d, "stringValue").unwrap_or_default(),
                int_value: int(d, "intValue").unwrap_or(0),
            })
        })
        .collect()
}

/// How far in the future an expiry says "never": Keyturn shows a license without an end as
/// expiring 36,500 days after its creation; a day less covers rounding.
const NEVER: TimeDelta = TimeDelta::days(36_499);

/// The floating seats of a key in a listing (`floating:` machine codes): not imported.
pub fn floating_seats(k: &Value) -> usize {
    field(k, "activatedMachines")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| text(m, "mid").is_some_and(|mid| mid.starts_with("floating:")))
        .count()
}

/// A key of a `GetKeys` listing (the object form) as the import takes it.
///
/// Cryptolens keys always carry an expiry, which counts only where the product says keys are
/// time-limited; so a key without a period whose expiry is not after its creation, or one
/// expiring 100 years after it (how Keyturn shows a key without an end), is taken to have none.
pub fn key_from_listing(k: &Value) -> Result<ImportedKey, String> {
    let key = text(k, "key").ok_or("a key without a key string")?;
    let created = date(k, "created").ok_or_else(|| format!("key {key}: no creation date"))?;
    let period = int(k, "period").unwrap_or(0);
    let expires = date(k, "expires")
        .filter(|e| !(period <= 0 && *e <= created + TimeDelta::days(1)))
        .filter(|e| *e < created + NEVER);
    let machines = field(k, "activatedMachines")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let mid = text(m, "mid")?;
            if mid.starts_with("floating:") {
                return None;
            }
            Some(ImportedMachine {
                fingerprint: mid,
                name: text(m, "friendlyName"),
                ip: text(m, "ip"),
                activated: date(m, "time").unwrap_or(created),
            })
        })
        .collect();
    Ok(ImportedKey {
        features: std::array::from_fn(|i| flag(k, &format!("f{}", i + 1))),
        notes: text(k, "notes").unwrap_or_default(),
        blocked: flag(k, "block"),
        customer: match field(k, "customer") {
            c @ Value::Object(_) => customer(c),
            _ => None,
        },
        machines,
        trial_activation: flag(k, "trialActivation"),
        max_machines: int(k, "maxNoOfMachines").unwrap_or(0),
        allowed_machines: text(k, "allowedMachines")
            .map(|a| {
                a.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        data_objects: data_objects(field(k, "dataObjects")),
        period_days: (period > 0).then_some(period),
        key,
        created,
        expires,
    })
}

impl CryptolensSource {
    /// `from`: the server's address, e.g. `https://app.cryptolens.io` (a trailing `/api` is
    /// tolerated).
    pub fn new(from: &str, token: String) -> anyhow::Result<Self> {
        let server = from.trim().trim_end_matches('/');
        let server = server
            .strip_suffix("/api")
            .or_else(|| server.strip_suffix("/API"))
            .unwrap_or(server)
            .trim_end_matches('/')
            .to_owned();
        let parsed = reqwest::Url::parse(&server)
            .with_context(|| format!("--from {server:?} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--from must be an http:// or https:// address");
        }
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .context("an HTTP client")?,
            server,
            token,
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Calls `group/Method` with `params`; the reply when its `result` is 0.
    async fn call(&self, method: &str, params: &[(&str, String)]) -> anyhow::Result<Value> {
        let mut form: Vec<(&str, &str)> = vec![("token", self.token.as_str())];
        form.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
        let response = self
            .http
            .post(format!("{}/api/{method}", self.server))
            .form(&form)
            .send()
            .await
            .map_err(|e| e.without_url())
            .with_context(|| format!("{method}: cannot reach {}", self.server))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| e.without_url())
            .with_context(|| format!("{method}: the answer (HTTP {status}) is not JSON"))?;
        match int(&body, "result") {
            Some(0) => Ok(body),
            _ => bail!(
                "{method}: {}",
                text(&body, "message").unwrap_or_else(|| format!("HTTP {status}"))
            ),
        }
    }

    /// The product as `GetProducts` describes it; `None` when the list lacks it.
    pub async fn product(&self, id: i64) -> anyhow::Result<Option<ImportedProduct>> {
        let reply = self.call("product/GetProducts", &[]).await?;
        let found = field(&reply, "products")
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| int(p, "id") == Some(id));
        Ok(found.map(|p| {
            let definitions = field(p, "featureDefinitions");
            ImportedProduct {
                source_id: id,
                name: text(p, "name").unwrap_or_default(),
                features: (1..=8)
                    .map(|n| text(field(definitions, &format!("f{n}")), "name").unwrap_or_default())
                    .collect(),
            }
        }))
    }

    pub async fn customers(&self) -> anyhow::Result<Vec<ImportedCustomer>> {
        let reply = self.call("customer/GetCustomers", &[]).await?;
        Ok(field(&reply, "customers")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(customer)
            .collect())
    }

    /// One page of `GetKeys` (from 1): the keys, how many there are and how many pages.
    pub async fn keys(&self, product: i64, page: i64) -> anyhow::Result<(Vec<Value>, i64, i64)> {
        let reply = self
            .call(
                "product/GetKeys",
                &[
                    ("ProductId", product.to_string()),
                    ("Page", page.to_string()),
                    ("OrderBy", "ID ascending".into()),
                    ("ModelVersion", "3".into()),
                ],
            )
            .await?;
        let keys = field(&reply, "licenseKeys")
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok((
            keys,
            int(&reply, "total").unwrap_or(0),
            int(&reply, "pageCount").unwrap_or(0),
        ))
    }

    /// The product's own data objects.
    pub async fn product_data_objects(
        &self,
        product: i64,
    ) -> anyhow::Result<Vec<ImportedDataObject>> {
        let reply = self
            .call(
                "data/ListDataObjects",
                &[
                    ("ReferencerType", "1".into()),
                    ("ReferencerId", product.to_string()),
                ],
            )
            .await?;
        Ok(data_objects(field(&reply, "dataObjects")))
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl Counts {
    fn add(&mut self, outcome: Imported) {
        match outcome {
            Imported::Created => self.created += 1,
            Imported::Updated => self.updated += 1,
            Imported::Unchanged => self.unchanged += 1,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub source: String,
    pub source_product: i64,
    pub product_id: i64,
    pub product: Option<Imported>,
    pub customers: Counts,
    pub keys: Counts,
    /// Keys that could not be imported (each said why on stderr).
    pub keys_failed: usize,
    pub machines_added: usize,
    /// Beyond a key's machine limit, or not a valid machine code.
    pub machines_left_out: usize,
    pub floating_seats_skipped: usize,
    pub data_objects: usize,
    pub features_added: Vec<String>,
    /// What the import did not bring, and how to.
    pub not_imported: Vec<&'static str>,
}

/// Whether a failure is this server's (stop) rather than one key's (go on with the next).
fn fatal(e: &AppError) -> bool {
    matches!(e, AppError::Store(_) | AppError::Forbidden(_))
}

/// Imports `product` of `source` (into `into`, or the product it became before, or a new
/// one), saying how far it is on stderr.
pub async fn import_cryptolens(
    app: &App,
    me: &Principal,
    source: &CryptolensSource,
    product: i64,
    into: Option<i64>,
) -> anyhow::Result<Summary> {
    let origin = ImportSource {
        origin: "cryptolens".into(),
        server: source.server().to_owned(),
    };
    let mut summary = Summary {
        source: source.server().to_owned(),
        source_product: product,
        ..Default::default()
    };
    let described = match source.product(product).await {
        Ok(Some(p)) => p,
        Ok(None) => bail!(
            "{} has no product {product} that this token may see",
            source.server()
        ),
        // A token allowed to read keys but not to list products: the product is named by its id.
        Err(e) if format!("{e:#}").contains("Access denied") => {
            eprintln!(
                "warning: cannot read the product's description ({e:#}); naming it by its id"
            );
            ImportedProduct {
                source_id: product,
                name: format!("Cryptolens product {product}"),
                features: Vec::new(),
            }
        }
        Err(e) => return Err(e),
    };
    let (local, outcome) = app.import_product(me, &origin, &described, into).await?;
    eprintln!(
        "product {product} of {} → product {} ({})",
        source.server(),
        local.id,
        local.name
    );
    summary.product_id = local.id;
    summary.product = Some(outcome);

    match source.customers().await {
        Ok(list) => {
            for c in &list {
                match app.import_customer(me, &origin, c).await {
                    Ok((_, outcome)) => summary.customers.add(outcome),
                    Err(e) if fatal(&e) => return Err(e.into()),
                    Err(e) => eprintln!("customer {}: {e}", c.source_id),
                }
            }
            eprintln!("customers: {}", list.len());
        }
        Err(e) => {
            eprintln!("warning: cannot list customers ({e:#}); importing those the keys name")
        }
    }

    let progress_in_place = std::io::stderr().is_terminal();
    let mut page = 1;
    let mut done = 0usize;
    loop {
        let (keys, total, pages) = source.keys(product, page).await?;
        for k in &keys {
            summary.floating_seats_skipped += floating_seats(k);
            let imported = match key_from_listing(k) {
                Ok(key) => key,
                Err(e) => {
                    summary.keys_failed += 1;
                    eprintln!("{e}");
                    continue;
                }
            };
            match app
                .import_key(me, &origin, local.id, &described.features, &imported)
                .await
            {
                Ok(r) => {
                    summary.keys.add(r.key);
                    // A customer first seen in a key (the customer list did not have it).
                    if r.customer == Some(Imported::Created) {
                        summary.customers.created += 1;
                    }
                    summary.machines_added += r.machines_added;
                    summary.machines_left_out += r.machines_left_out;
                    summary.data_objects += r.data_objects;
                    summary.features_added.extend(r.features_added);
                }
                Err(e) if fatal(&e) => return Err(e.into()),
                Err(e) => {
                    summary.keys_failed += 1;
                    eprintln!("key {}: {e}", imported.key);
                }
            }
            done += 1;
        }
        if progress_in_place {
            eprint!("\rkeys: {done} of {total}");
        } else {
            eprintln!("keys: {done} of {total}");
        }
        if keys.is_empty() || page >= pages {
            break;
        }
        page += 1;
    }
    if progress_in_place {
        eprintln!();
    }

    match source.product_data_objects(product).await {
        Ok(objects) => match app
            .import_product_data_objects(me, &origin, local.id, &objects)
            .await
        {
            Ok(n) => summary.data_objects += n,
            Err(e) if fatal(&e) => return Err(e.into()),
            Err(e) => eprintln!("warning: the product's data objects: {e}"),
        },
        Err(e) => eprintln!("warning: cannot list the product's data objects ({e:#})"),
    }
    summary.not_imported = vec![
        "the product's RSA key pair: bring it with `keyturn product import-rsa-key`",
        "floating seats, which lapse on their own",
        "data objects of single machines",
    ];
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_listed_key_as_the_import_takes_it() {
        let k = json!({
            "productId": 3, "id": 17, "key": "ABCDE-FGHIJ-KLMNO-PQRST",
            "created": "2021-03-04T05:06:07", "expires": "2022-03-04T05:06:07", "period": 365,
            "f1": true, "f2": false, "f3": true, "f4": false, "f5": false, "f6": false, "f7": false, "f8": true,
            "notes": "from the shop", "block": true, "globalId": 99,
            "customer": {"id": 5, "name": "Ann", "email": "ann@example.com", "companyName": "", "created": "2021-01-01T00:00:00"},
            "activatedMachines": [
                {"mid": "abc", "ip": "10.0.0.1", "time": "2021-04-01T00:00:00", "friendlyName": "laptop"},
                {"mid": "floating:def", "ip": "10.0.0.2", "time": "2021-04-02T00:00:00", "floatingExpires": "2021-04-02T00:05:00"}
            ],
            "trialActivation": false, "maxNoOfMachines": 2, "allowedMachines": "abc\nxyz\n",
            "dataObjects": [{"id": 8, "name": "usage", "stringValue": "", "intValue": 41}]
        });
        let key = key_from_listing(&k).unwrap();
        assert_eq!(key.key, "ABCDE-FGHIJ-KLMNO-PQRST");
        assert_eq!(key.created.to_rfc3339(), "2021-03-04T05:06:07+00:00");
        assert_eq!(
            key.expires.unwrap().to_rfc3339(),
            "2022-03-04T05:06:07+00:00"
        );
        assert_eq!(key.period_days, Some(365));
        assert_eq!(
            key.features,
            [true, false, true, false, false, false, false, true]
        );
        assert!(key.blocked);
        assert_eq!(key.customer.as_ref().unwrap().source_id, 5);
        assert_eq!(key.machines.len(), 1, "floating seats are not imported");
        assert_eq!(key.machines[0].name.as_deref(), Some("laptop"));
        assert_eq!(floating_seats(&k), 1);
        assert_eq!(key.allowed_machines, ["abc", "xyz"]);
        assert_eq!(key.data_objects[0].int_value, 41);

        // PascalCase and Unix seconds are read as well.
        let pascal =
            json!({"Key": "K", "Created": 1_600_000_000, "Expires": 1_600_000_000, "Period": 0});
        let key = key_from_listing(&pascal).unwrap();
        assert_eq!(
            key.expires, None,
            "no period and no time after creation: no end"
        );
        let far = json!({"key": "K", "created": "2020-01-01T00:00:00", "expires": "2119-12-08T00:00:00", "period": 0});
        assert_eq!(
            key_from_listing(&far).unwrap().expires,
            None,
            "100 years on: no end"
        );
        let dated = json!({"key": "K", "created": "2020-01-01T00:00:00", "expires": "2020-06-01T00:00:00", "period": 0});
        assert!(key_from_listing(&dated).unwrap().expires.is_some());
        assert!(key_from_listing(&json!({"created": "2020-01-01T00:00:00"})).is_err());
        assert!(key_from_listing(&json!({"key": "K"})).is_err());
    }

    #[test]
    fn source_addresses() {
        for from in [
            "https://app.cryptolens.io",
            "https://app.cryptolens.io/",
            "https://app.cryptolens.io/api/",
        ] {
            let s = CryptolensSource::new(from, "t".into()).unwrap();
            assert_eq!(s.server(), "https://app.cryptolens.io");
            assert!(!format!("{s:?}").contains("\"t\""));
        }
        assert!(CryptolensSource::new("ftp://x", "t".into()).is_err());
        assert!(CryptolensSource::new("not a url", "t".into()).is_err());
    }
}
