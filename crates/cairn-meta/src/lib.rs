//! The replicated metadata model of Cairn.
//!
//! Owns: the records kept in the metadata (buckets, object versions and their manifests, chunk
//! records with reference counts, multipart uploads and parts, access keys), the [`Command`]s
//! that change them, a pure [`apply`] that executes a command over a small transactional
//! key-value interface ([`KvRead`]/[`KvWrite`]), the read [`query`] functions, the versioned
//! binary encoding of every stored value.
//!
//! Invariants:
//! - `apply` is deterministic: the same command over the same state writes the same bytes and
//!   gives the same response, so every replica (and every replay after a crash) agrees;
//! - a chunk's reference count changes only in the command that adds or drops a reference to
//!   it, atomically with the manifest that holds the reference;
//! - every stored value starts with a format version byte.
//!
//! Must not depend on: RocksDB, tonic, HTTP. The storage of this model is `cairn-meta-store`.

mod apply;
mod codec;
mod command;
mod keys;
mod kv;
pub mod query;
mod records;

pub use apply::apply;
pub use codec::{decode, encode, DecodeError};
pub use command::{Command, InvalidCommand, MetaError, Response};
pub use keys::{bucket_key, chunk_key, object_key, object_prefix, TABLE_STATE_END};
pub use kv::{KvError, KvPairs, KvRead, KvWrite, MemKv, Overlay};
pub use records::*;
