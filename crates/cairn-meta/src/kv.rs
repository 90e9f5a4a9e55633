//! The small key-value interface that [`crate::apply`] and [`crate::query`] run over.

use std::collections::BTreeMap;
use std::ops::Bound;

/// A failure of the underlying store (not of the command).
#[derive(Debug, thiserror::Error)]
#[error("metadata store error: {0}")]
pub struct KvError(pub String);

/// Key-value pairs in key order, as scans return them.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Ordered reads.
pub trait KvRead {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Up to `limit` pairs with `from <= key < to`, in key order.
    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<KvPairs, KvError>;
}

/// Writes, buffered by the caller into one atomic batch.
pub trait KvWrite: KvRead {
    /// Sets `key` to `value`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    /// Removes `key`.
    fn delete(&mut self, key: Vec<u8>);
}

/// Pending writes over a read-only base: reads see the writes, and [`Overlay::into_writes`]
/// hands them over to be committed in one batch.
pub struct Overlay<'a, R: KvRead + ?Sized> {
    base: &'a R,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a, R: KvRead + ?Sized> Overlay<'a, R> {
    /// An overlay with no writes yet.
    pub fn new(base: &'a R) -> Self {
        Self {
            base,
            writes: BTreeMap::new(),
        }
    }

    /// The pending writes, in key order (`None` is a delete).
    pub fn into_writes(self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.writes
    }

    /// Number of pending writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Adds writes taken from another overlay (for example one command's writes, once the
    /// command has succeeded).
    pub fn merge(&mut self, writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        self.writes.extend(writes);
    }
}

impl<R: KvRead + ?Sized> KvRead for Overlay<'_, R> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<KvPairs, KvError> {
        // Merge base and overlay. Deleted keys can hide base entries, so read the base in pages
        // until `limit` live entries are found.
        let mut out = Vec::new();
        let mut cursor = from.to_vec();
        loop {
            let want = limit - out.len();
            let page = self.base.scan(&cursor, to, want.saturating_add(1))?;
            let base_done = page.len() <= want;
            let page_end: Vec<u8> = if base_done { to.to_vec() } else { page[want].0.clone() };
            let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = page.into_iter().take(want).collect();
            for (k, v) in self
                .writes
                .range::<[u8], _>((Bound::Included(&cursor[..]), Bound::Excluded(&page_end[..])))
            {
                match v {
                    Some(v) => merged.insert(k.clone(), v.clone()),
                    None => merged.remove(k),
                };
            }
            for (k, v) in merged {
                if out.len() == limit {
                    return Ok(out);
                }
                out.push((k, v));
            }
            if base_done || out.len() == limit {
                return Ok(out);
            }
            cursor = page_end;
        }
    }
}

impl<R: KvRead + ?Sized> KvWrite for Overlay<'_, R> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

/// An in-memory ordered store, for tests and as the reference model of the RocksDB one.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct MemKv {
    /// The pairs, in key order.
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemKv {
    /// Applies writes produced by an [`Overlay`].
    pub fn commit(&mut self, writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        for (k, v) in writes {
            match v {
                Some(v) => self.map.insert(k, v),
                None => self.map.remove(&k),
            };
        }
    }
}

impl KvRead for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map.get(key).cloned())
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<KvPairs, KvError> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .map
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_scan_merges_puts_and_deletes() {
        let mut base = MemKv::default();
        for k in [b"a", b"b", b"c", b"d", b"e"] {
            base.map.insert(k.to_vec(), b"base".to_vec());
        }
        let mut o = Overlay::new(&base);
        o.delete(b"a".to_vec());
        o.delete(b"b".to_vec());
        o.put(b"bb".to_vec(), b"new".to_vec());
        let got: Vec<Vec<u8>> = o.scan(b"a", b"z", 3).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(got, vec![b"bb".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(o.get(b"a").unwrap(), None);
        assert_eq!(o.get(b"c").unwrap(), Some(b"base".to_vec()));
    }
}
