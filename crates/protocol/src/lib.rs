//! The contract between a Keyturn server and the programs it licenses.
//!
//! The server (`keyturn-core`, `keyturn-http`) and the client SDK (`keyturn-client`) are built and
//! shipped separately: a program compiled years ago must still read what today's server writes.
//! Everything both sides must agree on byte for byte lives here, once, so the two cannot drift:
//!
//! - [`SIGNATURE_HEADER`]: where a reply's Ed25519 signature travels;
//! - [`fingerprint`]: the text form of a machine fingerprint and the rule that decides whether two
//!   fingerprints name the same machine (the server applies it when a machine activates, the
//!   client when it opens a license file offline);
//! - [`license_file`]: the offline license file — framing, envelope, what the signature covers,
//!   and how an encrypted file's content key is wrapped per machine component;
//! - [`License`]: the license as its licensee sees it, in replies and in license files;
//! - [`webhook`]: the signature on the server's outgoing webhooks, which a vendor's receiver checks.
//!
//! This crate holds no keys and does no I/O; signing and verifying stay with each side (the
//! server signs with the product's private key, the client verifies with the public key it ships).

pub mod fingerprint;
pub mod license_file;
pub mod webhook;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The HTTP header that carries the base64 Ed25519 signature of a reply's exact body bytes.
pub const SIGNATURE_HEADER: &str = "keyturn-signature";

/// A license as its licensee sees it: what a signed reply's `license` and a license file state.
/// Notes and private metadata never appear here; `metadata` holds only what the product makes
/// public.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct License {
    /// The server's id of the license.
    pub id: i64,
    /// The license key.
    pub key: String,
    /// The product the license is for.
    pub product_id: i64,
    /// When the license ends; `None` for a perpetual license.
    pub expires: Option<DateTime<Utc>>,
    /// The features (entitlements) the license grants.
    pub features: Vec<String>,
    /// How many machines may use the license at once; 0 means unlimited.
    pub max_machines: i64,
    /// Whether the vendor has blocked the license.
    pub blocked: bool,
    /// Whether this is a trial license.
    pub trial: bool,
    /// The vendor's data about the license that its product makes public (`public_metadata`);
    /// an empty object unless the vendor publishes some keys.
    pub metadata: serde_json::Value,
}

impl License {
    /// Whether the license grants `feature` (feature names are case-insensitive).
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features
            .iter()
            .any(|f| f.eq_ignore_ascii_case(feature))
    }
}
