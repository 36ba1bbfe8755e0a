//! Keyturn's use cases. Each public method of [`App`] is one thing a user of the server can do:
//! it checks the caller's permissions, applies the domain rules from `keyturn-core`, and makes
//! the change in one transaction together with its audit entry.

mod activations;
mod branding;
mod cache;
mod catalog;
mod clock;
mod console;
mod console_account;
mod cryptolens;
mod customers;
mod dashboard;
mod data_objects;
mod error;
mod files;
mod forms;
mod gateway;
mod import;
mod ledger;
mod license_urls;
mod licenses;
mod mail;
mod messages;
mod metrics;
mod payments;
mod portal;
mod portal_billing;
mod portal_self;
mod principal;
mod reminders;
mod sales;
mod setup;
mod signatures;
mod signers;
mod skm;
mod tokens;
mod usage;
mod webhooks;

use chrono::{DateTime, Utc};
use keyturn_store::Store;

pub use activations::{ActivationOutcome, ActivationRequest, ValidationQuery, ValidationReply};
pub use branding::{compose, default_template, ComposedMail, TemplateView};
pub use cache::{LicenseState, DEFAULT_CAPACITY as DEFAULT_LICENSE_CACHE};
pub use catalog::{NewPlanInput, NewProductInput, PlanPatch, ProductPatch};
pub use clock::{Clock, SystemClock};
pub use console::{csrf_token, ConsoleSession, LicenseOverview, SignIn};
pub use console_account::{Checked, Enrolment, SecondFactor, SessionView, UserRow, CHALLENGE_TTL};
pub use cryptolens::{
    ClActivation, ClCreated, ClKeyPage, ClLicense, ClNewKey, ClProduct, KEYS_PER_PAGE, TRIAL_DAYS,
};
pub use customers::{CustomerPatch, NewCustomerInput};
pub use dashboard::{Dashboard, Revenue, EXPIRING_DAYS};
pub use data_objects::{ClDataTarget, DataChange, DataSelector, NewDataObject};
pub use error::{AppError, Entity};
pub use files::{LicenseFileRequest, DEFAULT_FILE_TTL_DAYS};
pub use forms::{
    CheckoutOutcome, CheckoutPlan, NewPaymentForm, PaymentFormPatch, PaymentSetup,
    MAX_FORM_QUANTITY,
};
pub use gateway::{GatewayFuture, PaymentGateway, SyncReport};
pub use import::{
    ImportSource, Imported, ImportedCustomer, ImportedDataObject, ImportedKey, ImportedMachine,
    ImportedProduct, KeyImported,
};
pub use keyturn_core::provider::{EventEnvelope, EventOutcome, ProviderError};
pub use keyturn_store::QueuedMail;
pub use keyturn_store::{Dialect, StoreError, WriteFailure};
pub use keyturn_store::{ProviderActivity, RefusalCount};
pub use ledger::{
    EventListQuery, EventTranslator, MailListQuery, PaymentListQuery, RetryOutcome,
    SubscriptionListQuery, LEDGER_PAGE,
};
pub use license_urls::{LicenseUrlPatch, LicenseUrlSecret, NewLicenseUrl};
pub use licenses::{
    BlockReasons, Extension, LicensePatch, LicenseQuery, LicenseSpec, TrialRequest,
};
pub use mail::retry_delay;
pub use messages::{MessageQuery, NewMessage};
pub use metrics::{webhook_outcome, Metrics};
pub use portal::{LinkRequest, PortalLicense, PortalSession, PortalSignIn};
pub use portal_billing::{
    BillingAccount, BillingPortal, PortalBilling, PortalPayment, PortalSubscription, BILLING_PATH,
};
pub use portal_self::{
    BuyerLicenseFile, EmailChangeOutcome, FreeOutcome, PortalAccount, PortalLicenseDetail,
    EMAIL_CHANGE_LIFETIME,
};
pub use principal::{Actor, Principal};
pub use reminders::ReminderReport;
pub use sales::{
    CustomerChoice, CustomerOverview, IssueRequest, Issued, Listed, CUSTOMER_PAYMENTS_SHOWN,
};
pub use setup::{ProductKeys, ProviderStatus, Refusal, SETUP_PAGE};
pub use signatures::{SignatureSlot, SignedState, REUSE_FOR};
pub use signers::SigningKeys;
pub use tokens::NewTokenInput;
pub use usage::code_name;
pub use webhooks::{
    AttemptResult, DeliveryLog, DeliveryRows, EndpointRow, EndpointSecret, NewWebhookEndpoint,
    Outgoing, SweepReport, WebhookEndpointPatch, WebhookPolicy,
};

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// The largest page a listing returns.
pub const MAX_PAGE: i64 = 500;
const DEFAULT_PAGE: i64 = 50;

