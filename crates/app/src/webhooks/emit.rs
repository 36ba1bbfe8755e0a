//! Writing events: in the transaction of the change they report, from the few places every
//! change passes through ([`crate::licenses::record`] for licenses and their activations, and
//! the helpers here for customers, payments and subscriptions).
//!
//! Cost on the write path: one read of the enabled endpoints (a handful of rows) per change. Only
//! when some endpoint wants the event is the object read (as the API shows it) and one event row
//! plus one delivery row per wanting endpoint written. The fan-out happens here, at write time,
//! because it is that cheap and because it fixes who gets an event by the endpoints that exist
//! when it happens: no dispatcher has to follow the events table in commit order (which ids do
//! not give on PostgreSQL), and an endpoint created later does not receive the past.

use chrono::{DateTime, Utc};
use keyturn_core::payment::{Payment, PaymentStatus, Subscription};
use keyturn_core::webhook::{EventFilter, EventType};
use keyturn_core::{Activation, AuditAction, Customer, License};
use keyturn_store::Session;
use rand::RngCore;
use serde::Serialize;
use serde_json::{json, Value};

use crate::Result;

/// What an event is about: the license whose order its deliveries keep, and the product an
/// endpoint's scope is checked against.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Subject {
    pub license_id: Option<i64>,
    pub product_id: Option<i64>,
}

