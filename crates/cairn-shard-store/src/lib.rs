//! One disk's shards, in Cairn's own on-disk format.
//!
//! Owns: the [`ShardStore`] trait (put, checked get, delete, stats, compaction) and two
//! implementations that pass the same conformance suite: [`SegmentStore`], the real one
//! (append-only segment files, group-commit fsync, torn-tail recovery, compaction), and
//! [`MemStore`], an in-memory one for tests.
//!
//! Invariants:
//! - `put` returns only after the shard is durable (fdatasync), and many concurrent puts share
//!   one fsync (group commit);
//! - `get` returns only bytes whose CRC32 matched what was written, or an error;
//! - a crash at any moment loses no acknowledged shard; a torn tail is cut off on recovery;
//! - object keys never reach this layer: files are named by segment number only.
//!
//! Must not depend on: Raft, placement, S3. It knows shards by (chunk id, shard index) only.

mod format;
mod mem;
mod segment;

#[cfg(test)]
mod conformance;

use bytes::Bytes;
use cairn_types::ChunkId;

pub use mem::MemStore;
pub use segment::{SegmentStore, SegmentStoreOptions};

/// Names one shard: the chunk it belongs to and its position in the stripe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardKey {
    /// The chunk.
    pub chunk: ChunkId,
    /// Position of the shard in the chunk's stripe (data shards first).
    pub index: u8,
}

/// Space accounting of one store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Number of live shards.
    pub shards: u64,
    /// Payload bytes of live shards.
    pub live_bytes: u64,
    /// Bytes the store occupies on disk, dead records and headers included.
    pub disk_bytes: u64,
}

/// What a compaction pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Segment files rewritten and removed.
    pub segments_removed: u64,
    /// Disk bytes given back.
    pub bytes_reclaimed: u64,
}

/// Errors of a shard store.
#[derive(Debug, thiserror::Error)]
pub enum ShardStoreError {
    /// The disk failed; the operation may be retried elsewhere.
    #[error("shard store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The stored bytes did not match their checksum; the shard must be rebuilt.
    #[error("shard {chunk}/{index} is corrupt: {reason}")]
    Corrupt {
        /// The chunk.
        chunk: ChunkId,
        /// The shard index.
        index: u8,
        /// What did not match.
        reason: &'static str,
    },
    /// The shard is larger than the format allows (4 GiB).
    #[error("shard of {0} bytes is too large")]
    TooLarge(usize),
    /// The store was closed.
    #[error("shard store is closed")]
    Closed,
}

/// A disk's worth of shards.
#[async_trait::async_trait]
pub trait ShardStore: Send + Sync + 'static {
    /// Stores `data` under `key`, replacing any previous shard with that key. Returns once the
    /// shard is durable.
    async fn put(&self, key: ShardKey, data: Bytes) -> Result<(), ShardStoreError>;

    /// The shard's bytes, checked against their CRC32; `Ok(None)` if there is no such shard.
    async fn get(&self, key: ShardKey) -> Result<Option<Bytes>, ShardStoreError>;

    /// Removes the shard durably. Returns whether it existed.
    async fn delete(&self, key: ShardKey) -> Result<bool, ShardStoreError>;

    /// Whether the shard exists (index lookup only, no read).
    fn contains(&self, key: ShardKey) -> bool;

    /// Current space accounting.
    fn stats(&self) -> StoreStats;

    /// Rewrites segments that are mostly dead and removes them.
    async fn compact(&self) -> Result<CompactionReport, ShardStoreError>;
}
