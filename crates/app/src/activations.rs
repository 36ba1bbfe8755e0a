//! What programs do with a key: activate a machine, check in, deactivate, validate.

use std::sync::Arc;

use keyturn_core::names::{self, display_name};
use keyturn_core::validation::{
    self, admit_known_machine, admit_machine, validate, ValidationRequest,
};
use keyturn_core::AuditAction;
use keyturn_core::ValidationCode;
use keyturn_core::{
    Activation, ExpiryRule, FeatureName, Fingerprint, License, LicenseKey, Permission, Product,
    ValidationOutcome,
};
use keyturn_store::{Seat, UsageKind};
use serde_json::json;

use crate::cache::LicenseState;
use crate::licenses::{record, record_with};
use crate::webhooks::emit::Snapshot;
use crate::Entity;
use crate::{now, Actor, App, AppError, Principal, Result};

#[derive(Debug, Clone, Default)]
pub struct ActivationRequest {
    pub key: String,
    pub fingerprint: String,
    pub name: Option<String>,
    pub ip: Option<String>,
    /// When given, a key of another product is refused.
    pub product_id: Option<i64>,
    /// A floating lease for this activation, overriding the license's own (Cryptolens
    /// `FloatingTimeInterval`).
    pub lease_seconds: Option<i64>,
    /// Floating seats this activation may take beyond the machine limit (Cryptolens
    /// `MaxOverdraft`).
    pub max_overdraft: i64,
    /// Who activates; the licensee unless a token acts for it.
    pub actor: Option<Actor>,
    /// What an expired license may do: refused on Keyturn's own API (the default), used or
    /// refused as blocked on the Cryptolens API.
    pub expiry: ExpiryRule,
    /// What the program says about the machine's operating system (Cryptolens `OSInfo`),
    /// recorded with the activation.
    pub os_info: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ActivationOutcome {
    pub license: License,
    pub activation: Activation,
    /// `false` when the machine was already activated and only checked in again.
    pub created: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ValidationQuery {
    pub key: String,
    pub fingerprint: Option<String>,
    pub features: Vec<String>,
    pub product_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ValidationReply {
    pub outcome: ValidationOutcome,
    /// The license asked about, as read (shared with the cache, not copied), with its product
    /// when the license holds anything private: the product says what of it the reply may show
    /// ([`LicenseState::licensee_json`]).
    pub license: Option<(Arc<LicenseState>, Option<Arc<Product>>)>,
    /// The product whose key signs this reply: the license's, or the one asked about.
    pub product_id: Option<i64>,
}

pub(crate) fn machine_name(name: Option<&str>) -> Result<Option<String>> {
    Ok(name
        .filter(|n| !n.trim().is_empty())
        .map(|n| display_name("name", n))
        .transpose()?)
}

impl App {
    /// Activates a machine on a license, or renews its activation (and floating lease) if it
    /// already holds one — under its fingerprint, or one that differs by a single component
    /// ([`Fingerprint::same_machine`]). The license row is locked for the whole decision, so concurrent
    /// activations of one key — from any number of server nodes — never exceed its limit.
    pub async fn activate(&self, req: ActivationRequest) -> Result<ActivationOutcome> {
        let mut product_id = None;
        let outcome = self.activate_counted(req, &mut product_id).await;
        self.usage.note_activation(now(), product_id, &outcome);
        outcome
    }

    /// [`App::activate`], telling `product_id` the product of the license once it is found.
    async fn activate_counted(
        &self,
        req: ActivationRequest,
        product_id: &mut Option<i64>,
    ) -> Result<ActivationOutcome> {
        let key = LicenseKey::parse(&req.key)?;
        let fingerprint = Fingerprint::parse(&req.fingerprint)?;
        let name = machine_name(req.name.as_deref())?;
        let os_info = req.os_info.as_deref().map(names::os_info).transpose()?;
        keyturn_core::LeaseSeconds::parse_optional(req.lease_seconds)?;
        if !(0..=1_000_000).contains(&req.max_overdraft) {
            return Err(AppError::invalid(
                "max_overdraft",
                "must be between 0 and 1000000",
            ));
        }
        let state = self
            .license_state(key.as_str())
            .await?
            .ok_or(AppError::NotFound(Entity::License))?;
        *product_id = Some(state.license.product_id);
        if let Some(outcome) = self.check_in(
            &state,
            &req,
            &fingerprint,
            name.as_deref(),
            os_info.as_deref(),
        )? {
            return Ok(outcome);
        }
        let actor = req.actor.unwrap_or(Actor::Licensee);
        let id = state.license.id;
        let mut session = self.store.write().await?;
        let mut license = session
            .lock_license(id)
            .await?
            .ok_or(AppError::NotFound(Entity::License))?;
        let at = now();
        for lapsed in session.delete_lapsed_activations(id, at).await? {
            crate::webhooks::emit::lease_lapsed(&mut session, &lapsed, license.product_id, at)
                .await?;
        }
        let lease = match req.lease_seconds {
            Some(secs) => Some(keyturn_core::dates::later_by_seconds(at, secs)),
            None => license.lease_until(at),
        };
        // The machine may come back with one fingerprint component changed.
        let exact = session.activation_of(id, fingerprint.as_str()).await?;
        let live = match exact {
            Some(_) => Vec::new(),
            None => session.live_activations(id, at).await?,
        };
        let known = exact.or_else(|| {
            live.iter()
                .find(|a| fingerprint.same_machine(&a.fingerprint))
                .cloned()
        });
        if let Some(known) = known {
            admit_known_machine(&license, req.product_id, req.expiry, at)
                .map_err(AppError::Refused)?;
            let seat = Seat {
                name: name.as_deref(),
                ip: req.ip.as_deref(),
                os_info: os_info.as_deref(),
                lease_expires: lease,
                overdraft: false,
            };
            let activation = session.renew_activation(known.id, seat, at).await?;
            session.commit().await?;
            return Ok(ActivationOutcome {
                license,
                activation,
                created: false,
            });
        }
        let live = live.len() as i64;
        // A trial-activation license's period starts afresh when a new machine activates it.
        let trial_from = license.expires;
        if license.trial_activation {
            license.expires = license.trial_expiry(at);
        }
        let overdraft = if lease.is_some() {
            req.max_overdraft
        } else {
            0
        };
        let seat = admit_machine(
            &license,
            req.product_id,
            Some(fingerprint.as_str()),
            live,
            overdraft,
            req.expiry,
            at,
        )
        .map_err(AppError::Refused)?;
        let activation = session
            .insert_seat(
                id,
                fingerprint.as_str(),
                Seat {
                    name: name.as_deref(),
                    ip: req.ip.as_deref(),
                    os_info: os_info.as_deref(),
                    lease_expires: lease,
                    overdraft: seat == validation::Seat::Overdraft,
                },
                at,
            )
            .await?;
        record(
            &mut session,
            id,
            &actor,
            AuditAction::Activated,
            json!({
                "activation_id": activation.id,
                "fingerprint": activation.fingerprint,
                "name": activation.name,
                "ip": activation.ip,
                "os_info": activation.os_info,
                "overdraft": activation.overdraft,
            }),
            at,
        )
        .await?;
        if license.expires != trial_from {
            session.update_license(&license, at).await?;
            record(
                &mut session,
                id,
                &actor,
                AuditAction::TrialStarted,
                json!({"from": trial_from, "to": license.expires}),
                at,
            )
            .await?;
            license = session
                .license(id)
                .await?
                .ok_or(AppError::NotFound(Entity::License))?;
        }
        session.commit().await?;
        Ok(ActivationOutcome {
            license,
            activation,
            created: true,
        })
    }

    /// A node-locked machine activating again with nothing new to record: answered from what
    /// is known, without a write. Its check-in time (and address) is written later with others
    /// in one transaction ([`App::flush_check_ins`]). Anything else — a lease to renew, a new
    /// name, a fingerprint that matches only loosely — takes the locked path.
    fn check_in(
        &self,
        state: &LicenseState,
        req: &ActivationRequest,
        fingerprint: &Fingerprint,
        name: Option<&str>,
        os_info: Option<&str>,
    ) -> Result<Option<ActivationOutcome>> {
        let at = now();
        if req.lease_seconds.is_some() || state.license.lease_until(at).is_some() {
            return Ok(None);
        }
        let Some(known) = state
            .activations
            .iter()
            .find(|a| a.fingerprint == fingerprint.as_str() && a.lease_expires.is_none())
        else {
            return Ok(None);
        };
        if name.is_some_and(|n| Some(n) != known.name.as_deref())
            || os_info.is_some_and(|o| Some(o) != known.os_info.as_deref())
        {
            return Ok(None);
        }
        admit_known_machine(&state.license, req.product_id, req.expiry, at)
            .map_err(AppError::Refused)?;
        let mut activation = known.clone();
        activation.last_seen = at;
        if req.ip.is_some() {
            activation.ip = req.ip.clone();
        }
        self.check_ins.note(&activation);
        Ok(Some(ActivationOutcome {
            license: state.license.clone(),
            activation,
            created: false,
        }))
    }

    /// Writes the check-ins noted since the last call, and the validations and activations
    /// counted since ([`crate::usage`]), in one transaction; returns how many check-ins.
    /// The server calls this every few seconds and on shutdown.
    pub async fn flush_check_ins(&self) -> Result<usize> {
        let batch = self.check_ins.take();
        let counts = self.usage.take();
        if batch.is_empty() && counts.is_empty() {
            return Ok(0);
        }
        let written = async {
            let mut session = self.store.write().await?;
            for a in &batch {
                session
                    .record_check_in(a.id, a.ip.as_deref(), a.last_seen)
                    .await?;
            }
            session.add_usage(&counts).await?;
            session.commit().await
        }
        .await;
        if let Err(e) = written {
            self.check_ins.restore(batch);
            self.usage.restore(counts);
            return Err(e.into());
        }
        Ok(batch.len())
    }

    /// How many check-ins wait to be written.
    pub fn pending_check_ins(&self) -> usize {
        self.check_ins.len()
    }

    /// Frees a machine's seat, as the program on that machine asks with the key. Returns the
    /// removed activation and the product whose key signs the reply.
    pub async fn deactivate(
        &self,
        key: &str,
        fingerprint: &str,
        product_id: Option<i64>,
    ) -> Result<(Activation, i64)> {
        self.deactivate_by(Actor::Licensee, key, fingerprint, product_id, false)
            .await
    }

    /// Deactivation on behalf of `actor`; with `only_floating`, a node-locked activation is not
    /// released (Cryptolens's floating deactivation).
    pub(crate) async fn deactivate_by(
        &self,
        actor: Actor,
        key: &str,
        fingerprint: &str,
        product_id: Option<i64>,
        only_floating: bool,
    ) -> Result<(Activation, i64)> {
        let key = LicenseKey::parse(key)?;
        let fingerprint = Fingerprint::parse(fingerprint)?;
        let license = self
            .store
            .read()
            .await?
            .license_by_key(key.as_str())
            .await?
            .filter(|l| product_id.is_none_or(|p| p == l.product_id))
            .ok_or(AppError::NotFound(Entity::License))?;
        let mut session = self.store.write().await?;
        session
            .lock_license(license.id)
            .await?
            .ok_or(AppError::NotFound(Entity::License))?;
        let activation = match session
            .activation_of(license.id, fingerprint.as_str())
            .await?
        {
            Some(exact) => Some(exact),
            None => session
                .live_activations(license.id, now())
                .await?
                .into_iter()
                .find(|a| fingerprint.same_machine(&a.fingerprint)),
        }
        .filter(|a| !only_floating || a.lease_expires.is_some())
        .ok_or(AppError::NotFound(Entity::Activation))?;
        let removed = self.remove_activation(session, actor, activation).await?;
        Ok((removed, license.product_id))
    }

    /// Removes an activation by id, as the vendor does for a customer who lost a machine.
    pub async fn delete_activation(&self, principal: &Principal, id: i64) -> Result<Activation> {
        principal.require(Permission::ActivationsWrite)?;
        let mut session = self.store.write().await?;
        let activation = session.activation(id).await?;
        let license = match &activation {
            Some(a) => session.lock_license(a.license_id).await?,
            None => None,
        };
        principal.require_license_part(
            Permission::ActivationsWrite,
            license.as_ref(),
            Entity::Activation,
        )?;
        let activation = activation.ok_or(AppError::NotFound(Entity::Activation))?;
        self.remove_activation(session, principal.actor.clone(), activation)
            .await
    }

    pub(crate) async fn remove_activation(
        &self,
        mut session: keyturn_store::Session,
        actor: Actor,
        activation: Activation,
    ) -> Result<Activation> {
        session.delete_activation(activation.id).await?;
        record_with(
            &mut session,
            activation.license_id,
            &actor,
            AuditAction::Deactivated,
            json!({"activation_id": activation.id, "fingerprint": activation.fingerprint}),
            Some(Snapshot::Activation(&activation)),
            now(),
        )
        .await?;
        session.commit().await?;
        Ok(activation)
    }

    /// The machines currently holding a license (lapsed floating leases excluded).
    pub async fn activations(
        &self,
        principal: &Principal,
        license_id: i64,
    ) -> Result<Vec<Activation>> {
        principal.require(Permission::ActivationsRead)?;
        let mut session = self.store.read().await?;
        let found = session.license(license_id).await?;
        principal.require_license(Permission::ActivationsRead, found.as_ref())?;
        Ok(session.live_activations(license_id, now()).await?)
    }

    /// A license as the program holding its key may see it: the notes and metadata only as far
    /// as its product makes them public ([`License::licensee_view`]).
    pub async fn licensee_view(&self, license: &License) -> Result<License> {
        if !license.has_private_fields() {
            return Ok(license.clone());
        }
        let product = self
            .product_row(license.product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        Ok(license.licensee_view(&product))
    }

    /// The product of the license with `key`, if there is one: the key whose signature a
    /// refusal about that key carries.
    pub async fn product_of_key(&self, key: &str) -> Result<Option<i64>> {
        let Ok(key) = LicenseKey::parse(key) else {
            return Ok(None);
        };
        Ok(self
            .license_state(key.as_str())
            .await?
            .map(|s| s.license.product_id))
    }

    /// Answers whether a key is good to use. Reads only: the validation path never writes.
    pub async fn validate(&self, q: ValidationQuery) -> Result<ValidationReply> {
        let key = LicenseKey::parse(&q.key)?;
        let fingerprint = q
            .fingerprint
            .as_deref()
            .map(Fingerprint::parse)
            .transpose()?;
        let features = FeatureName::parse_list(&q.features)?;
        let Some(state) = self.license_state(key.as_str()).await? else {
            self.usage
                .note(now(), UsageKind::Validation, None, ValidationCode::NotFound);
            return Ok(ValidationReply {
                outcome: ValidationOutcome::not_found(),
                license: None,
                product_id: q.product_id,
            });
        };
        let at = now();
        let live = match fingerprint {
            Some(_) => state.live(at),
            None => Default::default(),
        };
        let license = &state.license;
        let outcome = validate(
            license,
            &live,
            &ValidationRequest {
                product_id: q.product_id,
                fingerprint: fingerprint.as_ref(),
                features: &features,
            },
            at,
        );
        self.usage.note(
            at,
            UsageKind::Validation,
            Some(license.product_id),
            outcome.code,
        );
        // Only a license with notes or metadata needs its product's word on what to show.
        let product = match license.has_private_fields() {
            true => Some(
                self.product_row(license.product_id)
                    .await?
                    .ok_or(AppError::NotFound(Entity::Product))?,
            ),
            false => None,
        };
        Ok(ValidationReply {
            outcome,
            product_id: q.product_id.or(Some(license.product_id)),
            license: Some((state.clone(), product)),
        })
    }
}

/// Check-ins of known machines waiting to be written, by activation id (the latest wins).
#[derive(Clone, Default)]
pub(crate) struct CheckIns(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i64, Activation>>>,
);

impl CheckIns {
    fn note(&self, activation: &Activation) {
        self.0
            .lock()
            .expect("check-ins lock")
            .insert(activation.id, activation.clone());
    }

    fn len(&self) -> usize {
        self.0.lock().expect("check-ins lock").len()
    }

    fn take(&self) -> Vec<Activation> {
        let mut pending = self.0.lock().expect("check-ins lock");
        std::mem::take(&mut *pending).into_values().collect()
    }

    /// Puts back a batch that could not be written, unless newer check-ins replaced it.
    fn restore(&self, batch: Vec<Activation>) {
        let mut pending = self.0.lock().expect("check-ins lock");
        for a in batch {
            pending.entry(a.id).or_insert(a);
        }
    }
}
