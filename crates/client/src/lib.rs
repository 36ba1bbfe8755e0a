//! Licensing for programs sold with Keyturn: activate, validate and deactivate a key, hold a
//! floating seat, and verify offline license files, with a machine fingerprint built in.
//!
//! Every reply that says something about a license is signed by the server with the product's
//! Ed25519 key; this client verifies that signature, and that the reply answers this very request
//! (a random nonce is sent and must come back), before it believes the reply. A reply with a bad
//! signature is an [`Error`], never a license.
//!
//! ```no_run
//! # async fn run() -> Result<(), keyturn_client::Error> {
//! use std::time::Duration;
//!
//! let client = keyturn_client::Client::new("https://licenses.example.com", 1, "BASE64-PUBLIC-KEY")?
//!     .with_state_file("/var/lib/my-app/license-state.json")
//!     .with_grace_period(Duration::from_secs(7 * 24 * 3600));
//! client.activate("ABCDE-FGHIJ-KLMNO-PQRST").await?;
//! let validation = client.validate("ABCDE-FGHIJ-KLMNO-PQRST", &["pro"]).await?;
//! if !validation.valid {
//!     eprintln!("not licensed: {}", validation.detail);
//! }
//! # Ok(()) }
//! ```
//!
//! * **Machine fingerprint** — [`Fingerprint::current`] builds it from several components and
//!   [`Fingerprint::matches`] compares it tolerantly; see the [`fingerprint`] module.
//! * **Offline grace** — with a state file, [`Client::validate`] keeps the last good signed reply
//!   and, while the server cannot be reached, accepts it for the grace period (seven days unless
//!   set), after checking that the clock was not turned back.
//! * **License files** — [`Client::verify_license_file`] checks a file from
//!   `POST /v1/licenses/{id}/file` (or `keyturn license file`) with no network at all.
//! * **Floating licenses** — [`Client::checkout`], [`Client::heartbeat`] and [`Client::release`].
//! * **Webhooks** — a vendor's own service that receives Keyturn's outgoing webhooks checks
//!   their signature with [`webhook::verify`].

#![warn(missing_docs)]

pub mod fingerprint;
pub mod license_file;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use fingerprint::Fingerprint;
pub use license_file::LicenseFile;
use state::{CachedReply, MachineIdentity, State};

/// Verifying the signature of the server's outgoing webhooks (for the vendor's receiver).
pub use keyturn_protocol::webhook;
/// The header that carries the signature of a reply's body.
pub use keyturn_protocol::SIGNATURE_HEADER;
/// How long a program may run offline on its last good validation unless told otherwise.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// How far the clock may go back before it counts as turned back, unless told otherwise
/// (ordinary clock corrections stay well within it).
pub const DEFAULT_CLOCK_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Everything that can go wrong while licensing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request did not reach the server or its reply did not arrive.
    #[error("cannot reach the license server: {0}")]
    Transport(#[from] reqwest::Error),
    /// The public key given to [`Client::new`] is not a base64 Ed25519 key.
    #[error("the public key is not a base64 Ed25519 key")]
    BadPublicKey,
    /// A reply that must be signed came without a signature.
    #[error("the reply is not signed")]
    Unsigned,
    /// A reply, cached reply or license file does not carry the product's signature.
    #[error("the signature does not verify; it did not come from the license server")]
    BadSignature,
    /// The reply does not echo this request's nonce: it may be a recording of an older reply.
    #[error("the reply does not answer this request (nonce mismatch)")]
    Replayed,
    /// The reply is signed but not in the shape the server sends.
    #[error("the reply is not what the server sends: {0}")]
    Malformed(String),
    /// The server refused, with its error code (e.g. `too_many_machines`).
    #[error("the server refused ({status}): {code}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error code, e.g. `too_many_machines`, `blocked`, `not_found` (snake_case; validation verdicts are upper case).
        code: String,
        /// A sentence for people.
        message: String,
    },
    /// The state file cannot be written.
    #[error("cannot write the license state file {0}")]
    State(String),
    /// The clock shows a time earlier than one this program has already seen.
    #[error("the system clock was turned back (now {now}, but {last_seen} was already seen)")]
    ClockRolledBack {
        /// The latest time seen before.
        last_seen: DateTime<Utc>,
        /// What the clock says now.
        now: DateTime<Utc>,
    },
    /// The server is unreachable and the last good validation is older than the grace period.
    #[error("the license server is unreachable and the last validation ({last_validated}) is older than the grace period")]
    GraceExpired {
        /// When the server last confirmed the license.
        last_validated: DateTime<Utc>,
    },
    /// The license file is not in the format this SDK reads.
    #[error("not a valid license file: {0}")]
    BadLicenseFile(String),
    /// The license file was issued for another machine.
    #[error("the license file was issued for another machine")]
    WrongMachine,
    /// The license file was issued for another license key.
    #[error("the license file belongs to another license key")]
    WrongKey,
    /// The license file belongs to another product.
    #[error("the license file belongs to another product")]
    WrongProduct,
    /// The license file's validity has ended; a new one is needed.
    #[error("the license file expired at {valid_until}")]
    FileExpired {
        /// When the file stopped being valid.
        valid_until: DateTime<Utc>,
    },
    /// The license itself has expired.
    #[error("the license expired at {expires}")]
    LicenseExpired {
        /// When the license expired.
        expires: DateTime<Utc>,
    },
    /// The license is blocked.
    #[error("the license is blocked")]
    Blocked,
    /// The license lacks a feature the program needs.
    #[error("the license does not include feature {0:?}")]
    FeatureMissing(String),
}

