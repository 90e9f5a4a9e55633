use std::collections::BTreeMap;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::{
    CompactOptions, CompactProgress, CompactionReport, DiskHealth, ShardKey, ShardStore, ShardStoreError, StoreStats,
    MAX_LIST,
};

/// An in-memory [`ShardStore`] for tests. It keeps the same contract as [`crate::SegmentStore`]
/// except durability: its content is gone when it is dropped.
#[derive(Default)]
pub struct MemStore {
    shards: Mutex<BTreeMap<ShardKey, Bytes>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl ShardStore for MemStore {
    async fn put(&self, key: ShardKey, data: Bytes) -> Result<(), ShardStoreError> {
        self.shards.lock().insert(key, data);
        Ok(())
    }

    async fn get(&self, key: ShardKey) -> Result<Option<Bytes>, ShardStoreError> {
        Ok(self.shards.lock().get(&key).cloned())
    }

    async fn delete(&self, key: ShardKey) -> Result<bool, ShardStoreError> {
        Ok(self.shards.lock().remove(&key).is_some())
    }

    async fn stat(&self, key: ShardKey) -> Result<Option<u32>, ShardStoreError> {
        Ok(self.shards.lock().get(&key).map(|b| b.len() as u32))
    }

    async fn list(&self, after: Option<ShardKey>, limit: usize) -> Result<Vec<(ShardKey, u32)>, ShardStoreError> {
        let s = self.shards.lock();
        let range = match after {
            Some(a) => s.range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => s.range(..),
        };
        Ok(range
            .take(limit.min(MAX_LIST))
            .map(|(k, b)| (*k, b.len() as u32))
            .collect())
    }

    async fn damaged(&self) -> Result<Vec<ShardKey>, ShardStoreError> {
        Ok(Vec::new())
    }

    async fn health(&self) -> Result<DiskHealth, ShardStoreError> {
        let s = self.shards.lock();
        let live: u64 = s.values().map(|b| b.len() as u64).sum();
        Ok(DiskHealth {
            stats: StoreStats {
                shards: s.len() as u64,
                live_bytes: live,
                disk_bytes: live,
            },
            writable: true,
            damaged: 0,
            capacity: None,
        })
    }

    async fn compact(&self, _: &CompactOptions, _: &CompactProgress) -> Result<CompactionReport, ShardStoreError> {
        Ok(CompactionReport::default())
    }
}
