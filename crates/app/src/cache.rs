//! The rows programs ask about on every start — a license with its activations, its product,
//! its customer — kept in memory, so validation and re-activation need no database round trip.
//!
//! Entries are dropped as soon as a transaction that changed their row commits: the store tells
//! every committed change ([`keyturn_store::Changes`]), on PostgreSQL to every node. A load that
//! overlapped such a commit is not kept (it may have read the row before the change). While a
//! node cannot hear other nodes' changes, nothing is served from memory. Entries also age out
//! after [`MAX_AGE`], which bounds how long a change made outside any server process (the CLI
//! writing to a served SQLite file) goes unseen.
//!
//! When the database does not answer, an entry older than [`MAX_AGE`] is still served: the node
//! hears every change committed anywhere (or it would serve nothing), so none can have been
//! missed — except a write by the CLI into a served SQLite file, which needs that same file.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keyturn_core::{AccessToken, Activation, Customer, DataObject, License, Product, TokenHash};
use keyturn_store::{Change, Changes};

use crate::{App, AppError, Result};

pub const MAX_AGE: Duration = Duration::from_secs(5);
/// Recent invalidations kept to tell whether a load overlapped one.
const LOG: usize = 4096;

/// A license as the hot paths need it: the row and every activation, lapsed leases included
/// (which are live depends on the time of the question).
#[derive(Debug, Clone)]
pub struct LicenseState {
    pub license: License,
    pub activations: Vec<Activation>,
    /// `license` as its licensee sees it, as JSON, with the product settings it was rendered
    /// under: rendered by the first reply that shows it and reused by the rest, so a cached
    /// license is shown in every validation reply until it (or what its product makes public)
    /// changes.
    json: std::sync::OnceLock<(Visibility, Box<serde_json::value::RawValue>)>,
    /// The license's own data objects, read by the first reply that shows them (only the
    /// Cryptolens replies do); a change of them drops the whole state like any license change.
    pub(crate) data_objects: tokio::sync::OnceCell<Vec<DataObject>>,
}

/// What a product makes public of its licenses (`public_notes`, `public_metadata`), which
/// decides how a license is shown; `None` for a license with nothing private to hide.
type Visibility = Option<(bool, Vec<String>)>;

impl LicenseState {
    pub fn new(license: License, activations: Vec<Activation>) -> Self {
        Self {
            license,
            activations,
            json: Default::default(),
            data_objects: Default::default(),
        }
    }

    /// The license as replies to its licensee show it ([`License::licensee_view`] of
    /// `product`, the same bytes `serde_json` would write for it). A license without notes or
    /// metadata ([`License::has_private_fields`]) is shown whole, and needs no `product`.
    pub fn licensee_json(&self, product: Option<&Product>) -> Cow<'_, serde_json::value::RawValue> {
        let product = product.filter(|_| self.license.has_private_fields());
        let render = || {
            let json = match product {
                Some(p) => serde_json::value::to_raw_value(&self.license.licensee_view(p)),
                None => serde_json::value::to_raw_value(&self.license),
            };
            json.expect("a license always serialises")
        };
        let wanted = || product.map(|p| (p.public_notes, p.public_metadata.clone()));
        let (shown_as, json) = self.json.get_or_init(|| (wanted(), render()));
        let same = match (shown_as, product) {
            (None, None) => true,
            (Some((notes, keys)), Some(p)) => {
                *notes == p.public_notes && *keys == p.public_metadata
            }
            _ => false,
        };
        if same {
            Cow::Borrowed(json)
        } else {
            // The product's settings changed since: render afresh (rare, and only until the
            // entry ages out).
            Cow::Owned(render())
        }
    }

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

/// Rows by the key they are looked up by, with the row id a change names them by.
struct Table<K, T> {
    rows: HashMap<K, Entry<T>>,
    keys: HashMap<i64, K>,
}