impl Error {
    /// Whether the server could not be asked (network failure, overload, outage), as opposed to
    /// a server that answered. Only then does [`Client::validate`] fall back on its cache.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Refused { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// A source of the current time; tests and careful programs inject their own.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A license as its licensee sees it (the same shape in replies and license files).
pub use keyturn_protocol::License;

/// The server's verdict on a key.
#[derive(Debug, Clone, Deserialize)]
pub struct Validation {
    /// Whether the key may be used as asked.
    pub valid: bool,
    /// One of VALID, NOT_FOUND, BLOCKED, EXPIRED, NOT_ACTIVATED, TOO_MANY_MACHINES,
    /// FEATURE_MISSING, WRONG_PRODUCT.
    pub code: String,
    /// A sentence for people.
    pub detail: String,
    /// The license, when the key exists.
    pub license: Option<License>,
    /// The server's time of the verdict.
    pub time: DateTime<Utc>,
    /// `true` when the server was unreachable and this verdict comes from the last good
    /// validation, within the grace period.
    #[serde(skip)]
    pub offline: bool,
    nonce: Option<String>,
}

/// A machine holding a license.
#[derive(Debug, Clone, Deserialize)]
pub struct Machine {
    /// The server's id of the activation.
    pub id: i64,
    /// The machine's fingerprint.
    pub fingerprint: String,
    /// The friendly name given at activation.
    pub name: Option<String>,
    /// For floating licenses: the seat is released after this unless renewed.
    pub lease_expires: Option<DateTime<Utc>>,
}

/// A successful activation (or renewal of an existing one).
#[derive(Debug, Clone, Deserialize)]
pub struct Activation {
    /// `false` when this machine was already activated.
    pub created: bool,
    /// The machine's activation.
    pub activation: Machine,
    /// The license it holds.
    pub license: License,
    nonce: Option<String>,
}

/// A floating seat held by this machine.
#[derive(Debug, Clone)]
pub struct Lease {
    /// When the seat is released unless [`Client::heartbeat`] renews it first; `None` when the
    /// license is not floating and the seat is held until [`Client::release`].
    pub expires: Option<DateTime<Utc>>,
    /// The activation behind the seat.
    pub activation: Activation,
}

impl Lease {
    /// When to send the next heartbeat: halfway through the lease, so one lost request does not
    /// lose the seat. `None` for seats that never lapse.
    pub fn renew_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expires.map(|until| now + (until - now) / 2)
    }
}

