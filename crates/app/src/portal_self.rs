//! The customer portal's self-service: a license's own page, freeing a machine, downloading an
//! offline license file, and the buyer's account (name, email).
//!
//! Invariants:
//!
//! * Every id a buyer names (license, machine) is looked up through the buyer's email: a
//!   license of another customer, or a machine of another license, is `NotFound` exactly like
//!   an unknown id, so the portal never says that an id exists.
//! * What a buyer may do comes from the license's plan ([`BuyerRules`]); a license issued
//!   without a plan follows the defaults a new plan has.
//! * Freeing is decided with the license row locked: the count of this license's frees in the
//!   window (its audit log's `deactivated` entries under a `customer:` actor) and the removal
//!   happen in one transaction, so two frees at once cannot both slip under the limit. The
//!   removal itself is [`App::remove_activation`], the one the API's deactivation ends in, so
//!   the seat, the audit entry and the webhook are the same whoever frees it.
//! * A license file is made by [`App::write_license_file`], as the API's: same format, same
//!   signer, recorded in the audit log; its life is the plan's, never past the license's expiry.
//! * An email change is only asked for in a session; it applies when the link mailed to the
//!   NEW address is followed (proof that the buyer reads it). The link's secret is held as
//!   its SHA-256, works once and for [`EMAIL_CHANGE_LIFETIME`].
//! * Every buyer action is written to the audit log of each license it touches, under
//!   `customer:<email>`.

use chrono::{DateTime, Duration, Utc};
use keyturn_core::license_file::FileOptions;
use keyturn_core::names::display_name;
use keyturn_core::payment::SubscriptionStatus;
use keyturn_core::validation::admit_known_machine;
use keyturn_core::{
    Activation, AuditAction, BuyerRules, Email, ExpiryRule, Fingerprint, License, LicenseStatus,
    Product, SelfServiceRefusal, TokenHash, TokenSecret,
};
use keyturn_store::Session;
use serde_json::json;

use crate::licenses::record;
use crate::portal::normalized;
use crate::{mail, Actor, App, AppError, Entity, PortalSession, Result};

/// How long an email change's confirmation link works.
pub const EMAIL_CHANGE_LIFETIME: Duration = Duration::hours(1);

/// One license with everything its page shows.
#[derive(Debug, Clone)]
pub struct PortalLicenseDetail {
    pub license: License,
    pub status: LicenseStatus,
    pub product: Product,
    pub plan_name: Option<String>,
    /// What the buyer may do with it.
    pub rules: BuyerRules,
    /// Machines that count now.
    pub machines: Vec<Activation>,
    /// Frees left in the window now (0 when freeing is not allowed).
    pub frees_left: i64,
    /// When a running subscription renews the license.
    pub renews: Option<DateTime<Utc>>,
    /// While blocked: the reason the vendor gave for the buyer, if any.
    pub blocked_reason: Option<String>,
}

/// What asking to free a machine came to.
#[derive(Debug, Clone)]
pub enum FreeOutcome {
    Freed(Activation),
    Refused(SelfServiceRefusal),
}

/// A license file for the buyer to save.
#[derive(Debug, Clone)]
pub struct BuyerLicenseFile {
    pub text: String,
    /// A file name for it, made of the license id only.
    pub file_name: String,
}

/// The buyer's account as the account page shows it.
#[derive(Debug, Clone)]
pub struct PortalAccount {
    pub email: String,
    pub name: String,
}

/// What following an email change link came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChangeOutcome {
    Changed {
        new_email: String,
    },
    /// Unknown, used or expired.
    Refused,
}

/// Whether `license` belongs to a customer with the buyer's email.
async fn owned_by(s: &mut Session, license: &License, email: &str) -> Result<bool> {
    let Some(customer_id) = license.customer_id else {
        return Ok(false);
    };
    Ok(s.customer(customer_id)
        .await?
        .and_then(|c| c.email)
        .is_some_and(|e| e.trim().to_lowercase() == email))
}

/// The plan's rules for `license` (the defaults when it has no plan).
async fn rules_of(s: &mut Session, license: &License) -> Result<(BuyerRules, Option<String>)> {
    Ok(match license.plan_id {
        Some(id) => match s.plan(id).await? {
            Some(plan) => (plan.buyers, Some(plan.name)),
            None => (BuyerRules::default(), None),
        },
        None => (BuyerRules::default(), None),
    })
}