impl<K, T> Default for Table<K, T> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
            keys: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, T> Table<K, T> {
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

    /// An entry however old, for when the database cannot be asked.
    fn get_any<Q>(&self, k: &Q) -> Option<Arc<T>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.rows.get(k).map(|e| e.value.clone())
    }

    fn put(&mut self, id: i64, k: K, value: Arc<T>, capacity: usize) {
        if self.rows.len() >= capacity {
            // Starting afresh keeps memory bounded without bookkeeping on every hit.
            self.clear();
        }
        self.keys.insert(id, k.clone());
        self.rows.insert(
            k,
            Entry {
                value,
                loaded: Instant::now(),
            },
        );
    }

    fn remove(&mut self, id: i64) {
        if let Some(k) = self.keys.remove(&id) {
            self.rows.remove(&k);
        }
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.keys.clear();
    }
}

#[derive(Default)]
struct Inner {
    generation: u64,
    log: VecDeque<(u64, Change)>,
    licenses: Table<String, LicenseState>,
    products: Table<i64, Product>,
    customers: Table<i64, Customer>,
    tokens: Table<String, AccessToken>,
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
            Change::License(id) => self.licenses.remove(id),
            Change::Product(id) => self.products.remove(id),
            Change::Customer(id) => self.customers.remove(id),
            Change::Token(id) => self.tokens.remove(id),
            Change::All => {
                self.licenses.clear();
                self.products.clear();
                self.customers.clear();
                self.tokens.clear();
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
    /// A cache of up to `capacity` rows of each kind (0 turns it off) that follows `changes`.
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

    fn read<T>(&self, pick: impl FnOnce(&Inner) -> Option<Arc<T>>) -> Option<Arc<T>> {
        if !self.serving() {
            return None;
        }
        pick(&self.lock())
    }

    /// Keeps a row loaded since generation `since`, unless a change of it overlapped the load.
    fn keep(&self, since: u64, change: Change, put: impl FnOnce(&mut Inner, usize)) {
        if !self.serving() {
            return;
        }
        let mut inner = self.lock();
        if inner.unchanged_since(since, change) {
            put(&mut inner, self.capacity);
        }
    }

    /// Taken before a load from the database, and given back with its result.
    fn generation(&self) -> u64 {
        self.lock().generation
    }
}

impl App {
    /// A row from memory (`pick` with `fresh`), or from `load` (kept by `keep` if no change
    /// overlapped the load). If the database is unavailable, an aged entry answers instead
    /// (`pick` without `fresh`).
    async fn through_cache<T>(
        &self,
        pick: impl Fn(&Inner, bool) -> Option<Arc<T>>,
        load: impl AsyncFnOnce() -> Result<Option<T>>,
        keep: impl FnOnce(&Cache, u64, Arc<T>),
    ) -> Result<Option<Arc<T>>> {
        self.through_cache_counted(pick, load, keep, false).await
    }

    /// [`Self::through_cache`], counting hits and misses in the metrics when `counted`.
    async fn through_cache_counted<T>(
        &self,
        pick: impl Fn(&Inner, bool) -> Option<Arc<T>>,
        load: impl AsyncFnOnce() -> Result<Option<T>>,
        keep: impl FnOnce(&Cache, u64, Arc<T>),
        counted: bool,
    ) -> Result<Option<Arc<T>>> {
        let hit = self.cache.read(|i| pick(i, true));
        if counted {
            self.metrics.license_cache(hit.is_some());
        }
        if let Some(row) = hit {
            return Ok(Some(row));
        }
        let since = self.cache.generation();
        let row = match load().await {
            Ok(Some(row)) => Arc::new(row),
            Ok(None) => return Ok(None),
            Err(AppError::Store(e)) if e.is_unavailable() => {
                return match self.cache.read(|i| pick(i, false)) {
                    Some(held) => {
                        tracing::debug!(error = %e, "the database is unavailable; answered from memory");
                        Ok(Some(held))
                    }
                    None => Err(e.into()),
                };
            }
            Err(e) => return Err(e),
        };
        keep(&self.cache, since, row.clone());
        Ok(Some(row))
    }
}

fn fresh_or_any<K, Q, T>(table: &Table<K, T>, k: &Q, fresh: bool) -> Option<Arc<T>>
where
    K: Eq + Hash + Clone + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    if fresh {
        table.get(k)
    } else {
        table.get_any(k)
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
        self.through_cache_counted(
            |i, fresh| fresh_or_any(&i.licenses, key, fresh),
            async || {
                let mut session = self.store.read().await?;
                let Some(license) = session.license_by_key(key).await? else {
                    return Ok(None);
                };
                let activations = session.all_activations(license.id).await?;
                Ok(Some(LicenseState::new(license, activations)))
            },
            |cache, since, state| {
                let id = state.license.id;
                cache.keep(since, Change::License(id), |i, cap| {
                    i.licenses.put(id, state.license.key.clone(), state, cap)
                })
            },
            true,
        )
        .await
    }

