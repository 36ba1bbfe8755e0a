use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyturn_core::{ProductSigner, PublicKey};

use crate::{App, AppError, Result};

pub(crate) const ED25519: &str = "ed25519";

/// Products' signing keys, decoded once: keys never change after a product is created, so the
/// hot validation path signs without a database round trip.
#[derive(Clone, Default)]
pub(crate) struct Signers(Arc<RwLock<HashMap<i64, Arc<ProductSigner>>>>);

impl App {
    /// The key that signs replies about `product_id`.
    pub async fn signer(&self, product_id: i64) -> Result<Arc<ProductSigner>> {
        if let Some(signer) = self.signers.0.read().expect("lock").get(&product_id) {
            return Ok(signer.clone());
        }
        let mut session = self.store.read().await?;
        let seed = session
            .signing_key(product_id, ED25519)
            .await?
            .ok_or(AppError::NotFound("product"))?;
        let signer = Arc::new(
            ProductSigner::from_base64_seed(&seed)
                .map_err(|e| AppError::Store(keyturn_store::StoreError::Corrupt(e.to_string())))?,
        );
        self.signers
            .0
            .write()
            .expect("lock")
            .insert(product_id, signer.clone());
        Ok(signer)
    }

    /// A product's public key; public information, so no permission is needed.
    pub async fn public_key(&self, product_id: i64) -> Result<PublicKey> {
        Ok(self.signer(product_id).await?.public_key())
    }
}
