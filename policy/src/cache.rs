//! What the exchange hot path reads from the catalog — a resource by code, a department's
//! grant on it — kept in memory for a short while, so a lookup does not query the metadata DB.
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

use catalog::{Catalog, Grant, Resource};

/// A map of values fetched at a known time, stamped with the cache generation.
struct Timed<K, V> {
    entries: RwLock<HashMap<K, (Instant, u64, V)>>,
}

impl<K: Eq + Hash, V: Clone> Timed<K, V> {
    fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K, ttl: Duration, generation: u64) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, stamp, _)| *stamp == generation && at.elapsed() < ttl)
            .map(|(_, _, v)| v.clone())
    }

    fn put(&self, key: K, value: V, fetched: Instant, generation: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.insert(key, (fetched, generation, value));
    }

    fn clear(&self) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The catalog as the exchange API reads it.
pub struct CatalogCache {
    catalog: Catalog,
    ttl: Duration,
    generation: AtomicU64,
    resources: Timed<String, Arc<Resource>>,
    grants: Timed<(i64, i64), Option<Arc<Grant>>>,
}

impl CatalogCache {
    /// Caches reads of `catalog` for at most `ttl`.
    pub fn new(catalog: Catalog, ttl: Duration) -> Self {
        Self {
            catalog,
            ttl,
            generation: AtomicU64::new(0),
            resources: Timed::new(),
            grants: Timed::new(),
        }
    }

    /// The resource with this code.
    pub async fn resource(&self, code: &str) -> catalog::Result<Arc<Resource>> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(hit) = self.resources.get(&code.to_string(), self.ttl, generation) {
            return Ok(hit);
        }
        let fetched = Instant::now();
        let resource = Arc::new(self.catalog.resource_by_code(code).await?);
        self.resources
            .put(code.to_string(), resource.clone(), fetched, generation);
        Ok(resource)
    }

    /// The grant that decides `department`'s access to `resource_id`: its newest active grant,
    /// an unexpired one before an expired one (so a denial can say "expired").
    pub async fn grant(&self, resource_id: i64, department: i64) -> catalog::Result<Option<Arc<Grant>>> {
        let generation = self.generation.load(Ordering::Acquire);
        let key = (resource_id, department);
        if let Some(hit) = self.grants.get(&key, self.ttl, generation) {
            return Ok(hit);
        }
        let fetched = Instant::now();
        let grant = self.catalog.grant_for(resource_id, department).await?.map(Arc::new);
        self.grants.put(key, grant.clone(), fetched, generation);
        Ok(grant)
    }

    /// Forgets everything: the catalog was just written.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.resources.clear();
        self.grants.clear();
    }
}
