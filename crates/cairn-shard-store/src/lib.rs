//! One disk's shards, in Cairn's own on-disk format.
//!
//! Owns: the [`ShardStore`] trait (put, checked get, delete, stats, compaction) and two
//! implementations that pass the same conformance suite: [`SegmentStore`], the real one
//! (append-only segment files, group-commit fsync, recovery that skips damaged records and cuts
//! only a torn tail, per-segment index files, compaction), and [`MemStore`], an in-memory one
//! for tests.
//!
//! Invariants:
//! - `put` returns only after the shard is durable (fdatasync), and many concurrent puts share
//!   one fsync (group commit); after a failed write or fdatasync the store acknowledges no
//!   further write (it is out of service until reopened);
//! - `get` returns only bytes whose CRC32 matched what was written, or an error;
//! - a crash at any moment loses no acknowledged shard; a torn tail is cut off on recovery;
//! - a damaged record costs only that record: recovery resynchronises on the next valid one,
//!   counts the damage (`cairn_shard_corrupt_records_total`) and reports the shard
//!   ([`ShardStore::damaged`]) so that it can be rebuilt from parity;
//! - object keys never reach this layer: files are named by segment number only.
//!
//! Must not depend on: Raft, placement, S3. It knows shards by (chunk id, shard index) only.

mod format;
mod index_file;
mod mem;
mod recover;
mod segment;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod recovery_tests;

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
    /// A write or fdatasync failed earlier; the disk accepts no more writes until it is
    /// reopened (after an operator has checked it). Write the shard elsewhere.
    #[error("disk out of service for writes: {0}")]
    OutOfService(String),
    /// The store was closed.
    #[error("shard store is closed")]
    Closed,
}

impl ShardStoreError {
    /// The same error again, for answering every request of a failed batch (an `io::Error` is
    /// not `Clone`; its kind and message are kept).
    pub fn clone_kind(&self) -> Self {
        match self {
            Self::Io(e) => Self::Io(std::io::Error::new(e.kind(), e.to_string())),
            Self::Corrupt { chunk, index, reason } => Self::Corrupt {
                chunk: *chunk,
                index: *index,
                reason,
            },
            Self::TooLarge(n) => Self::TooLarge(*n),
            Self::OutOfService(s) => Self::OutOfService(s.clone()),
            Self::Closed => Self::Closed,
        }
    }
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

    /// Shards known to be damaged (found by recovery or by a read), in key order, until they
    /// are rewritten or deleted. Each should be rebuilt from parity and put again.
    fn damaged(&self) -> Vec<ShardKey> {
        Vec::new()
    }

    /// Whether the store still accepts writes (false after a failed write or fdatasync).
    fn is_writable(&self) -> bool {
        true
    }

    /// Rewrites segments that are mostly dead and removes them.
    async fn compact(&self) -> Result<CompactionReport, ShardStoreError>;
}
