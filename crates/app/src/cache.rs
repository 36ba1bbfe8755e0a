//! The rows programs ask about on every start — a license with its activations, its product,
//! its customer — kept in memory, so validation and re-activation need no database round trip.
//!
//! Entries are dropped as soon as a transaction that changed their row commits: the store tells
//! every committed change ([`keyturn_store::Changes`]), on PostgreSQL to every node. A load that
//! overlapped such a commit is not kept (it may have read the row before the change). While a
//! node cannot hear other nodes' changes, nothing is served from memory. Entries also age out
//! after [`MAX_AGE`], which bounds how long a change made outside any server process (the CLI
//! writing to a served SQLite file) goes unseen.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keyturn_core::{AccessToken, Activation, Customer, License, Product, TokenHash};
use keyturn_store::{Change, Changes};

use crate::{App, Result};

pub const MAX_AGE: Duration = Duration::from_secs(5);
/// Recent invalidations kept to tell whether a load overlapped one.
const LOG: usize = 4096;

/// A license as the hot paths need it: the row and every activation, lapsed leases included
/// (which are live depends on the time of the question).
#[derive(Debug, Clone)]
pub struct LicenseState {
    pub license: License,
    pub activations: Vec<Activation>,
}

impl LicenseState {
    /// The activations still holding a seat at `at`, oldest first (borrowed when none lapsed).
    pub fn live(&self, at: DateTime<Utc>) -> std::borrow::Cow<'_, [Activation]> {
        let holds = |a: &Activation| a.lease_expires.is_none_or(|e| e > at);
        if self.activations.iter().all(holds) {
            std::borrow::Cow::Borrowed(&self.activations)
        } else {
            self.activations
                .iter()
                .filter(|a| holds(a))
                .cloned()
                .collect()
        }
    }
}

struct Entry<T> {
    value: Arc<T>,
    loaded: Instant,
}

struct Table<K, T> {
    rows: HashMap<K, Entry<T>>,
}

impl<K: Eq + Hash, T> Table<K, T> {
    fn get<Q>(&self, k: &Q) -> Option<Arc<T>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.rows
            .get(k)
            .filter(|e| e.loaded.elapsed() < MAX_AGE)
            .map(|e| e.value.clone())
    }

    fn put(&mut self, k: K, value: Arc<T>, capacity: usize) {
        if self.rows.len() >= capacity {
            // Starting afresh keeps memory bounded without bookkeeping on every hit.
            self.rows.clear();
        }
        self.rows.insert(
            k,
            Entry {
                value,
                loaded: Instant::now(),
            },
        );
    }
}

impl<K, T> Default for Table<K, T> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
        }
    }
}

#[derive(Default)]
struct Inner {
    generation: u64,
    log: VecDeque<(u64, Change)>,
    licenses: Table<String, LicenseState>,
    license_keys: HashMap<i64, String>,
    products: Table<i64, Product>,
    customers: Table<i64, Customer>,
    tokens: Table<String, AccessToken>,
    token_hashes: HashMap<i64, String>,
}

impl Inner {
    /// Whether nothing that affects `change`'s row was invalidated after `since`.
    fn unchanged_since(&self, since: u64, change: Change) -> bool {
        if since == self.generation {
            return true;
        }
        match self.log.front() {
            Some(&(first, _)) if first <= since + 1 => self
                .log
                .iter()
                .filter(|(g, _)| *g > since)
                .all(|(_, c)| *c != change && *c != Change::All),
            _ => false,
        }
    }

    fn invalidate(&mut self, change: Change) {
        self.generation += 1;
        if self.log.len() == LOG {
            self.log.pop_front();
        }
        self.log.push_back((self.generation, change));
        match change {
            Change::License(id) => {
                if let Some(key) = self.license_keys.remove(&id) {
                    self.licenses.rows.remove(&key);
                }
            }
            Change::Product(id) => {
                self.products.rows.remove(&id);
            }
            Change::Customer(id) => {
                self.customers.rows.remove(&id);
            }
            Change::Token(id) => {
                if let Some(hash) = self.token_hashes.remove(&id) {
                    self.tokens.rows.remove(&hash);
                }
            }
            Change::All => {
                self.licenses.rows.clear();
                self.license_keys.clear();
                self.products.rows.clear();
                self.customers.rows.clear();
                self.tokens.rows.clear();
                self.token_hashes.clear();
            }
        }
    }
}

#[derive(Clone)]
pub(crate) struct Cache {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
    changes: Changes,
}

impl Cache {
    /// A cache of up to `capacity` licenses (0 turns it off) that follows `changes`.
    pub fn new(capacity: usize, changes: &Changes) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let weak = Arc::downgrade(&inner);
        changes.subscribe(move |changed| {
            if let Some(inner) = weak.upgrade() {
                let mut inner = inner.lock().expect("cache lock");
                for c in changed {
                    inner.invalidate(*c);
                }
            }
        });
        Self {
            inner,
            capacity,
            changes: changes.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("cache lock")
    }

