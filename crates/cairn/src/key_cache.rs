//! Access keys as recently read, so that authenticating a request costs no metadata round trip
//! for a key seen within [`KEY_CACHE_TTL`] (with the metadata in another process, a round trip
//! per request). A key deleted or replaced elsewhere stops working here within that time; one
//! deleted through this store, at once. Unknown keys are remembered too (bounded), so a flood
//! of requests with made-up keys costs one metadata read per key per TTL, not per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_meta::KeyRecord;

/// How long a key read from the metadata is trusted.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Most keys remembered; beyond it, expired entries go, then all.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<String, (Instant, Option<KeyRecord>)>>,
}

impl KeyCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<KeyRecord>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key as read less than the TTL before `now`: `Some(None)` if it did not exist.
    pub(crate) fn get(&self, access_key: &str, now: Instant) -> Option<Option<KeyRecord>> {
        self.entries()
            .get(access_key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < KEY_CACHE_TTL)
            .map(|(_, k)| k.clone())
    }

    /// Remembers `key` (or its absence) as read at `at`.
    pub(crate) fn put(&self, access_key: &str, key: Option<KeyRecord>, at: Instant) {
        let mut e = self.entries();
        if e.len() >= MAX_ENTRIES {
            e.retain(|_, (t, _)| at.saturating_duration_since(*t) < KEY_CACHE_TTL);
            if e.len() >= MAX_ENTRIES {
                e.clear();
            }
        }
        e.insert(access_key.to_string(), (at, key));
    }

    /// Forgets a key changed through this store.
    pub(crate) fn forget(&self, access_key: &str) {
        self.entries().remove(access_key);
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
        c.put("AK", Some(key("AK")), t0);
        c.put("NOPE", None, t0);
        assert_eq!(c.get("AK", t0 + KEY_CACHE_TTL / 2), Some(Some(key("AK"))));
        assert_eq!(c.get("NOPE", t0), Some(None));
        assert_eq!(c.get("AK", t0 + KEY_CACHE_TTL), None, "expired");
        assert_eq!(c.get("OTHER", t0), None);
        c.forget("AK");
        assert_eq!(c.get("AK", t0), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = KeyCache::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES + 10 {
            c.put(&format!("k{i}"), None, t0);
        }
        assert!(c.entries().len() <= MAX_ENTRIES);
        assert_eq!(c.get(&format!("k{}", MAX_ENTRIES + 9), t0), Some(None));
    }
}
