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

use std::sync::atomic::AtomicU64;

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
    /// Disk bytes given back (the removed segments' size less what was rewritten).
    pub bytes_reclaimed: u64,
    /// Bytes of live records (headers included) rewritten into the active segment.
    pub bytes_rewritten: u64,
}

/// How a compaction pass chooses and paces its work.
#[derive(Clone, Copy, Debug)]
pub struct CompactOptions {
    /// A segment is rewritten once at least this fraction of its bytes is dead, in `(0, 1]`.
    pub min_dead_ratio: f64,
    /// Most bytes per second the pass rewrites; 0 for no limit.
    pub max_bytes_per_sec: u64,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            min_dead_ratio: 0.5,
            max_bytes_per_sec: 0,
        }
    }
}

/// Counters of a compaction pass, updated as it goes, so that a caller can show its progress
/// while it runs.
#[derive(Debug, Default)]
pub struct CompactProgress {
    /// Segments the pass will rewrite.
    pub segments_total: AtomicU64,
    /// Segments rewritten and removed so far.
    pub segments_done: AtomicU64,
    /// Bytes of live records rewritten so far.
    pub bytes_rewritten: AtomicU64,
    /// Disk bytes given back so far.
    pub bytes_reclaimed: AtomicU64,
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

    /// The shard's length if it exists (index lookup only, no read).
    fn shard_len(&self, key: ShardKey) -> Option<u32>;

    /// Whether the shard exists (index lookup only, no read).
    fn contains(&self, key: ShardKey) -> bool {
        self.shard_len(key).is_some()
    }

    /// Every shard the store holds, with its length, in key order (a snapshot of the index;
    /// no data is read).
    fn shards(&self) -> Vec<(ShardKey, u32)>;

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

    /// Rewrites the live records of segments at least `opts.min_dead_ratio` dead into the
    /// active segment and removes them, at most `opts.max_bytes_per_sec`. Writes to the store
    /// go on meanwhile, each delayed by at most one step of the rewrite; a crash at any point
    /// loses nothing (records are rewritten durably before their old segment goes).
    async fn compact(
        &self,
        opts: &CompactOptions,
        progress: &CompactProgress,
    ) -> Result<CompactionReport, ShardStoreError>;
}
