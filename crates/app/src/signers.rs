//! Products' signing keys. The private keys are stored in the database, sealed with the master
//! key when one is configured ([`keyturn_core::seal`]), and decoded once per process.
//!
//! A product's Ed25519 key never changes. Its RSA key (the Cryptolens-compatible API's) may be
//! replaced by one brought from elsewhere ([`App::import_rsa_key`]), so the RSA key in memory is
//! dropped as soon as a change of its product commits (on PostgreSQL, on every node), and the
//! stored key is looked at again every [`RECHECK`], which bounds how long a key replaced by
//! the CLI in a served SQLite file goes unused. A key is decoded again only when its stored form
//! changed, so the signatures made with it stay reusable ([`crate::signatures`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use keyturn_core::seal::{self, MasterKey, SealError};
use keyturn_core::{Permission, ProductSigner, PublicKey, RsaPublicKey, RsaSigner};
use keyturn_store::{Change, Changes};

use crate::Entity;
use crate::{now, App, AppError, Principal, Result};

/// How long an RSA key is used from memory before its stored form is read again.
const RECHECK: Duration = crate::cache::MAX_AGE;

pub(crate) const ED25519: &str = "ed25519";
/// The Cryptolens-compatible API's key: RSA-2048, stored as base64 PKCS#8.
pub(crate) const RSA2048: &str = "rsa2048";

/// Products' signing keys, decoded once, so the hot validation path signs without a database
/// round trip.
#[derive(Clone, Default)]
pub(crate) struct Signers {
    ed25519: Arc<RwLock<HashMap<i64, Arc<ProductSigner>>>>,
    rsa: Arc<RwLock<HashMap<i64, HeldRsa>>>,
    /// Counts the drops, so that a key loaded while one happened is not kept.
    drops: Arc<AtomicU64>,
}

/// An RSA key in memory, with the stored form it was decoded from.
struct HeldRsa {
    signer: Arc<RsaSigner>,
    stored: String,
    checked: Instant,
}

impl Signers {
    /// Keys that are dropped when a change of their product commits.
    pub(crate) fn following(changes: &Changes) -> Self {
        let signers = Self::default();
        let rsa = Arc::downgrade(&signers.rsa);
        let drops = signers.drops.clone();
        changes.subscribe(move |changed| {
            let Some(rsa) = rsa.upgrade() else {
                return;
            };
            drops.fetch_add(1, Ordering::AcqRel);
            let mut rsa = rsa.write().expect("lock");
            for change in changed {
                match change {
                    Change::Product(id) => {
                        rsa.remove(id);
                    }
                    Change::All => rsa.clear(),
                    _ => {}
                }
            }
        });
        signers
    }
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> AppError {
    AppError::Store(keyturn_store::StoreError::Corrupt(e.to_string()))
}

/// What a sealed key is bound to: a sealed key copied to another row does not open.
fn place(product_id: i64, algorithm: &str) -> String {
    format!("product {product_id} {algorithm}")
}

/// How the stored signing keys are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SigningKeys {
    /// Sealed with the master key.
    pub sealed: usize,
    /// In plain text.
    pub plain: usize,
}

const SET_MASTER_KEY: &str =
    "set KEYTURN_MASTER_KEY (or KEYTURN_MASTER_KEY_FILE) to the master key they were sealed with";

impl App {
    /// Seals the signing keys this app stores with `master` (none: stored in plain text).
    pub fn with_master_key(mut self, master: Option<MasterKey>) -> Self {
        self.parts_mut().master_key = master;
        self
    }

    /// The stored form of a new private key.
    pub(crate) fn store_key(&self, product_id: i64, algorithm: &str, plain: &str) -> String {
        seal::store(
            plain,
            self.master_key.as_ref(),
            &place(product_id, algorithm),
        )
    }

    /// A private key from its stored form.
    fn open_key(&self, product_id: i64, algorithm: &str, stored: &str) -> Result<String> {
        seal::open(
            stored,
            self.master_key.as_ref(),
            &place(product_id, algorithm),
        )
        .map_err(|e| corrupt(format!("signing key of product {product_id}: {e}")))
    }