    /// The stored token a presented secret hashes to.
    pub(crate) async fn token_row(&self, hash: &TokenHash) -> Result<Option<Arc<AccessToken>>> {
        self.through_cache(
            |i, fresh| fresh_or_any(&i.tokens, hash.as_str(), fresh),
            async || Ok(self.store.read().await?.token_by_hash(hash).await?),
            |cache, since, token| {
                cache.keep(since, Change::Token(token.id), |i, cap| {
                    i.tokens.put(token.id, hash.as_str().to_owned(), token, cap)
                })
            },
        )
        .await
    }

    pub(crate) async fn product_row(&self, id: i64) -> Result<Option<Arc<Product>>> {
        self.through_cache(
            |i, fresh| fresh_or_any(&i.products, &id, fresh),
            async || Ok(self.store.read().await?.product(id).await?),
            |cache, since, product| {
                cache.keep(since, Change::Product(id), |i, cap| {
                    i.products.put(id, id, product, cap)
                })
            },
        )
        .await
    }

    pub(crate) async fn customer_row(&self, id: i64) -> Result<Option<Arc<Customer>>> {
        self.through_cache(
            |i, fresh| fresh_or_any(&i.customers, &id, fresh),
            async || Ok(self.store.read().await?.customer(id).await?),
            |cache, since, customer| {
                cache.keep(since, Change::Customer(id), |i, cap| {
                    i.customers.put(id, id, customer, cap)
                })
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_license_is_shown_as_serde_writes_it() {
        let at = DateTime::from_timestamp_millis(1_790_000_000_123).expect("a valid time");
        let license = License {
            id: 41,
            key: "AAAAA-BBBBB-CCCCC-DDDDD".into(),
            product_id: 3,
            plan_id: Some(2),
            customer_id: None,
            created: at,
            updated: at,
            expires: Some(at + chrono::Duration::days(30)),
            period_days: Some(30),
            features: vec!["pro".into(), "export".into()],
            max_machines: 2,
            floating_lease_seconds: None,
            trial: false,
            notes: "says \"hi\"\nand ünïcode".into(),
            blocked: false,
            metadata: serde_json::json!({"seats": 5, "tags": ["a", "b"]}),
            trial_activation: false,
            allowed_machines: vec!["build-box".into()],
        };
        let mut product = Product {
            id: 3,
            name: "Editor".into(),
            description: String::new(),
            features: vec!["pro".into(), "export".into()],
            public_notes: true,
            public_metadata: vec!["seats".into(), "tags".into()],
            block_expired_licenses: false,
            created: at,
        };
        let state = LicenseState::new(license.clone(), Vec::new());
        let shown = state.licensee_json(Some(&product));
        assert_eq!(shown.get(), serde_json::to_string(&license).unwrap());
        let back: License = serde_json::from_str(shown.get()).unwrap();
        assert_eq!(back.notes, license.notes);
        assert_eq!(back.expires, license.expires);
        // Rendered once: the second call hands out the same bytes.
        assert!(matches!(shown, Cow::Borrowed(_)));
        assert!(std::ptr::eq(
            shown.get(),
            state.licensee_json(Some(&product)).get()
        ));
        // Shown as the product's settings say, also after they change.
        product.public_notes = false;
        product.public_metadata = vec!["seats".into()];
        let back: License =
            serde_json::from_str(state.licensee_json(Some(&product)).get()).unwrap();
        assert_eq!(back.notes, "");
        assert_eq!(back.metadata, serde_json::json!({"seats": 5}));
    }
}
