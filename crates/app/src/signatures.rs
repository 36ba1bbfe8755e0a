//! RSA signatures of license states, made once per state.
//!
//! An RSA-2048 signature costs about 0.7 ms of CPU, and programs ask for the same license over
//! and over (every start, every check-in). A signed reply carries the time it was signed
//! (`SignDate`), and the only thing the Cryptolens SDKs do with it is refuse a saved license
//! whose signature is older than a whole number of days. So while a license's rendered state
//! is unchanged, the reply signed a moment ago is as good as a new one: it is reused for up to
//! [`REUSE_FOR`], after which the state is signed again with a fresh `SignDate`. Any change to
//! what the reply says (an activation, a new expiry, a block…) changes the rendered bytes and so
//! gets a new signature at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, DurationRound, Utc};
use keyturn_core::{RsaDigest, RsaSigner};
use sha2::{Digest, Sha256};

use crate::{now, App, Result};

/// How long a signature of an unchanged state is handed out again. SDKs compare `SignDate`
/// with day granularity, so this shortens an offline grace period of N days by at most this.
pub const REUSE_FOR: Duration = Duration::minutes(15);

/// Entries kept before the cache starts afresh (one per license and reply form in use; each
/// holds one signed license, about a kilobyte).
const CAPACITY: usize = 20_000;

/// A license state as signed: the exact bytes, when, and the base64 signature.
#[derive(Debug, Clone)]
pub struct SignedState {
    pub sign_date: DateTime<Utc>,
    pub message: Arc<[u8]>,
    pub signature: Arc<str>,
}

/// Which signed document: one license (or other subject) in one reply form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignatureSlot {
    pub product_id: i64,
    pub subject_id: i64,
    /// The reply form, e.g. `"license/v3"`; each form renders different bytes.
    pub form: &'static str,
}

struct Entry {
    state: [u8; 32],
    signed: SignedState,
    /// The key that made the signature: one made with a key since replaced is never reused.
    signer: Arc<RsaSigner>,
}

#[derive(Clone)]
pub(crate) struct Signatures {
    cache: Arc<Mutex<HashMap<SignatureSlot, Entry>>>,
    reuse_for: Duration,
}

impl Default for Signatures {
    fn default() -> Self {
        Self {
            cache: Arc::default(),
            reuse_for: REUSE_FOR,
        }
    }
}

impl App {
    /// How long a signature of an unchanged state is handed out again ([`REUSE_FOR`] unless
    /// set); zero signs every reply afresh.
    pub fn with_signature_reuse(mut self, reuse_for: std::time::Duration) -> Self {
        self.parts_mut().signatures.reuse_for = Duration::from_std(reuse_for).unwrap_or(REUSE_FOR);
        self
    }

    /// Signs `render(sign_date)` with the product's RSA key, or hands out the signature made
    /// within the reuse time for the same slot when `render` would produce the same state. The
    /// state is what `render` returns for a fixed date, so only the sign date may differ.
    pub async fn sign_state(
        &self,
        slot: SignatureSlot,
        digest: RsaDigest,
        render: impl Fn(DateTime<Utc>) -> Vec<u8>,
    ) -> Result<SignedState> {
        let state: [u8; 32] = Sha256::digest(render(DateTime::<Utc>::UNIX_EPOCH)).into();
        let at = now()
            .duration_trunc(Duration::seconds(1))
            .expect("truncating to seconds never overflows");
        let reuse_for = self.signatures.reuse_for;
        let signer = self.rsa_signer(slot.product_id).await?;
        if let Some(entry) = self.signatures.cache.lock().expect("lock").get(&slot) {
            if entry.state == state
                && Arc::ptr_eq(&entry.signer, &signer)
                && at >= entry.signed.sign_date
                && at - entry.signed.sign_date < reuse_for
            {
                return Ok(entry.signed.clone());
            }
        }
        let message = render(at);
        let signature = signer.sign_base64(digest, &message);
        let signed = SignedState {
            sign_date: at,
            message: message.into(),
            signature: signature.into(),
        };
        let mut cache = self.signatures.cache.lock().expect("lock");
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(
            slot,
            Entry {
                state,
                signed: signed.clone(),
                signer,
            },
        );
        Ok(signed)
    }
}
