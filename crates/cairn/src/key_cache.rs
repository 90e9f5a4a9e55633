//! Access keys and bucket records as read, kept while the metadata's access version
//! (`MetaClient::access_version`, bumped by every creation or deletion of a key or bucket) is
//! unchanged, so that authenticating and authorising a request costs no metadata round trip
//! for a key or bucket read before. The version is checked at most every [`CHECK_EVERY`], by
//! one request while the others go on (a linearizable read: it sees every change committed
//! before it started); when it changed, everything cached is dropped. Cached records are only
//! used while a check that started less than [`ACCESS_CACHE_BOUND`] ago succeeded: a key or
//! bucket deleted or replaced elsewhere stops counting here within that bound, even when the
//! metadata cannot be reached (then requests read it, and fail as it does). Changed through
//! this store, at once. Unknown names are remembered too (bounded), so a flood of requests with
//! made-up keys or buckets costs one metadata read per name per change, not per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_meta::{BucketRecord, KeyRecord};
use cairn_meta_client::MetaClient;

/// Longest time a key or bucket changed through another gateway is still seen as it was.
pub const ACCESS_CACHE_BOUND: Duration = Duration::from_secs(1);

/// How often the access version is checked while requests come in.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Most names remembered per kind; beyond it, the cache starts again empty.
const MAX_ENTRIES: usize = 10_000;

/// What the last successful check of the access version found, and when it started.
#[derive(Clone, Copy)]
struct Checked {
    version: u64,
    started: Instant,
}

/// The version check shared by the key and bucket caches.
#[derive(Default)]
pub(crate) struct AccessVersion {
    last: Mutex<Option<Checked>>,
    /// Held by the one request checking; the others do not wait while the bound allows.
    checking: tokio::sync::Mutex<()>,
}

impl AccessVersion {
    fn last(&self) -> Option<Checked> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The access version records cached under it may be used with now, checking it with
    /// `meta` first when the last check is older than [`CHECK_EVERY`]; an error if no check
    /// started within [`ACCESS_CACHE_BOUND`] succeeded (nothing cached may be used).
    pub(crate) async fn current(&self, meta: &dyn MetaClient, now: Instant) -> cairn_meta_client::Result<u64> {
        self.current_by(|| meta.access_version(), now).await
    }

    /// [`AccessVersion::current`], reading the version with `read`.
    async fn current_by<'a, F, Fut>(&self, read: F, now: Instant) -> cairn_meta_client::Result<u64>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = cairn_meta_client::Result<u64>> + 'a,
    {
        let within = |c: Option<Checked>, limit: Duration| {
            c.filter(|c| now.saturating_duration_since(c.started) < limit)
                .map(|c| c.version)
        };
        let last = self.last();
        if let Some(v) = within(last, CHECK_EVERY) {
            return Ok(v);
        }
        let _checking = match self.checking.try_lock() {
            Ok(g) => g,
            Err(_) => match within(last, ACCESS_CACHE_BOUND) {
                // Another request is checking; this one goes on with what is still fresh.
                Some(v) => return Ok(v),
                None => self.checking.lock().await,
            },
        };
        // Checked by another request meanwhile?
        if let Some(v) = within(self.last(), CHECK_EVERY) {
            return Ok(v);
        }
        let started = Instant::now();
        match read().await {
            Ok(version) => {
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Checked { version, started });
                Ok(version)
            }
            Err(e) => within(self.last(), ACCESS_CACHE_BOUND).ok_or(e),
        }
    }
}

/// Records by name, each with the access version it was read under.
pub(crate) struct RecentReads<V> {
    entries: Mutex<HashMap<String, (u64, Option<V>)>>,
    /// Bumped by every [`RecentReads::forget`]: a read that started before a change through
    /// this store is not remembered after it.
    generation: std::sync::atomic::AtomicU64,
}

/// Access keys by id.
pub(crate) type KeyCache = RecentReads<KeyRecord>;
/// Bucket records by name.
pub(crate) type BucketCache = RecentReads<BucketRecord>;

impl<V> Default for RecentReads<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            generation: Default::default(),
        }
    }
}

impl<V: Clone> RecentReads<V> {
    /// The generation to pass to [`RecentReads::put`], taken before reading the metadata.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Option<V>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record as read under access version `version`: `Some(None)` if it did not exist.
    pub(crate) fn get(&self, name: &str, version: u64) -> Option<Option<V>> {
        self.entries()
            .get(name)
            .filter(|(v, _)| *v == version)
            .map(|(_, r)| r.clone())
    }

