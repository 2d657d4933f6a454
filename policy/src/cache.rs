//! What the exchange and open-data hot paths read from the catalog — a resource by code, a
//! department's grant on it, a developer's application for it — kept in memory for a short while, so a lookup does not query the metadata DB.
//!
//! An entry is trusted for at most `ttl` (a change made by another process, the CLI or a
//! replica, shows within that time; a busy entry is fetched again after half of it) and is dropped at once by [`CatalogCache::invalidate`],
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
///
/// An entry is refreshed ahead of its expiry: the first caller to find it past half its `ttl`
/// is told it is missing, fetches it again and puts it back, while the others keep using it.
/// Under load a busy entry so never expires, where expiring made every call in flight at that
/// moment query the DB at once (each second, with the default `ttl`: the p99 latency of the
/// exchange lookup showed it).
pub(crate) struct TtlMap<K, V> {
    ttl: Duration,
    max: usize,
    entries: RwLock<HashMap<K, Entry<V>>>,
}

struct Entry<V> {
    fetched: Instant,
    /// The entry's age, in microseconds, when a caller was last told to fetch it again
    /// ([`NOT_CLAIMED`]: never).
    claimed: AtomicU64,
    value: V,
}

const NOT_CLAIMED: u64 = u64::MAX;

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The value of `key` if it was fetched less than `ttl` ago, unless it is past half of
    /// that and no caller was told to fetch it again in the last eighth of `ttl`: this one is.
    /// (A caller told to whose fetch failed, or who went away, puts nothing back: another is
    /// told an eighth of `ttl` later.)
    pub(crate) fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
    {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(key)?;
        let age = entry.fetched.elapsed();
        if age >= self.ttl {
            return None;
        }
        if age >= self.ttl / 2 {
            let now = age.as_micros() as u64;
            let claimed = entry.claimed.load(Ordering::Relaxed);
            let open = claimed == NOT_CLAIMED || now.saturating_sub(claimed) >= (self.ttl / 8).as_micros() as u64;
            if open
                && entry
                    .claimed
                    .compare_exchange(claimed, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return None;
            }
        }
        Some(entry.value.clone())
    }

    /// Drops `key`'s entry (its fetch again found it no longer valid).
    pub(crate) fn remove<Q: Eq + Hash + ?Sized>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
    {
        self.write().remove(key);
    }

    /// Keeps `value`, fetched at `fetched`. When full, stale entries go first, then all.
    pub(crate) fn put(&self, key: K, value: V, fetched: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.write();
        if entries.len() >= self.max {
            let ttl = self.ttl;
            entries.retain(|_, entry| entry.fetched.elapsed() < ttl);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        let claimed = AtomicU64::new(NOT_CLAIMED);
        entries.insert(
            key,
            Entry {
                fetched,
                claimed,
                value,
            },
        );
    }

    /// Drops the entries `keep` says no to.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&V) -> bool) {
        self.write().retain(|_, entry| keep(&entry.value));
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<K, Entry<V>>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    // Ages are set back from now: small enough for a machine just booted.
    const TTL: Duration = Duration::from_secs(10);

    fn map_with(age: Duration) -> TtlMap<&'static str, u32> {
        let map = TtlMap::new(TTL, 10);
        map.put("k", 7, Instant::now() - age);
        map
    }

    #[test]
    fn an_entry_is_refreshed_by_one_caller_past_half_its_ttl_and_gone_past_its_ttl() {
        // (age, what five callers in a row are told)
        let cases: [(Duration, [Option<u32>; 5]); 4] = [
            (Duration::ZERO, [Some(7); 5]),
            (TTL / 3, [Some(7); 5]),
            (TTL * 2 / 3, [None, Some(7), Some(7), Some(7), Some(7)]),
            (TTL + Duration::from_secs(1), [None; 5]),
        ];
        for (age, told) in cases {
            let map = map_with(age);
            let got: Vec<_> = (0..5).map(|_| map.get("k")).collect();
            assert_eq!(got, told, "an entry {age:?} old");
        }
    }

    #[test]
    fn a_refresh_nobody_put_back_is_handed_to_another_caller_an_eighth_of_the_ttl_later() {
        let map = map_with(TTL * 2 / 3);
        assert_eq!(map.get("k"), None, "the first caller is told to fetch it again");
        assert_eq!(map.get("k"), Some(7));
        // That caller's fetch failed: nothing was put back. Its claim, made at age 2/3, is
        // set back by an eighth of the ttl, as if that much time had passed.
        let entries = map.entries.read().unwrap();
        let entry = entries.get("k").unwrap();
        let claimed = entry.claimed.load(Ordering::Relaxed);
        entry
            .claimed
            .store(claimed - (TTL / 8).as_micros() as u64, Ordering::Relaxed);
        drop(entries);
        assert_eq!(map.get("k"), None, "another caller is told");
        assert_eq!(map.get("k"), Some(7));
    }

    #[test]
    fn the_value_put_back_by_the_refreshing_caller_is_fresh_again() {
        let map = map_with(TTL * 2 / 3);
        assert_eq!(map.get("k"), None, "the first caller past half the ttl fetches again");
        map.put("k", 8, Instant::now());
        assert_eq!(map.get("k"), Some(8));
        assert_eq!(map.get("k"), Some(8), "not refreshed again while fresh");
    }

    #[test]
    fn a_zero_ttl_keeps_nothing_and_a_full_map_drops_stale_entries_first() {
        let none: TtlMap<&str, u32> = TtlMap::new(Duration::ZERO, 10);
        none.put("k", 1, Instant::now());
        assert_eq!(none.get("k"), None);

        let map: TtlMap<u32, u32> = TtlMap::new(TTL, 2);
        map.put(1, 1, Instant::now() - TTL * 2);
        map.put(2, 2, Instant::now());
        map.put(3, 3, Instant::now());
        assert_eq!((map.get(&1), map.get(&2), map.get(&3)), (None, Some(2), Some(3)));
    }
}
