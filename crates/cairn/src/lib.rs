//! Cairn as a library: the data path and the embedding API.
//!
//! Owns: [`Store`], which puts objects (chunk with FastCDC, name chunks by BLAKE3, skip chunks
//! already stored, Reed-Solomon encode the new ones, write their shards to the disks the
//! placement names, then commit the manifest and the reference counts in one Raft command) and
//! gets them (read the manifest, fetch shards, rebuild missing or corrupt ones, verify BLAKE3,
//! stream). The S3 gateway is a thin adapter over this API; Rust applications use it directly.
//!
//! Invariants:
//! - an object becomes visible only through its commit, after its chunks' shards are durable
//!   (all of them, or `k + 1` of each chunk's `k + m` when disks fail: the commit records the
//!   others for repair); a crash before the commit leaves unreferenced shards, never a
//!   partial object;
//! - every byte a read returns was verified against its chunk's BLAKE3 id;
//! - memory per request is bounded by a few chunks, whatever the object size, and all requests
//!   together hold at most the memory budget of body bytes (`StoreConfig::memory_budget`):
//!   beyond it they wait, then fail with `Unavailable`.
//!
//! Must not depend on: HTTP, S3 XML, RocksDB (the metadata is reached through
//! `cairn-meta-node`).

mod api;
mod budget;
pub mod class;
mod error;
mod expiry;
mod fetch;
mod key_cache;
mod layout;
mod lookup;
mod multipart;
mod read;
mod reclaim;
mod repair;
mod scrub;
mod store;
mod workers;
mod write;

pub use api::{
    AccessKey, Bucket, ClusterMap, ListPage, MapNode, Object, Part, PartRange, StorageDisk, StorageNode, UnixMillis,
    Upload,
};
pub use cairn_chunk::ChunkerParams;
pub use cairn_meta::{Checksums, ObjectAttrs};
pub use cairn_meta_client::GroupStatus;
pub use cairn_shard_store::{Capacity, CompactOptions, DiskHealth};
pub use cairn_types::{BucketName, ErasureScheme, ObjectKey};
pub use class::{StorageClass, REDUCED_REDUNDANCY, STANDARD};
pub use error::{Error, Result};
pub use key_cache::{ACCESS_CACHE_BOUND, CHECK_EVERY as ACCESS_CHECK_EVERY};
pub use layout::{Connected, Connector, FixedLayout, Layout, RingLayout, Slot};
pub use reclaim::{ReclaimConfig, ReclaimStatus};
pub use repair::{RepairConfig, RepairStatus};
pub use scrub::{ScrubConfig, ScrubFindings, ScrubStatus};
pub use store::{BucketGuard, ListRequest, PutConditions, Store, StoreConfig, StoreStats};
pub use workers::{PassOutcome, WorkerStatus};
pub use write::Staged;
