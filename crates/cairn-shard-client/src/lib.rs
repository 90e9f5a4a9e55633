//! The shard API of a storage node over gRPC (`proto/shard.proto`): [`GrpcShardStore`], a
//! [`ShardStore`](cairn_shard_store::ShardStore) for one disk of a remote node, and
//! [`ShardService`], the server side, which answers for a node's disks with any other
//! `ShardStore` (on a storage node: its `SegmentStore`s). The data path holds a
//! `Vec<Arc<dyn ShardStore>>` and cannot tell a local disk from a remote one; both pass the
//! shard store's conformance suite (`tests/conformance.rs`).
//!
//! Guarantees:
//! - a shard crosses the wire with the CRC32 of its bytes and is checked by the receiver
//!   before it is stored (put) or returned (get): bytes damaged in transfer are refused as
//!   `Corrupt`, never stored or served;
//! - errors keep their kind ([`ShardStoreError`](cairn_shard_store::ShardStoreError)); a node
//!   that cannot be reached or does not answer within the deadline is `Unavailable`, a call
//!   the node refuses as such (wrong cluster secret, unknown disk, malformed) is `Refused`;
//! - the server reads no message of a call without the cluster secret, bounds a shard's size
//!   ([`MAX_SHARD_BYTES`]) and the bytes all puts in flight may hold ([`PUT_BUDGET_BYTES`]).
//!
//! Must not depend on: Raft, placement, S3.

mod client;
mod server;
mod wire;

pub use client::{connect, GrpcShardStore, RemoteNode};
pub use server::{SecuredShards, ShardService, MAX_SHARD_BYTES, PUT_BUDGET_BYTES};

/// Bytes of shard data per gRPC message: below tonic's 4 MiB message limit with room to
/// spare, large enough that the per-message cost is negligible.
pub const PIECE_BYTES: usize = 1 << 20;

/// HTTP/2 flow-control window per stream, both ends: a whole 4 MiB shard in flight without
/// waiting for window updates (the default is 64 KiB).
pub const STREAM_WINDOW_BYTES: u32 = 4 << 20;

/// HTTP/2 flow-control window per connection, both ends: room for several shards at once.
pub const CONNECTION_WINDOW_BYTES: u32 = 32 << 20;