    fn serving(&self) -> bool {
        self.capacity > 0 && self.changes.healthy()
    }

    /// Taken before a load from the database, and given back with its result.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn license(&self, key: &str) -> Option<Arc<LicenseState>> {
        if !self.serving() {
            return None;
        }
        self.lock().licenses.get(key)
    }

    pub fn put_license(&self, since: u64, state: Arc<LicenseState>) {
        if !self.serving() {
            return;
        }
        let mut inner = self.lock();
        let id = state.license.id;
        if inner.unchanged_since(since, Change::License(id)) {
            if inner.licenses.rows.len() >= self.capacity {
                inner.license_keys.clear();
            }
            let key = state.license.key.clone();
            inner.license_keys.insert(id, key.clone());
            inner.licenses.put(key, state, self.capacity);
        }
    }

    pub fn token(&self, hash: &str) -> Option<Arc<AccessToken>> {
        if !self.serving() {
            return None;
        }
        self.lock().tokens.get(hash)
    }

    pub fn put_token(&self, since: u64, hash: String, token: Arc<AccessToken>) {
        if !self.serving() {
            return;
        }
        let mut inner = self.lock();
        if inner.unchanged_since(since, Change::Token(token.id)) {
            if inner.tokens.rows.len() >= self.capacity {
                inner.token_hashes.clear();
            }
            inner.token_hashes.insert(token.id, hash.clone());
            inner.tokens.put(hash, token, self.capacity);
        }
    }

    pub fn product(&self, id: i64) -> Option<Arc<Product>> {
        if !self.serving() {
            return None;
        }
        self.lock().products.get(&id)
    }

    pub fn put_product(&self, since: u64, product: Arc<Product>) {
        if !self.serving() {
            return;
        }
        let mut inner = self.lock();
        if inner.unchanged_since(since, Change::Product(product.id)) {
            inner.products.put(product.id, product, self.capacity);
        }
    }

    pub fn customer(&self, id: i64) -> Option<Arc<Customer>> {
        if !self.serving() {
            return None;
        }
        self.lock().customers.get(&id)
    }

    pub fn put_customer(&self, since: u64, customer: Arc<Customer>) {
        if !self.serving() {
            return;
        }
        let mut inner = self.lock();
        if inner.unchanged_since(since, Change::Customer(customer.id)) {
            inner.customers.put(customer.id, customer, self.capacity);
        }
    }
}

/// Licenses kept by default: about a kilobyte each.
pub const DEFAULT_CAPACITY: usize = 100_000;

impl App {
    /// Keeps up to `capacity` licenses in memory for the hot paths (0: read the database on
    /// every request).
    pub fn with_license_cache(mut self, capacity: usize) -> Self {
        let cache = Cache::new(capacity, self.store.changes());
        self.parts_mut().cache = cache;
        self
    }

    /// A license and its activations by (normalised) key.
    pub(crate) async fn license_state(&self, key: &str) -> Result<Option<Arc<LicenseState>>> {
        if let Some(state) = self.cache.license(key) {
            return Ok(Some(state));
        }
        let since = self.cache.generation();
        let mut session = self.store.read().await?;
        let Some(license) = session.license_by_key(key).await? else {
            return Ok(None);
        };
        let activations = session.all_activations(license.id).await?;
        let state = Arc::new(LicenseState {
            license,
            activations,
        });
        self.cache.put_license(since, state.clone());
        Ok(Some(state))
    }

    /// The stored token a presented secret hashes to.
    pub(crate) async fn token_row(&self, hash: &TokenHash) -> Result<Option<Arc<AccessToken>>> {
        if let Some(token) = self.cache.token(hash.as_str()) {
            return Ok(Some(token));
        }
        let since = self.cache.generation();
        let Some(token) = self.store.read().await?.token_by_hash(hash).await? else {
            return Ok(None);
        };
        let token = Arc::new(token);
        self.cache
            .put_token(since, hash.as_str().to_owned(), token.clone());
        Ok(Some(token))
    }

    pub(crate) async fn product_row(&self, id: i64) -> Result<Option<Arc<Product>>> {
        if let Some(product) = self.cache.product(id) {
            return Ok(Some(product));
        }
        let since = self.cache.generation();
        let Some(product) = self.store.read().await?.product(id).await? else {
            return Ok(None);
        };
        let product = Arc::new(product);
        self.cache.put_product(since, product.clone());
        Ok(Some(product))
    }

    pub(crate) async fn customer_row(&self, id: i64) -> Result<Option<Arc<Customer>>> {
        if let Some(customer) = self.cache.customer(id) {
            return Ok(Some(customer));
        }
        let since = self.cache.generation();
        let Some(customer) = self.store.read().await?.customer(id).await? else {
            return Ok(None);
        };
        let customer = Arc::new(customer);
        self.cache.put_customer(since, customer.clone());
        Ok(Some(customer))
    }
}
