//! What the exchange and open-data hot paths read from the catalog — a resource by code, a
//! department's grant on it, a developer's application for it — kept in memory for a short while, so a lookup does not query the metadata DB.
//!
//! An entry is trusted for at most `ttl` (a change made by another process, the CLI or a
//! replica, shows within that time) and is dropped at once by [`CatalogCache::invalidate`],
//! which the server calls after every catalog write it serves. Misses (unknown codes) are not
//! kept, so callers cannot grow the cache.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use catalog::{Catalog, Grant, OpenApplication, Resource};

/// A map whose entries are trusted for `ttl` after they were fetched, holding at most `max`
/// of them: the shape of every cache on the hot path ([`CatalogCache`],
/// [`crate::Authenticator`]). A zero `ttl` keeps nothing.
pub(crate) struct TtlMap<K, V> {
    ttl: Duration,
    max: usize,
    entries: RwLock<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The value of `key` if it was fetched less than `ttl` ago.
    pub(crate) fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
    {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(fetched, _)| fetched.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value`, fetched at `fetched`. When full, stale entries go first, then all.
    pub(crate) fn put(&self, key: K, value: V, fetched: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.write();
        if entries.len() >= self.max {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(key, (fetched, value));
    }

    /// Drops the entries `keep` says no to.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&V) -> bool) {
        self.write().retain(|_, (_, v)| keep(v));
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Resources and grants are bounded by the catalog; this only guards against surprises.
const MAX_CATALOG_ENTRIES: usize = 100_000;

/// The catalog as the exchange API reads it.
pub struct CatalogCache {
    catalog: Catalog,
    generation: AtomicU64,
    // Each value carries the generation it was read in: one read before the last
    // invalidation is not trusted even if it is put after it.
    resources: TtlMap<String, Stamped<Arc<Resource>>>,
    grants: TtlMap<(i64, i64), Stamped<Option<Arc<Grant>>>>,
    applications: TtlMap<(i64, i64), Stamped<Option<Arc<OpenApplication>>>>,
}

/// A catalog read and the cache generation it was made in.
type Stamped<T> = (u64, T);

impl CatalogCache {
    /// Caches reads of `catalog` for at most `ttl`.
    pub fn new(catalog: Catalog, ttl: Duration) -> Self {
        Self {
            catalog,
            generation: AtomicU64::new(0),
            resources: TtlMap::new(ttl, MAX_CATALOG_ENTRIES),
            grants: TtlMap::new(ttl, MAX_CATALOG_ENTRIES),
            applications: TtlMap::new(ttl, MAX_CATALOG_ENTRIES),
        }
    }

    /// The resource with this code.
    pub async fn resource(&self, code: &str) -> catalog::Result<Arc<Resource>> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((stamp, hit)) = self.resources.get(code)
            && stamp == generation
        {
            return Ok(hit);
        }
        let fetched = Instant::now();
        let resource = Arc::new(self.catalog.resource_by_code(code).await?);
        self.resources
            .put(code.to_string(), (generation, resource.clone()), fetched);
        Ok(resource)
    }

    /// The grant that decides `department`'s access to `resource_id`: its newest active grant,
    /// an unexpired one before an expired one (so a denial can say "expired").
    pub async fn grant(&self, resource_id: i64, department: i64) -> catalog::Result<Option<Arc<Grant>>> {
        Self::cached(&self.generation, &self.grants, (resource_id, department), || async {
            Ok(self.catalog.grant_for(resource_id, department).await?.map(Arc::new))
        })
        .await
    }

    /// The open-data application of developer `credential_id` in force on `resource_id`.
    pub async fn application(
        &self,
        resource_id: i64,
        credential_id: i64,
    ) -> catalog::Result<Option<Arc<OpenApplication>>> {
        Self::cached(
            &self.generation,
            &self.applications,
            (resource_id, credential_id),
            || async {
                Ok(self
                    .catalog
                    .application_in_force(resource_id, credential_id)
                    .await?
                    .map(Arc::new))
            },
        )
        .await
    }

    /// The value of `key` in `map` if it was read in the current generation, else `fetch`ed
    /// and kept.
    async fn cached<V: Clone, F, Fut>(
        generation: &AtomicU64,
        map: &TtlMap<(i64, i64), Stamped<V>>,
        key: (i64, i64),
        fetch: F,
    ) -> catalog::Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = catalog::Result<V>>,
    {
        let current = generation.load(Ordering::Acquire);
        if let Some((stamp, hit)) = map.get(&key)
            && stamp == current
        {
            return Ok(hit);
        }
        let fetched = Instant::now();
        let value = fetch().await?;
        map.put(key, (current, value.clone()), fetched);
        Ok(value)
    }

    /// Forgets everything: the catalog was just written.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.resources.retain(|_| false);
        self.grants.retain(|_| false);
        self.applications.retain(|_| false);
    }
}