    /// Remembers `record` (or its absence) as read under access version `version` (taken
    /// before the read) — unless something changed through this store since `generation` was
    /// taken (the read may predate the change).
    pub(crate) fn put(&self, name: &str, record: Option<V>, version: u64, generation: u64) {
        let mut e = self.entries();
        if self.generation() != generation {
            return;
        }
        if e.len() >= MAX_ENTRIES {
            e.retain(|_, (v, _)| *v == version);
            if e.len() >= MAX_ENTRIES {
                e.clear();
            }
        }
        e.insert(name.to_string(), (version, record));
    }

    /// Forgets a record changed through this store (call it once the change is made).
    pub(crate) fn forget(&self, name: &str) {
        let mut e = self.entries();
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        e.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use super::*;

    fn key(id: &str) -> KeyRecord {
        KeyRecord {
            access_key: id.into(),
            secret_key: "s".into(),
            name: "n".into(),
            created: 0,
        }
    }

    #[test]
    fn entries_count_under_their_version_only_and_absence_is_remembered() {
        let c = KeyCache::default();
        c.put("AK", Some(key("AK")), 7, c.generation());
        c.put("NOPE", None, 7, c.generation());
        assert_eq!(c.get("AK", 7), Some(Some(key("AK"))));
        assert_eq!(c.get("NOPE", 7), Some(None));
        assert_eq!(c.get("AK", 8), None, "the version moved on");
        assert_eq!(c.get("OTHER", 7), None);
        c.forget("NOPE");
        assert_eq!(c.get("NOPE", 7), None);
    }

    #[test]
    fn a_read_made_before_a_change_through_this_store_is_not_remembered() {
        let c = BucketCache::default();
        let before = c.generation();
        // The bucket is deleted through this store while a read of it is under way...
        c.forget("b");
        // ...and that read, answering the bucket as it was, must not be cached.
        let old = BucketRecord {
            name: "b".into(),
            owner: "old".into(),
            created: 1,
        };
        c.put("b", Some(old.clone()), 3, before);
        assert_eq!(c.get("b", 3), None);
        c.put("b", Some(old.clone()), 3, c.generation());
        assert_eq!(c.get("b", 3), Some(Some(old)));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = KeyCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            c.put(&format!("k{i}"), None, 1, c.generation());
        }
        assert!(c.entries().len() <= MAX_ENTRIES);
        assert_eq!(c.get(&format!("k{}", MAX_ENTRIES + 9), 1), Some(None));
    }

    /// A metadata's access version, counting the reads; `down` makes them fail as an
    /// unreachable metadata would.
    #[derive(Default)]
    struct Versions {
        version: AtomicU64,
        calls: AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    impl Versions {
        async fn read(&self) -> cairn_meta_client::Result<u64> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(cairn_meta_client::MetaClientError::Unavailable("down".into()));
            }
            Ok(self.version.load(Ordering::SeqCst))
        }
    }

    #[tokio::test]
    async fn the_version_is_checked_at_most_every_interval_and_trusted_within_the_bound() {
        let meta = Versions::default();
        let a = AccessVersion::default();
        let t0 = Instant::now();
        assert_eq!(a.current_by(|| meta.read(), t0).await.unwrap(), 0);
        assert_eq!(meta.calls.load(Ordering::SeqCst), 1);
        // Within the interval: no call, even after a change elsewhere.
        meta.version.store(1, Ordering::SeqCst);
        assert_eq!(a.current_by(|| meta.read(), t0).await.unwrap(), 0);
        assert_eq!(meta.calls.load(Ordering::SeqCst), 1);
        // After it: checked again, the change seen.
        let later = Instant::now() + CHECK_EVERY;
        assert_eq!(a.current_by(|| meta.read(), later).await.unwrap(), 1);
        assert_eq!(meta.calls.load(Ordering::SeqCst), 2);
        // The metadata unreachable: what was checked counts within the bound, not after.
        meta.down.store(true, Ordering::SeqCst);
        let started = a.last().unwrap().started;
        assert_eq!(a.current_by(|| meta.read(), started + CHECK_EVERY).await.unwrap(), 1);
        assert!(a
            .current_by(|| meta.read(), started + ACCESS_CACHE_BOUND)
            .await
            .is_err());
    }
}