/// One page of a listing; `next_cursor` fetches the next page when there is one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says that more exist.
    fn from_rows(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
        }
    }
}

/// Listing position and size as the caller gave them.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

impl PageRequest {
    fn resolve(&self) -> Result<(Option<i64>, i64)> {
        let after = match self.cursor.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                AppError::invalid("cursor", "is not a cursor this server returned")
            })?),
        };
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        Ok((after, limit))
    }
}

/// The application: use cases over one store. Cheap to clone (one `Arc`): the HTTP layer
/// clones it for every request.
#[derive(Clone)]
pub struct App(std::sync::Arc<Parts>);

pub struct Parts {
    store: Store,
    signers: signers::Signers,
    signatures: signatures::Signatures,
    cache: cache::Cache,
    check_ins: activations::CheckIns,
    /// Validations and activations counted since the last write.
    usage: usage::Usage,
    /// What `/metrics` shows (the same counts as `usage` among others).
    metrics: std::sync::Arc<metrics::Metrics>,
    /// Seals the private signing keys stored in the database.
    master_key: Option<keyturn_core::MasterKey>,
    clock: std::sync::Arc<dyn Clock>,
    /// How outgoing webhooks behave here.
    webhooks: webhooks::WebhookPolicy,
    /// The customer portal's public address, which key mails link to.
    portal_url: Option<String>,
}

impl App {
    pub fn new(store: Store) -> Self {
        let metrics = std::sync::Arc::new(metrics::Metrics::default());
        Self(std::sync::Arc::new(Parts {
            cache: cache::Cache::new(cache::DEFAULT_CAPACITY, store.changes()),
            signers: signers::Signers::following(store.changes()),
            store,
            signatures: signatures::Signatures::default(),
            check_ins: activations::CheckIns::default(),
            usage: usage::Usage::with_metrics(metrics.clone()),
            metrics,
            master_key: None,
            clock: std::sync::Arc::new(SystemClock),
            webhooks: webhooks::WebhookPolicy::default(),
            portal_url: None,
        }))
    }

    /// The parts, for the builder methods that run before the app is shared.
    fn parts_mut(&mut self) -> &mut Parts {
        std::sync::Arc::get_mut(&mut self.0).expect("an app is configured before it is shared")
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What a load balancer or an operator needs to know, found out within `budget` however
    /// the database behaves: whether it answers a read, whether writes commit (after a failed
    /// write, a probe write tells whether they do again), and whether this node hears every
    /// change other nodes make.
    pub async fn health(&self, budget: std::time::Duration) -> Health {
        let half = budget / 2;
        let read = async {
            let mut session = self.store.read().await?;
            session.count_tokens().await?;
            Ok::<_, StoreError>(())
        };
        let database = match tokio::time::timeout(half, read).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the database did not answer within {} ms",
                half.as_millis()
            )),
        };
        if database.is_ok() && self.store.write_failure().is_some() {
            // The outcome lands in the store's write health either way.
            let _ = tokio::time::timeout(half, self.store.probe_write()).await;
        }
        Health {
            database,
            writes: self.store.write_failure(),
            hearing_since: self.store.changes().hearing_since(),
        }
    }
}

/// The answer to a health check.
#[derive(Debug, Clone)]
pub struct Health {
    /// Whether the database answered a read, or why not.
    pub database: Result<(), String>,
    /// Why writes fail, when the last one failed (and a probe did not succeed since).
    pub writes: Option<keyturn_store::WriteFailure>,
    /// Since when every change made on other nodes reaches this one (on SQLite, since the
    /// start); `None` while it does not.
    pub hearing_since: Option<DateTime<Utc>>,
}

impl Health {
    /// Whether this node can serve: it reads and writes.
    pub fn ok(&self) -> bool {
        self.database.is_ok() && self.writes.is_none()
    }
}

impl std::ops::Deref for App {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}