/// The state of a license or activation taken before the change removed it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Snapshot<'a> {
    License(&'a License),
    Activation(&'a Activation),
}

/// The enabled endpoints that want `t`, whatever their product scope.
async fn interested(s: &mut Session, t: EventType) -> Result<Vec<(i64, Option<i64>)>> {
    let mut out = Vec::new();
    for e in s.webhook_targets().await? {
        // An endpoint's list was validated when it was saved; one that no longer reads (a type
        // renamed by a later version) simply wants nothing.
        if EventFilter::parse(&e.events).is_ok_and(|f| f.matches(t)) {
            out.push((e.id, e.product_id));
        }
    }
    Ok(out)
}

/// Of `wanting`, the endpoints whose product scope `product_id` is within.
fn in_scope(wanting: &[(i64, Option<i64>)], product_id: Option<i64>) -> Vec<i64> {
    wanting
        .iter()
        .filter(|(_, scope)| scope.is_none() || *scope == product_id)
        .map(|(id, _)| *id)
        .collect()
}

/// A new event id: what receivers deduplicate by, random so a restored backup never reuses one.
fn event_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("evt_{}", hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes one event with a delivery to each of `endpoints`; returns the event's public id.
pub(crate) async fn write(
    s: &mut Session,
    t: EventType,
    subject: Subject,
    object: Value,
    details: Option<Value>,
    endpoints: &[i64],
    at: DateTime<Utc>,
) -> Result<String> {
    let id = event_id();
    let mut data = json!({ "object": object });
    if let Some(details) = details {
        data["details"] = details;
    }
    let body = json!({
        "id": id,
        "type": t.as_str(),
        "created": at,
        "data": data,
    })
    .to_string();
    s.insert_webhook_event(&id, t.as_str(), subject.license_id, &body, endpoints, at)
        .await?;
    Ok(id)
}

/// Writes `t` about `object` for the endpoints that want it, if any.
async fn emit(
    s: &mut Session,
    t: EventType,
    subject: Subject,
    object: &impl Serialize,
    at: DateTime<Utc>,
) -> Result<()> {
    let wanting = interested(s, t).await?;
    let endpoints = in_scope(&wanting, subject.product_id);
    if endpoints.is_empty() {
        return Ok(());
    }
    write(s, t, subject, json!(object), None, &endpoints, at).await?;
    Ok(())
}

/// The license fields an `Updated` audit entry says changed.
fn changed_fields(details: &Value) -> Vec<&str> {
    details
        .get("changes")
        .and_then(Value::as_object)
        .map(|c| c.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The events an audit entry of a license announces, written with it. The object is read in
/// the transaction (after the change), unless `snapshot` holds it because the change removed it.
pub(crate) async fn audited(
    s: &mut Session,
    license_id: i64,
    action: AuditAction,
    details: &Value,
    snapshot: Option<Snapshot<'_>>,
    at: DateTime<Utc>,
) -> Result<()> {
    let types = EventType::for_audit(action, &changed_fields(details));
    if types.is_empty() {
        return Ok(());
    }
    let mut wanted = Vec::with_capacity(types.len());
    for t in types {
        let wanting = interested(s, t).await?;
        if !wanting.is_empty() {
            wanted.push((t, wanting));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let license = match snapshot {
        Some(Snapshot::License(l)) => Some(l.clone()),
        _ => s.license(license_id).await?,
    };
    let Some(license) = license else {
        return Ok(());
    };
    let subject = Subject {
        license_id: Some(license_id),
        product_id: Some(license.product_id),
    };
    for (t, wanting) in wanted {
        let endpoints = in_scope(&wanting, subject.product_id);
        if endpoints.is_empty() {
            continue;
        }
        let object = match t {
            EventType::ActivationCreated | EventType::ActivationDeleted => {
                let activation = match snapshot {
                    Some(Snapshot::Activation(a)) => Some(a.clone()),
                    _ => match details.get("activation_id").and_then(Value::as_i64) {
                        Some(id) => s.activation(id).await?,
                        None => None,
                    },
                };
                match activation {
                    Some(a) => json!(a),
                    None => continue,
                }
            }
            _ => json!(license),
        };
        write(s, t, subject, object, Some(details.clone()), &endpoints, at).await?;
    }
    Ok(())
}

/// Licenses imported in bulk (their audit entries written by the bulk insert): each announced
/// as created, as one made by hand would be. The endpoints are asked once for all of them.
pub(crate) async fn imported(
    s: &mut Session,
    ids: &[i64],
    details: &Value,
    at: DateTime<Utc>,
) -> Result<()> {
    let wanting = interested(s, EventType::LicenseCreated).await?;
    if wanting.is_empty() {
        return Ok(());
    }
    for id in ids {
        let Some(license) = s.license(*id).await? else {
            continue;
        };
        let endpoints = in_scope(&wanting, Some(license.product_id));
        if endpoints.is_empty() {
            continue;
        }
        let subject = Subject {
            license_id: Some(license.id),
            product_id: Some(license.product_id),
        };
        write(
            s,
            EventType::LicenseCreated,
            subject,
            json!(license),
            Some(details.clone()),
            &endpoints,
            at,
        )
        .await?;
    }
    Ok(())
}

/// A floating activation's lease ran out: announced once per lease end, by whichever comes
/// first, the sweep or the activation that clears the seat away. `license` is its license.
pub(crate) async fn lease_lapsed(
    s: &mut Session,
    activation: &Activation,
    product_id: i64,
    at: DateTime<Utc>,
) -> Result<()> {
    let Some(until) = activation.lease_expires else {
        return Ok(());
    };
    if !s
        .insert_webhook_notice("lease_lapsed", activation.id, until)
        .await?
    {
        return Ok(());
    }
    emit(
        s,
        EventType::FloatingLeaseLapsed,
        Subject {
            license_id: Some(activation.license_id),
            product_id: Some(product_id),
        },
        activation,
        at,
    )
    .await
}

/// A customer was created or changed.
pub(crate) async fn customer(
    s: &mut Session,
    t: EventType,
    customer: &Customer,
    at: DateTime<Utc>,
) -> Result<()> {
    emit(s, t, Subject::default(), customer, at).await
}

/// The product a plan belongs to, looked up only when an endpoint's scope needs it.
async fn plan_product(
    s: &mut Session,
    wanting: &[(i64, Option<i64>)],
    plan_id: Option<i64>,
) -> Result<Option<i64>> {
    if wanting.iter().all(|(_, scope)| scope.is_none()) {
        return Ok(None);
    }
    Ok(match plan_id {
        Some(id) => s.plan(id).await?.map(|p| p.product_id),
        None => None,
    })
}

/// A payment was recorded (`was`: `None`) or changed status.
pub(crate) async fn payment(
    s: &mut Session,
    was: Option<PaymentStatus>,
    payment: &Payment,
    at: DateTime<Utc>,
) -> Result<()> {
    let Some(t) = EventType::for_payment(was, payment.status) else {
        return Ok(());
    };
    let wanting = interested(s, t).await?;
    if wanting.is_empty() {
        return Ok(());
    }
    let product_id = plan_product(s, &wanting, payment.plan_id).await?;
    let endpoints = in_scope(&wanting, product_id);
    if endpoints.is_empty() {
        return Ok(());
    }
    let mut object = payment.clone();
    object.license_ids = s.payment_license_ids(payment.id).await?;
    let subject = Subject {
        license_id: None,
        product_id,
    };
    write(s, t, subject, json!(object), None, &endpoints, at).await?;
    Ok(())
}

/// A subscription's record changed from `before` to `after`.
pub(crate) async fn subscription(
    s: &mut Session,
    before: &Subscription,
    after: &Subscription,
    at: DateTime<Utc>,
) -> Result<()> {
    let Some(t) = EventType::for_subscription(before, after) else {
        return Ok(());
    };
    let wanting = interested(s, t).await?;
    if wanting.is_empty() {
        return Ok(());
    }
    let product_id = plan_product(s, &wanting, after.plan_id).await?;
    let endpoints = in_scope(&wanting, product_id);
    if endpoints.is_empty() {
        return Ok(());
    }
    // Ordered with its license's events: a renewal's subscription.updated comes with (and
    // before or after, as written) the license.renewed it causes.
    let subject = Subject {
        license_id: after.license_id,
        product_id,
    };
    write(s, t, subject, json!(after), None, &endpoints, at).await?;
    Ok(())
}

/// Anything else, about no license or product: provider events that failed, mail that failed.
pub(crate) async fn other(
    s: &mut Session,
    t: EventType,
    object: &impl Serialize,
    at: DateTime<Utc>,
) -> Result<()> {
    emit(s, t, Subject::default(), object, at).await
}

/// The expiry of a license as the sweep found it: announced once per expiry value.
pub(crate) async fn expiry(
    s: &mut Session,
    t: EventType,
    kind: &str,
    license_id: i64,
    expires: DateTime<Utc>,
    wanting: &[(i64, Option<i64>)],
    at: DateTime<Utc>,
) -> Result<bool> {
    if !s.insert_webhook_notice(kind, license_id, expires).await? {
        return Ok(false);
    }
    let Some(license) = s.license(license_id).await? else {
        return Ok(false);
    };
    // The expiry moved since the sweep read it: this value is no longer the license's.
    if license.expires != Some(expires) {
        return Ok(false);
    }
    let endpoints = in_scope(wanting, Some(license.product_id));
    if endpoints.is_empty() {
        return Ok(false);
    }
    let subject = Subject {
        license_id: Some(license_id),
        product_id: Some(license.product_id),
    };
    write(s, t, subject, json!(license), None, &endpoints, at).await?;
    Ok(true)
}

/// Whether any enabled endpoint wants one of `types`.
pub(crate) async fn wants_any(s: &mut Session, types: &[EventType]) -> Result<bool> {
    Ok(s.webhook_targets()
        .await?
        .iter()
        .any(|e| EventFilter::parse(&e.events).is_ok_and(|f| types.iter().any(|t| f.matches(*t)))))
}

/// The endpoints that want `t` (for the sweeps, which ask once per batch).
pub(crate) async fn wanting(s: &mut Session, t: EventType) -> Result<Vec<(i64, Option<i64>)>> {
    interested(s, t).await
}