#[derive(Deserialize)]
struct Deactivation {
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
    #[serde(default)]
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A signed reply: the parsed body and the exact bytes and signature it came as.
struct Signed<T> {
    value: T,
    body: Vec<u8>,
    signature: String,
}

/// Talks to a Keyturn server for one product, and checks license files of that product.
pub struct Client {
    http: reqwest::Client,
    base: String,
    product_id: i64,
    public_key: VerifyingKey,
    machine: OnceLock<Fingerprint>,
    machine_name: Option<String>,
    state_file: Option<PathBuf>,
    state_lock: Mutex<()>,
    clock: Arc<dyn Clock>,
    grace: chrono::Duration,
    tolerance: chrono::Duration,
}

fn to_chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Client {
    /// `public_key` is the base64 key from `GET /v1/products/{id}/public-key` (or
    /// `keyturn product public-key`); embed it in the program rather than fetching it, or a
    /// forged server could hand out its own. The server is only contacted by the online calls.
    pub fn new(server_url: &str, product_id: i64, public_key: &str) -> Result<Self, Error> {
        let bytes = B64
            .decode(public_key.trim())
            .map_err(|_| Error::BadPublicKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| Error::BadPublicKey)?;
        let public_key = VerifyingKey::from_bytes(&bytes).map_err(|_| Error::BadPublicKey)?;
        Ok(Self {
            http: reqwest::Client::new(),
            base: server_url.trim_end_matches('/').to_owned(),
            product_id,
            public_key,
            machine: OnceLock::new(),
            machine_name: None,
            state_file: None,
            state_lock: Mutex::new(()),
            clock: Arc::new(SystemClock),
            grace: to_chrono(DEFAULT_GRACE),
            tolerance: to_chrono(DEFAULT_CLOCK_TOLERANCE),
        })
    }

    /// Uses `fingerprint` as this machine's instead of reading [`Fingerprint::current`].
    pub fn with_fingerprint(self, fingerprint: Fingerprint) -> Self {
        let machine = OnceLock::new();
        let _ = machine.set(fingerprint);
        Self { machine, ..self }
    }

    /// The friendly name sent with activations (e.g. the host name), shown to the vendor.
    pub fn with_machine_name(self, name: &str) -> Self {
        Self {
            machine_name: Some(name.to_owned()),
            ..self
        }
    }

    /// Keeps state in `path` (created when missing): the latest time seen, for clock-rollback
    /// detection; the last good validation, for the offline grace period; and the fingerprint
    /// this machine is activated under. Without a state file there is no offline grace.
    pub fn with_state_file(self, path: impl AsRef<Path>) -> Self {
        Self {
            state_file: Some(path.as_ref().to_owned()),
            ..self
        }
    }

    /// How long after the last good validation the program may run while the server cannot be
    /// reached ([`DEFAULT_GRACE`] unless set).
    pub fn with_grace_period(self, grace: std::time::Duration) -> Self {
        Self {
            grace: to_chrono(grace),
            ..self
        }
    }

    /// How far the clock may go back before it counts as turned back
    /// ([`DEFAULT_CLOCK_TOLERANCE`] unless set).
    pub fn with_clock_tolerance(self, tolerance: std::time::Duration) -> Self {
        Self {
            tolerance: to_chrono(tolerance),
            ..self
        }
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// This machine's fingerprint, as read from the machine (once, then kept).
    pub fn fingerprint(&self) -> &Fingerprint {
        self.machine.get_or_init(Fingerprint::current)
    }

    /// The machine code to activate with and to give the vendor for a license file: the
    /// fingerprint this machine is known by. With a state file, a machine whose fingerprint
    /// drifted by a component keeps the code it was first known by.
    pub fn machine_code(&self) -> Result<String, Error> {
        let current = self.fingerprint().clone();
        if self.state_file.is_none() {
            return Ok(current.as_str().to_owned());
        }
        self.update_state(|state| {
            let code = match &mut state.machine {
                Some(m) if Fingerprint::parse(&m.observed).matches(&current) => {
                    m.observed = current.as_str().to_owned();
                    m.known_as.clone()
                }
                _ => {
                    state.machine = Some(MachineIdentity {
                        known_as: current.as_str().to_owned(),
                        observed: current.as_str().to_owned(),
                    });
                    current.as_str().to_owned()
                }
            };
            Ok(code)
        })
    }

    /// Checks that `signature` (base64) signs exactly `body` with the product's key.
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Ok(bytes) = B64.decode(signature.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.public_key.verify(body, &signature).is_ok()
    }

    /// Activates this machine on `key` (or checks it in again).
    pub async fn activate(&self, key: &str) -> Result<Activation, Error> {
        let machine = self.machine_code()?;
        self.activate_machine(key, &machine, self.machine_name.as_deref())
            .await
    }

    /// Asks the server whether `key` is good on this machine with `features`. With a state file,
    /// a valid verdict is kept; while the server cannot be reached, the kept verdict is used for
    /// the grace period (then `offline` is `true`), provided the clock was not turned back.
    pub async fn validate(&self, key: &str, features: &[&str]) -> Result<Validation, Error> {
        let machine = self.machine_code()?;
        let now = self.clock.now();
        match self.signed_validation(key, Some(&machine), features).await {
            Ok(signed) => {
                if self.state_file.is_some() {
                    self.update_state(|state| {
                        state.touch(now);
                        // A missing feature says nothing about the machine's activation (it
                        // is checked first), so the kept verdict stays; any other refusal
                        // (blocked, expired, deactivated…) ends offline use at once.
                        if signed.value.valid {
                            let cached = CachedReply {
                                body: B64.encode(&signed.body),
                                signature: signed.signature.clone(),
                                fingerprint: machine.clone(),
                            };
                            state.validations.insert(normal_key(key), cached);
                        } else if signed.value.code != "FEATURE_MISSING" {
                            state.validations.remove(&normal_key(key));
                        }
                        Ok(())
                    })?;
                }
                Ok(signed.value)
            }
            Err(e) if e.is_unavailable() => self.cached_validation(key, &machine, features, e),
            Err(e) => Err(e),
        }
    }

    /// Frees this machine's seat on `key`.
    pub async fn deactivate(&self, key: &str) -> Result<(), Error> {
        let machine = self.machine_code()?;
        self.deactivate_machine(key, &machine).await
    }

    /// Takes a floating seat for this machine (or confirms the one it holds).
    pub async fn checkout(&self, key: &str) -> Result<Lease, Error> {
        let activation = self.activate(key).await?;
        Ok(Lease {
            expires: activation.activation.lease_expires,
            activation,
        })
    }

    /// Renews this machine's floating seat; call it before [`Lease::renew_at`]. An error with
    /// code `too_many_machines` means the seat lapsed and another machine took it.
    pub async fn heartbeat(&self, key: &str) -> Result<Lease, Error> {
        self.checkout(key).await
    }

    /// Gives this machine's floating seat back at once, for another machine to take.
    pub async fn release(&self, key: &str) -> Result<(), Error> {
        self.deactivate(key).await
    }

    /// Verifies a license file with no network: its signature, that it belongs to `key` and
    /// this product, that it is bound to this machine (tolerantly, see [`Fingerprint::matches`]),
    /// that neither the file nor the license has expired, that the license grants `features`,
    /// and that the clock was not turned back (to before the file was issued or, with a state
    /// file, before the latest time seen).
    pub fn verify_license_file(
        &self,
        text: &str,
        key: &str,
        features: &[&str],
    ) -> Result<LicenseFile, Error> {
        let machine = self.fingerprint();
        let file = license_file::read(text, key, machine, |m, s| self.verify(m, s))?;
        if file.license.product_id != self.product_id {
            return Err(Error::WrongProduct);
        }
        if file.license.key != normal_key(key) {
            return Err(Error::WrongKey);
        }
        if let Some(bound) = &file.fingerprint {
            let same = Fingerprint::parse(bound).matches(machine)
                || (self.state_file.is_some() && *bound == self.machine_code()?);
            if !same {
                return Err(Error::WrongMachine);
            }
        }
        let now = self.clock.now();
        if now + self.tolerance < file.issued {
            return Err(Error::ClockRolledBack {
                last_seen: file.issued,
                now,
            });
        }
        if self.state_file.is_some() {
            self.update_state(|state| state.observe(now, self.tolerance))?;
        }
        if now >= file.valid_until {
            return Err(Error::FileExpired {
                valid_until: file.valid_until,
            });
        }
        check_license(&file.license, features, now)?;
        Ok(file)
    }

    /// Reads the license file at `path` and verifies it like [`Client::verify_license_file`].
    pub fn load_license_file(
        &self,
        path: impl AsRef<Path>,
        key: &str,
        features: &[&str],
    ) -> Result<LicenseFile, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::BadLicenseFile(format!("{}: {e}", path.display())))?;
        self.verify_license_file(&text, key, features)
    }

