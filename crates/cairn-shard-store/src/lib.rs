//! One disk's shards, in Cairn's own on-disk format.
//!
//! Owns: the [`ShardStore`] trait (put, checked get, delete, stat, list, health, compaction),
//! the data path's only way to a disk, local or remote, and two in-process implementations
//! that pass its conformance suite (`cairn-shard-client` adds the gRPC one): [`SegmentStore`], the real one
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

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
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

impl ShardKey {
    /// The greatest key below every shard of `chunk` (`None` for the smallest chunk id): a
    /// [`ShardStore::list`] after it starts at the chunk's first shard.
    pub fn before_chunk(chunk: ChunkId) -> Option<Self> {
        // The chunk id less one, read as a big-endian number, with the largest index.
        let mut prev = chunk.0;
        for b in prev.iter_mut().rev() {
            let (v, borrow) = b.overflowing_sub(1);
            *b = v;
            if !borrow {
                return Some(Self {
                    chunk: ChunkId(prev),
                    index: u8::MAX,
                });
            }
        }
        None
    }
}

/// Space accounting of one store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
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
    /// The disk's node could not be reached or did not answer in time; the operation may or
    /// may not have happened (a put or delete: retry it, both are idempotent).
    #[error("storage node unavailable: {0}")]
    Unavailable(String),
    /// The disk's node refused the request as such (wrong cluster secret, malformed request,
    /// unknown disk); retrying does not help.
    #[error("storage node refused the request: {0}")]
    Refused(String),
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
            Self::Unavailable(s) => Self::Unavailable(s.clone()),
            Self::Refused(s) => Self::Refused(s.clone()),
        }
    }
}

/// Free and total bytes of the file system a disk lives on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    /// Bytes of the file system.
    pub total: u64,
    /// Bytes still free for this process.
    pub free: u64,
}

/// The state of one disk as its store sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskHealth {
    /// Space accounting of the shards.
    pub stats: StoreStats,
    /// Whether the disk accepts writes (false after a failed write or fdatasync).
    pub writable: bool,
    /// Shards known to be damaged (see [`ShardStore::damaged`]).
    pub damaged: u64,
    /// The file system's size and free space (`None` where the store keeps no files).
    pub capacity: Option<Capacity>,
}

/// Most shards one [`ShardStore::list`] call returns.
pub const MAX_LIST: usize = 10_000;

/// A disk's worth of shards: the interface the data path reaches every disk through, local or
/// on another node. Implemented in process by [`SegmentStore`] (and [`MemStore`] for tests)
/// and over gRPC by `cairn-shard-client`; every implementation passes [`conformance::suite`].
/// Every method is async because the disk may be a network away; every error keeps its kind
/// ([`ShardStoreError`]) across the wire.
#[async_trait::async_trait]
pub trait ShardStore: Send + Sync + 'static {
    /// Stores `data` under `key`, replacing any previous shard with that key. Returns once the
    /// shard is durable.
    async fn put(&self, key: ShardKey, data: Bytes) -> Result<(), ShardStoreError>;

    /// The shard's bytes, checked against their CRC32; `Ok(None)` if there is no such shard.
    async fn get(&self, key: ShardKey) -> Result<Option<Bytes>, ShardStoreError>;

    /// Removes the shard durably. Returns whether it existed.
    async fn delete(&self, key: ShardKey) -> Result<bool, ShardStoreError>;

    /// The shard's length if it exists (an index lookup: no data is read).
    async fn stat(&self, key: ShardKey) -> Result<Option<u32>, ShardStoreError>;

    /// Up to `limit` (at most [`MAX_LIST`]) shards with keys after `after` (from the first
    /// when `None`), with their lengths, in key order: a page of the index, no data read.
    /// Fewer than `limit` means the end was reached.
    async fn list(&self, after: Option<ShardKey>, limit: usize) -> Result<Vec<(ShardKey, u32)>, ShardStoreError>;

    /// Shards known to be damaged (found by recovery or by a read), in key order, until they
    /// are rewritten or deleted. Each should be rebuilt from parity and put again.
    async fn damaged(&self) -> Result<Vec<ShardKey>, ShardStoreError>;

    /// Space, writability and damage of the disk.
    async fn health(&self) -> Result<DiskHealth, ShardStoreError>;

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
