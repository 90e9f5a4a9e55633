//! RocksDB storage of the metadata Raft group: the log ([`LogStore`]), the state machine
//! ([`StateMachine`]) and snapshots, all in one RocksDB instance with one column family each.
//!
//! Owns: the on-disk layout of the metadata and the openraft storage traits over it. Passes
//! openraft's storage test suite (see `tests`).
//!
//! Invariants:
//! - a log append returns only after the WAL is fsynced; the state machine's writes share the
//!   same WAL, so a crash rolls the state machine back to a prefix of the log, which openraft
//!   replays;
//! - each batch of applied entries is one atomic RocksDB write, together with the last-applied
//!   log id;
//! - a snapshot is a file built from a RocksDB snapshot and installed as an ingested SST file:
//!   no step holds the state in memory; the applied id moves to the snapshot's only after the
//!   state is in, in a synced write, and an install cut by a crash is finished on the next open;
//! - no RocksDB call runs on an async worker thread: every one goes through
//!   `spawn_blocking`.
//!
//! Must not depend on: gRPC, HTTP, S3.

mod db;
mod log_store;
mod raft;
pub mod snapshot;
mod state_machine;

#[cfg(test)]
mod tests;

pub use db::{open, MetaDb, StateReader, SNAPSHOT_DIR};
pub use log_store::LogStore;
pub use raft::{NodeId, TypeConfig};
pub use snapshot::{IncomingSnapshot, SnapshotFile};
pub use state_machine::StateMachine;

/// Runs a blocking RocksDB operation off the async worker threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(std::io::Error::other)?
}

pub(crate) fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