    /// Asks the server about `key` for the machine `fingerprint` (or without a machine), with no
    /// caching: the building block of [`Client::validate`].
    pub async fn validate_machine(
        &self,
        key: &str,
        fingerprint: Option<&str>,
        features: &[&str],
    ) -> Result<Validation, Error> {
        Ok(self
            .signed_validation(key, fingerprint, features)
            .await?
            .value)
    }

    /// Activates the machine `fingerprint` on `key`: the building block of [`Client::activate`].
    pub async fn activate_machine(
        &self,
        key: &str,
        fingerprint: &str,
        name: Option<&str>,
    ) -> Result<Activation, Error> {
        let nonce = new_nonce();
        let body = serde_json::json!({
            "key": key,
            "fingerprint": fingerprint,
            "name": name,
            "product_id": self.product_id,
            "nonce": nonce,
        });
        let reply: Signed<Activation> = self.signed_post("/v1/activations", &body, &nonce).await?;
        check_nonce(reply.value.nonce.as_deref(), &nonce)?;
        Ok(reply.value)
    }

    /// Frees the seat of the machine `fingerprint` on `key`: the building block of
    /// [`Client::deactivate`].
    pub async fn deactivate_machine(&self, key: &str, fingerprint: &str) -> Result<(), Error> {
        let nonce = new_nonce();
        let body = serde_json::json!({
            "key": key,
            "fingerprint": fingerprint,
            "product_id": self.product_id,
            "nonce": nonce,
        });
        let reply: Signed<Deactivation> = self
            .signed_post("/v1/activations/deactivate", &body, &nonce)
            .await?;
        check_nonce(reply.value.nonce.as_deref(), &nonce)
    }

