use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyturn_core::{ProductSigner, PublicKey, RsaPublicKey, RsaSigner};

use crate::{now, App, AppError, Result};

pub(crate) const ED25519: &str = "ed25519";
/// The Cryptolens-compatible API's key: RSA-2048, stored as base64 PKCS#8.
pub(crate) const RSA2048: &str = "rsa2048";

/// Products' signing keys, decoded once: keys never change after a product is created, so the
/// hot validation path signs without a database round trip.
#[derive(Clone, Default)]
pub(crate) struct Signers {
    ed25519: Arc<RwLock<HashMap<i64, Arc<ProductSigner>>>>,
    rsa: Arc<RwLock<HashMap<i64, Arc<RsaSigner>>>>,
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> AppError {
    AppError::Store(keyturn_store::StoreError::Corrupt(e.to_string()))
}

impl App {
    /// The key that signs replies about `product_id`.
    pub async fn signer(&self, product_id: i64) -> Result<Arc<ProductSigner>> {
        if let Some(signer) = self.signers.ed25519.read().expect("lock").get(&product_id) {
            return Ok(signer.clone());
        }
        let mut session = self.store.read().await?;
        let seed = session
            .signing_key(product_id, ED25519)
            .await?
            .ok_or(AppError::NotFound("product"))?;
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
        if let Some(signer) = self.signers.rsa.read().expect("lock").get(&product_id) {
            return Ok(signer.clone());
        }
        let stored = self
            .store
            .read()
            .await?
            .signing_key(product_id, RSA2048)
            .await?;
        let pkcs8 = match stored {
            Some(pkcs8) => pkcs8,
            None => self.create_rsa_key(product_id).await?,
        };
        let signer = Arc::new(RsaSigner::from_base64_pkcs8(&pkcs8).map_err(corrupt)?);
        self.signers
            .rsa
            .write()
            .expect("lock")
            .insert(product_id, signer.clone());
        Ok(signer)
    }

    /// Generates and stores a product's RSA key unless another node stored one first; returns
    /// whichever key is stored.
    async fn create_rsa_key(&self, product_id: i64) -> Result<String> {
        let mut session = self.store.write().await?;
        session
            .product(product_id)
            .await?
            .ok_or(AppError::NotFound("product"))?;
        let fresh = tokio::task::spawn_blocking(RsaSigner::generate)
            .await
            .map_err(corrupt)?
            .map_err(corrupt)?;
        session
            .insert_signing_key_if_absent(
                product_id,
                RSA2048,
                &fresh.to_base64_pkcs8(),
                &fresh.public_key().to_xml(),
                now(),
            )
            .await?;
        let stored = session
            .signing_key(product_id, RSA2048)
            .await?
            .ok_or(AppError::NotFound("product"))?;
        session.commit().await?;
        Ok(stored)
    }

    /// A product's RSA public key, for the `<RSAKeyValue>` XML the Cryptolens SDKs take.
    pub async fn rsa_public_key(&self, product_id: i64) -> Result<RsaPublicKey> {
        Ok(self.rsa_signer(product_id).await?.public_key())
    }
}