fn not_found() -> AppError {
    AppError::NotFound(Entity::License)
}

impl App {
    /// One of the buyer's licenses with its machines and what the buyer may do with it.
    pub async fn portal_license(
        &self,
        buyer: &PortalSession,
        id: i64,
    ) -> Result<PortalLicenseDetail> {
        let now = self.now();
        let mut s = self.store.read().await?;
        let license = s.license(id).await?.ok_or_else(not_found)?;
        if !owned_by(&mut s, &license, &buyer.email).await? {
            return Err(not_found());
        }
        let product = s
            .product(license.product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let (rules, plan_name) = rules_of(&mut s, &license).await?;
        let frees_left = if rules.buyers_may_free_machines {
            let used = s
                .customer_frees_since(license.id, rules.frees_since(now))
                .await?;
            (rules.buyer_frees_max - used).max(0)
        } else {
            0
        };
        let machines = s
            .all_activations(license.id)
            .await?
            .into_iter()
            .filter(|a| a.is_live(now))
            .collect();
        let renews = s
            .portal_subscriptions(&buyer.email, 50)
            .await?
            .into_iter()
            .find(|sub| {
                sub.license_id == Some(license.id)
                    && !sub.cancel_at_period_end
                    && matches!(
                        sub.status,
                        SubscriptionStatus::Active | SubscriptionStatus::Trialing
                    )
            })
            .and_then(|sub| sub.period_end);
        let blocked_reason = if license.blocked {
            s.public_block_reason(license.id).await?
        } else {
            None
        };
        Ok(PortalLicenseDetail {
            blocked_reason,
            status: LicenseStatus::of(&license, now),
            license,
            product,
            plan_name,
            rules,
            machines,
            frees_left,
            renews,
        })
    }

    /// Frees one of the buyer's machines, if the plan allows and the window's frees are not
    /// used up; over the limit nothing is freed.
    pub async fn portal_free_machine(
        &self,
        buyer: &PortalSession,
        license_id: i64,
        activation_id: i64,
    ) -> Result<FreeOutcome> {
        let now = self.now();
        let mut s = self.store.write().await?;
        let license = s.lock_license(license_id).await?.ok_or_else(not_found)?;
        if !owned_by(&mut s, &license, &buyer.email).await? {
            return Err(not_found());
        }
        let activation = s
            .activation(activation_id)
            .await?
            .filter(|a| a.license_id == license.id && a.is_live(now))
            .ok_or(AppError::NotFound(Entity::Activation))?;
        let (rules, _) = rules_of(&mut s, &license).await?;
        let used = s
            .customer_frees_since(license.id, rules.frees_since(now))
            .await?;
        if let Err(refusal) = rules.may_free(used) {
            return Ok(FreeOutcome::Refused(refusal));
        }
        let actor = Actor::Customer {
            email: buyer.email.clone(),
        };
        let freed = self.remove_activation(s, actor, activation).await?;
        Ok(FreeOutcome::Freed(freed))
    }

    /// A signed license file of one of the buyer's licenses for the machine with `machine_code`,
    /// if the plan lets buyers download files.
    pub async fn portal_license_file(
        &self,
        buyer: &PortalSession,
        license_id: i64,
        machine_code: &str,
    ) -> Result<std::result::Result<BuyerLicenseFile, SelfServiceRefusal>> {
        let now = self.now();
        let mut s = self.store.write().await?;
        let license = s.lock_license(license_id).await?.ok_or_else(not_found)?;
        if !owned_by(&mut s, &license, &buyer.email).await? {
            return Err(not_found());
        }
        let (rules, _) = rules_of(&mut s, &license).await?;
        let ttl_days = match rules.file_days(license.expires, now) {
            Ok(days) => days,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if admit_known_machine(&license, None, ExpiryRule::Refuse, now).is_err() {
            return Ok(Err(SelfServiceRefusal::LicenseNotInUse));
        }
        let fingerprint = Fingerprint::parse(machine_code.trim())
            .map_err(|_| AppError::invalid("machine_code", "is not a machine code"))?;
        let options = FileOptions {
            fingerprint: Some(fingerprint),
            ttl_days,
            encrypt: false,
        };
        let actor = Actor::Customer {
            email: buyer.email.clone(),
        };
        let text = self
            .write_license_file(&mut s, &license, &actor, &options, now)
            .await?;
        s.commit().await?;
        Ok(Ok(BuyerLicenseFile {
            text,
            file_name: format!("license-{}.lic", license.id),
        }))
    }

    pub async fn portal_account(&self, buyer: &PortalSession) -> Result<PortalAccount> {
        let name = self
            .store
            .read()
            .await?
            .portal_customer_name(&buyer.email)
            .await?
            .unwrap_or_default();
        Ok(PortalAccount {
            email: buyer.email.clone(),
            name,
        })
    }

    /// Renames the buyer's customer records.
    pub async fn portal_set_name(&self, buyer: &PortalSession, name: &str) -> Result<()> {
        let name = display_name("name", name)?;
        let now = self.now();
        let mut s = self.store.write().await?;
        s.set_portal_customer_name(&buyer.email, &name).await?;
        let actor = Actor::Customer {
            email: buyer.email.clone(),
        };
        for id in s.portal_license_ids(&buyer.email).await? {
            record(
                &mut s,
                id,
                &actor,
                AuditAction::CustomerChanged,
                json!({"by": "portal", "name": name}),
                now,
            )
            .await?;
        }
        s.commit().await?;
        Ok(())
    }

    /// Mails a confirmation link to `new_email`; nothing changes until it is followed.
    /// Throttled like sign-in links (per address and per client).
    pub async fn portal_request_email_change(
        &self,
        buyer: &PortalSession,
        new_email: &str,
        ip: Option<&str>,
        base: &str,
    ) -> Result<crate::LinkRequest> {
        let new_email = normalized(new_email);
        if Email::parse(&new_email).is_err() {
            return Err(AppError::invalid("email", "is not an email address"));
        }
        if new_email == buyer.email {
            return Err(AppError::invalid("email", "is already your address"));
        }
        if !self.portal_count(&new_email, ip).await? {
            return Ok(crate::LinkRequest::Throttled);
        }
        let now = self.now();
        let mut s = self.store.write().await?;
        s.prune_portal_email_changes(now - EMAIL_CHANGE_LIFETIME)
            .await?;
        let secret = TokenSecret::generate_session();
        s.insert_portal_email_change(
            &secret.hash(),
            &buyer.email,
            &new_email,
            now,
            now + EMAIL_CHANGE_LIFETIME,
        )
        .await?;
        let link = format!(
            "{}/portal/account/email/{}",
            base.trim_end_matches('/'),
            secret.expose()
        );
        mail::queue_email_change(&mut s, &new_email, &link, now).await?;
        let actor = Actor::Customer {
            email: buyer.email.clone(),
        };
        for id in s.portal_license_ids(&buyer.email).await? {
            record(
                &mut s,
                id,
                &actor,
                AuditAction::CustomerChanged,
                json!({"by": "portal", "email_change_requested": new_email}),
                now,
            )
            .await?;
        }
        s.commit().await?;
        Ok(crate::LinkRequest::Accepted)
    }

    /// Applies the email change a link's secret stands for: once, within its lifetime.
    pub async fn portal_confirm_email_change(&self, presented: &str) -> Result<EmailChangeOutcome> {
        let now = self.now();
        let mut s = self.store.write().await?;
        let Some(change) = s
            .use_portal_email_change(&TokenHash::of(presented), now)
            .await?
        else {
            return Ok(EmailChangeOutcome::Refused);
        };
        s.move_portal_email(&change.old_email, &change.new_email)
            .await?;
        let actor = Actor::Customer {
            email: change.old_email.clone(),
        };
        for id in s.portal_license_ids(&change.new_email).await? {
            record(
                &mut s,
                id,
                &actor,
                AuditAction::CustomerChanged,
                json!({"by": "portal", "email": {"from": change.old_email, "to": change.new_email}}),
                now,
            )
            .await?;
        }
        s.commit().await?;
        Ok(EmailChangeOutcome::Changed {
            new_email: change.new_email,
        })
    }
}