    async fn signed_validation(
        &self,
        key: &str,
        fingerprint: Option<&str>,
        features: &[&str],
    ) -> Result<Signed<Validation>, Error> {
        let nonce = new_nonce();
        let body = serde_json::json!({
            "key": key,
            "fingerprint": fingerprint,
            "features": features,
            "product_id": self.product_id,
            "nonce": nonce,
        });
        let reply: Signed<Validation> = self.signed_post("/v1/validate", &body, &nonce).await?;
        check_nonce(reply.value.nonce.as_deref(), &nonce)?;
        Ok(reply)
    }

    /// The kept verdict for `key`, while the server is unreachable (`unreachable` says why).
    fn cached_validation(
        &self,
        key: &str,
        machine: &str,
        features: &[&str],
        unreachable: Error,
    ) -> Result<Validation, Error> {
        if self.state_file.is_none() {
            return Err(unreachable);
        }
        let now = self.clock.now();
        let cached = self.update_state(|state| {
            state.observe(now, self.tolerance)?;
            Ok(state.validations.get(&normal_key(key)).cloned())
        })?;
        let Some(cached) = cached.filter(|c| c.fingerprint == machine) else {
            return Err(unreachable);
        };
        let body = B64.decode(&cached.body).map_err(|_| Error::BadSignature)?;
        if !self.verify(&body, &cached.signature) {
            return Err(Error::BadSignature);
        }
        let mut validation: Validation =
            serde_json::from_slice(&body).map_err(|e| Error::Malformed(e.to_string()))?;
        if now + self.tolerance < validation.time {
            return Err(Error::ClockRolledBack {
                last_seen: validation.time,
                now,
            });
        }
        if now > validation.time + self.grace {
            return Err(Error::GraceExpired {
                last_validated: validation.time,
            });
        }
        let license = validation
            .license
            .as_ref()
            .filter(|l| l.product_id == self.product_id && l.key == normal_key(key))
            .ok_or_else(|| Error::Malformed("the kept reply is about another license".into()))?;
        validation.offline = true;
        match check_license(license, features, now) {
            Ok(()) => {}
            Err(Error::LicenseExpired { .. }) => {
                validation.valid = false;
                validation.code = "EXPIRED".into();
                validation.detail = "the license has expired".into();
            }
            Err(Error::FeatureMissing(feature)) => {
                validation.valid = false;
                validation.code = "FEATURE_MISSING".into();
                validation.detail = format!("the license does not include feature {feature:?}");
            }
            Err(e) => return Err(e),
        }
        Ok(validation)
    }

