//! Access keys and bucket records as recently read, so that authenticating and authorising a
//! request costs no metadata round trip for a key or bucket seen within [`KEY_CACHE_TTL`] /
//! [`BUCKET_CACHE_TTL`] (with the metadata in another process, a round trip per request). A
//! key or bucket deleted or replaced elsewhere stops counting here within that time; one
//! changed through this store, at once. Unknown names are remembered too (bounded), so a flood
//! of requests with made-up keys or buckets costs one metadata read per name per TTL, not per
//! request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_meta::{BucketRecord, KeyRecord};

/// How long a key read from the metadata is trusted.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// How long a bucket record read from the metadata is trusted for authorising a request (never
/// for a write: a write goes to the bucket as it is when committed, see
/// [`crate::Store::bucket_guard`]).
pub const BUCKET_CACHE_TTL: Duration = Duration::from_secs(1);

/// Most names remembered; beyond it, expired entries go, then all.
const MAX_ENTRIES: usize = 10_000;

/// Records by name, each trusted for `ttl` after it was read.
pub(crate) struct RecentReads<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Option<V>)>>,
    /// Bumped by every [`RecentReads::forget`]: a read that started before a change through
    /// this store is not remembered after it.
    generation: std::sync::atomic::AtomicU64,
}

/// Access keys by id.
pub(crate) type KeyCache = RecentReads<KeyRecord>;
/// Bucket records by name.
pub(crate) type BucketCache = RecentReads<BucketRecord>;

impl Default for KeyCache {
    fn default() -> Self {
        Self::new(KEY_CACHE_TTL)
    }
}

impl Default for BucketCache {
    fn default() -> Self {
        Self::new(BUCKET_CACHE_TTL)
    }
}

impl<V: Clone> RecentReads<V> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: Default::default(),
        }
    }

    /// The generation to pass to [`RecentReads::put`], taken before reading the metadata.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<V>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record as read less than the TTL before `now`: `Some(None)` if it did not exist.
    pub(crate) fn get(&self, name: &str, now: Instant) -> Option<Option<V>> {
        self.entries()
            .get(name)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, k)| k.clone())
    }

    /// Remembers `record` (or its absence) as read at `at` — unless something changed through
    /// this store since `generation` was taken (the read may predate the change).
    pub(crate) fn put(&self, name: &str, record: Option<V>, at: Instant, generation: u64) {
        let mut e = self.entries();
        if self.generation() != generation {
            return;
        }
        if e.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            e.retain(|_, (t, _)| at.saturating_duration_since(*t) < ttl);
            if e.len() >= MAX_ENTRIES {
                e.clear();
            }
        }
        e.insert(name.to_string(), (at, record));
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
    fn entries_expire_after_the_ttl_and_absence_is_remembered() {
        let c = KeyCache::default();
        let t0 = Instant::now();
        c.put("AK", Some(key("AK")), t0, c.generation());
        c.put("NOPE", None, t0, c.generation());
        assert_eq!(c.get("AK", t0 + KEY_CACHE_TTL / 2), Some(Some(key("AK"))));
        assert_eq!(c.get("NOPE", t0), Some(None));
        assert_eq!(c.get("AK", t0 + KEY_CACHE_TTL), None, "expired");
        assert_eq!(c.get("OTHER", t0), None);
        c.forget("AK");
        assert_eq!(c.get("AK", t0), None);
    }

    #[test]
    fn a_read_made_before_a_change_through_this_store_is_not_remembered() {
        let c = BucketCache::default();
        let t0 = Instant::now();
        let before = c.generation();
        // The bucket is deleted through this store while a read of it is under way...
        c.forget("b");
        // ...and that read, answering the bucket as it was, must not be cached.
        let old = BucketRecord {
            name: "b".into(),
            owner: "old".into(),
            created: 1,
        };
        c.put("b", Some(old.clone()), t0, before);
        assert_eq!(c.get("b", t0), None);
        c.put("b", Some(old.clone()), t0, c.generation());
        assert_eq!(c.get("b", t0), Some(Some(old)));
        assert_eq!(c.get("b", t0 + BUCKET_CACHE_TTL), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = KeyCache::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES + 10 {
            c.put(&format!("k{i}"), None, t0, c.generation());
        }
        assert!(c.entries().len() <= MAX_ENTRIES);
        assert_eq!(c.get(&format!("k{}", MAX_ENTRIES + 9), t0), Some(None));
    }
}
