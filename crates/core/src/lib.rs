//! Keyturn's domain: what a product, plan, license and activation are, and the rules that decide
//! whether a license may be activated or is valid. Nothing here does I/O, so every rule is testable
//! on its own and the same rules hold for every API that exposes them.

pub mod audit;
pub mod branding;
pub mod console;
pub mod dashboard;
pub mod data_object;
pub mod dates;
pub mod error;
pub mod key;
pub mod key_search;
pub mod license;
pub mod license_file;
pub mod message;
pub mod names;
pub mod outbox;
pub mod payment;
pub mod permission;
pub mod provider;
pub mod receipt;
pub mod rsa;
pub mod seal;
pub mod self_service;
pub mod signing;
pub mod skm;
pub mod terms;
pub mod token;
pub mod totp;
pub mod validation;
pub mod webhook;

pub use audit::AuditAction;
pub use console::{ConsoleUser, LicenseStatus, Password, Role};
pub use data_object::{DataObject, DataOwner};
pub use error::DomainError;
pub use key::LicenseKey;
pub use license::{Activation, Customer, License, LicenseEvent, Plan, Product};
pub use message::Message;
pub use names::{Email, FeatureName, Fingerprint};
pub use outbox::{MailState, OutboxMail};
pub use permission::Permission;
pub use rsa::{RsaDigest, RsaPublicKey, RsaSigner};
pub use seal::{MasterKey, SealError};
pub use self_service::{BuyerRules, BuyerRulesPatch, SelfServiceRefusal};
pub use signing::{ProductSigner, PublicKey};
pub use terms::{
    AllowedMachines, Description, GraceDays, LeaseSeconds, MachineLimit, Metadata, Nonce, Notes,
    PeriodDays, ProviderIds,
};
pub use token::{AccessToken, TokenHash, TokenSecret};
pub use validation::{ActivationRefusal, ExpiryRule, ValidationCode, ValidationOutcome};