    /// Loads the state, lets `change` work on it, and saves it when `change` succeeds.
    fn update_state<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let Some(path) = &self.state_file else {
            return change(&mut State::default());
        };
        let _guard = self
            .state_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut state = State::load(path);
        let out = change(&mut state)?;
        state.save(path)?;
        Ok(out)
    }

    /// Posts `body` (which carries `nonce`) and returns the signed reply. A refusal the server
    /// signed must verify and answer this request too; an unsigned one (from a proxy, or the
    /// rate limiter) is reported as it comes.
    async fn signed_post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        nonce: &str,
    ) -> Result<Signed<T>, Error> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let signature = response
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await?.to_vec();
        if !status.is_success() {
            if let Some(signature) = &signature {
                if !self.verify(&body, signature) {
                    return Err(Error::BadSignature);
                }
                let echoed = serde_json::from_slice::<ErrorBody>(&body)
                    .ok()
                    .and_then(|e| e.nonce);
                check_nonce(echoed.as_deref(), nonce)?;
            }
            return Err(refusal(status.as_u16(), &body));
        }
        let signature = signature.ok_or(Error::Unsigned)?;
        if !self.verify(&body, &signature) {
            return Err(Error::BadSignature);
        }
        let value = serde_json::from_slice(&body).map_err(|e| Error::Malformed(e.to_string()))?;
        Ok(Signed {
            value,
            body,
            signature,
        })
    }
}

/// Keys as the server stores them: trimmed and upper-case.
fn normal_key(key: &str) -> String {
    key.trim().to_ascii_uppercase()
}

/// The offline checks of a license's own terms.
fn check_license(license: &License, features: &[&str], now: DateTime<Utc>) -> Result<(), Error> {
    if license.blocked {
        return Err(Error::Blocked);
    }
    if let Some(expires) = license.expires.filter(|e| *e <= now) {
        return Err(Error::LicenseExpired { expires });
    }
    if let Some(missing) = features.iter().find(|f| !license.has_feature(f)) {
        return Err(Error::FeatureMissing((*missing).to_owned()));
    }
    Ok(())
}

fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64.encode(bytes)
}

fn check_nonce(got: Option<&str>, sent: &str) -> Result<(), Error> {
    if got == Some(sent) {
        Ok(())
    } else {
        Err(Error::Replayed)
    }
}

fn refusal(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => Error::Refused {
            status,
            code: e.error.code,
            message: e.error.message,
        },
        Err(_) => Error::Refused {
            status,
            code: "unexpected_reply".into(),
            message: format!("status {status} without an error body"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn verification_accepts_only_the_signed_body() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let public = B64.encode(signing.verifying_key().to_bytes());
        let client = Client::new("http://127.0.0.1:1", 1, &public).unwrap();
        let body = br#"{"valid":true}"#;
        let sig = B64.encode(signing.sign(body).to_bytes());
        assert!(client.verify(body, &sig));
        assert!(!client.verify(br#"{"valid":fals}"#, &sig));
        assert!(!client.verify(body, "AAAA"));
    }

    #[test]
    fn bad_public_keys_are_refused() {
        assert!(matches!(
            Client::new("http://x", 1, "not-base64"),
            Err(Error::BadPublicKey)
        ));
        assert!(matches!(
            Client::new("http://x", 1, &B64.encode([1u8; 5])),
            Err(Error::BadPublicKey)
        ));
    }

    #[test]
    fn nonces_must_match() {
        assert!(check_nonce(Some("a"), "a").is_ok());
        assert!(matches!(check_nonce(Some("b"), "a"), Err(Error::Replayed)));
        assert!(matches!(check_nonce(None, "a"), Err(Error::Replayed)));
    }

    #[test]
    fn only_unreachable_servers_allow_the_cache() {
        let refused = |status| Error::Refused {
            status,
            code: String::new(),
            message: String::new(),
        };
        assert!(refused(503).is_unavailable());
        assert!(refused(429).is_unavailable());
        assert!(!refused(403).is_unavailable());
        assert!(!Error::BadSignature.is_unavailable());
    }

    #[test]
    fn leases_renew_halfway() {
        let now = Utc::now();
        let lease = |expires| Lease {
            expires,
            activation: Activation {
                created: true,
                activation: Machine {
                    id: 1,
                    fingerprint: "m".into(),
                    name: None,
                    lease_expires: expires,
                },
                license: License {
                    id: 1,
                    key: "K".into(),
                    product_id: 1,
                    expires: None,
                    features: vec![],
                    max_machines: 1,
                    blocked: false,
                    trial: false,
                    metadata: serde_json::json!({}),
                },
                nonce: None,
            },
        };
        let until = now + chrono::Duration::seconds(60);
        assert_eq!(
            lease(Some(until)).renew_at(now),
            Some(now + chrono::Duration::seconds(30))
        );
        assert_eq!(lease(None).renew_at(now), None);
    }
}
