use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::{CompactOptions, CompactProgress, CompactionReport, ShardKey, ShardStore, ShardStoreError, StoreStats};

/// An in-memory [`ShardStore`] for tests. It keeps the same contract as [`crate::SegmentStore`]
/// except durability: its content is gone when it is dropped.
#[derive(Default)]
pub struct MemStore {
    shards: Mutex<HashMap<ShardKey, Bytes>>,
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

    fn shard_len(&self, key: ShardKey) -> Option<u32> {
        self.shards.lock().get(&key).map(|b| b.len() as u32)
    }

    fn stats(&self) -> StoreStats {
        let s = self.shards.lock();
        let live: u64 = s.values().map(|b| b.len() as u64).sum();
        StoreStats {
            shards: s.len() as u64,
            live_bytes: live,
            disk_bytes: live,
        }
    }

    fn shards(&self) -> Vec<(ShardKey, u32)> {
        let mut v: Vec<(ShardKey, u32)> = self.shards.lock().iter().map(|(k, b)| (*k, b.len() as u32)).collect();
        v.sort_unstable();
        v
    }

    async fn compact(&self, _: &CompactOptions, _: &CompactProgress) -> Result<CompactionReport, ShardStoreError> {
        Ok(CompactionReport::default())
    }
}