    /// How the stored signing keys are kept, without opening any.
    pub async fn signing_keys_status(&self) -> Result<SigningKeys> {
        let keys = self.store.read().await?.signing_keys().await?;
        let sealed = keys.iter().filter(|(_, _, k)| seal::is_sealed(k)).count();
        Ok(SigningKeys {
            sealed,
            plain: keys.len() - sealed,
        })
    }

    /// Checks, before serving, that every stored signing key can be opened: a sealed key needs
    /// the master key it was sealed with. The error says what to set.
    pub async fn check_signing_keys(&self) -> Result<SigningKeys> {
        let keys = self.store.read().await?.signing_keys().await?;
        let mut count = SigningKeys::default();
        for (product_id, algorithm, stored) in keys {
            if !seal::is_sealed(&stored) {
                count.plain += 1;
                continue;
            }
            count.sealed += 1;
            match seal::open(&stored, self.master_key.as_ref(), &place(product_id, &algorithm)) {
                Ok(_) => {}
                Err(SealError::NoMasterKey) => {
                    return Err(AppError::invalid(
                        "master_key",
                        format!("the signing keys are sealed and no master key is configured: {SET_MASTER_KEY}"),
                    ))
                }
                Err(e) => {
                    return Err(AppError::invalid(
                        "master_key",
                        format!("the signing key of product {product_id} does not open ({e}): {SET_MASTER_KEY}"),
                    ))
                }
            }
        }
        for (id, stored) in self.store.read().await?.all_webhook_secrets().await? {
            if let Err(e) = self.open_secret(id, &stored.current) {
                return Err(AppError::invalid(
                    "master_key",
                    format!("the signing secret of webhook endpoint {id} does not open ({e}): {SET_MASTER_KEY}"),
                ));
            }
        }
        Ok(count)
    }

    /// Stores every signing key anew: opened with `from` (the old master key) or with `to`,
    /// or as stored when plain, then sealed with `to`, or in plain text when `to` is `None`.
    /// All or nothing, in one transaction; the keys themselves never change, so every
    /// signature made before still verifies.
    pub async fn reseal_signing_keys(
        &self,
        principal: &Principal,
        from: Option<&MasterKey>,
        to: Option<&MasterKey>,
    ) -> Result<SigningKeys> {
        principal.require_unrestricted(Permission::Admin)?;
        let mut session = self.store.write().await?;
        let mut count = SigningKeys::default();
        for (product_id, algorithm, stored) in session.signing_keys().await? {
            let at = place(product_id, &algorithm);
            let plain = [from, to]
                .into_iter()
                .flatten()
                .find_map(|master| seal::open(&stored, Some(master), &at).ok())
                .or_else(|| seal::open(&stored, None, &at).ok())
                .ok_or_else(|| {
                    AppError::invalid(
                        "master_key",
                        format!(
                            "the signing key of product {product_id} is sealed with another master key: \
                             give the one it was sealed with as the old master key"
                        ),
                    )
                })?;
            session
                .restore_signing_key(product_id, &algorithm, &seal::store(&plain, to, &at))
                .await?;
            match to {
                Some(_) => count.sealed += 1,
                None => count.plain += 1,
            }
        }
        App::reseal_second_factors(&mut session, from, to).await?;
        // The webhook endpoints' signing secrets are sealed with the same master key.
        self.reseal_webhook_secrets(&mut session, from, to).await?;
        session.commit().await?;
        Ok(count)
    }
}

impl App {
    /// The key that signs replies about `product_id`.
    pub async fn signer(&self, product_id: i64) -> Result<Arc<ProductSigner>> {
        if let Some(signer) = self.signers.ed25519.read().expect("lock").get(&product_id) {
            return Ok(signer.clone());
        }
        let mut session = self.store.read().await?;
        let stored = session
            .signing_key(product_id, ED25519)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let seed = self.open_key(product_id, ED25519, &stored)?;
        let signer = Arc::new(ProductSigner::from_base64_seed(&seed).map_err(corrupt)?);
        self.signers
            .ed25519
            .write()
            .expect("lock")
            .insert(product_id, signer.clone());
        Ok(signer)
    }

    /// A product's public key; public information, so no permission is needed.
    pub async fn public_key(&self, product_id: i64) -> Result<PublicKey> {
        Ok(self.signer(product_id).await?.public_key())
    }

    /// The RSA key that signs a product's licenses on the Cryptolens-compatible API. Products
    /// get one when they are created; a product from before that gets one on first use, stored
    /// so that every node signs with the same key.
    pub async fn rsa_signer(&self, product_id: i64) -> Result<Arc<RsaSigner>> {
        let held = self
            .signers
            .rsa
            .read()
            .expect("lock")
            .get(&product_id)
            .map(|h| (h.signer.clone(), h.stored.clone(), h.checked));
        if let Some((signer, _, checked)) = &held {
            if checked.elapsed() < RECHECK {
                return Ok(signer.clone());
            }
        }
        let drops = self.signers.drops.load(Ordering::Acquire);
        let read = async {
            let mut session = self.store.read().await?;
            session.signing_key(product_id, RSA2048).await
        };
        let stored = match read.await {
            Ok(Some(stored)) => stored,
            Ok(None) => self.create_rsa_key(product_id).await?,
            // The key in memory is still the stored one as far as anyone can tell.
            Err(e) if e.is_unavailable() => match held {
                Some((signer, _, _)) => return Ok(signer),
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        let signer = match held {
            Some((signer, was, _)) if was == stored => signer,
            _ => {
                let pkcs8 = self.open_key(product_id, RSA2048, &stored)?;
                Arc::new(RsaSigner::from_base64_pkcs8(&pkcs8).map_err(corrupt)?)
            }
        };
        let mut rsa = self.signers.rsa.write().expect("lock");
        if self.signers.drops.load(Ordering::Acquire) == drops {
            rsa.insert(
                product_id,
                HeldRsa {
                    signer: signer.clone(),
                    stored,
                    checked: Instant::now(),
                },
            );
        }
        Ok(signer)
    }

    /// Replaces a product's RSA key with a key pair brought from elsewhere (the .NET
    /// `<RSAKeyValue>` XML with private parts, or PEM), so programs shipped with its public key
    /// verify this server's signatures. Stored sealed when a master key is configured; every
    /// node signs with it from the moment it commits. Returns the public key.
    pub async fn import_rsa_key(
        &self,
        principal: &Principal,
        product_id: i64,
        key: &str,
    ) -> Result<RsaPublicKey> {
        principal.require_for(Permission::Admin, product_id)?;
        if key.len() > 64 * 1024 {
            return Err(AppError::invalid(
                "private_key",
                "is too long for an RSA key",
            ));
        }
        let text = key.to_owned();
        let signer = tokio::task::spawn_blocking(move || RsaSigner::import(&text))
            .await
            .map_err(corrupt)??;
        let public = signer.public_key();
        let mut session = self.store.write().await?;
        session
            .product(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        session
            .replace_signing_key(
                product_id,
                RSA2048,
                &self.store_key(product_id, RSA2048, &signer.to_base64_pkcs8()),
                &public.to_xml(),
                now(),
            )
            .await?;
        session.commit().await?;
        tracing::info!(product.id = product_id, actor = %principal.actor.label(), "RSA signing key imported");
        Ok(public)
    }

    /// Generates and stores a product's RSA key unless another node stored one first; returns
    /// whichever key is stored (in its stored form).
    async fn create_rsa_key(&self, product_id: i64) -> Result<String> {
        let mut session = self.store.write().await?;
        session
            .product(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        let fresh = tokio::task::spawn_blocking(RsaSigner::generate)
            .await
            .map_err(corrupt)?
            .map_err(corrupt)?;
        session
            .insert_signing_key_if_absent(
                product_id,
                RSA2048,
                &self.store_key(product_id, RSA2048, &fresh.to_base64_pkcs8()),
                &fresh.public_key().to_xml(),
                now(),
            )
            .await?;
        let stored = session
            .signing_key(product_id, RSA2048)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        session.commit().await?;
        Ok(stored)
    }

    /// A product's RSA public key, for the `<RSAKeyValue>` XML the Cryptolens SDKs take.
    pub async fn rsa_public_key(&self, product_id: i64) -> Result<RsaPublicKey> {
        Ok(self.rsa_signer(product_id).await?.public_key())
    }
}
