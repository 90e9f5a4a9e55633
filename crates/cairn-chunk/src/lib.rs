//! CPU-only chunk processing: content-defined chunking, chunk ids and erasure coding.
//!
//! Owns: the FastCDC chunker and its frozen parameters ([`ChunkerParams`]), BLAKE3 chunk ids
//! ([`chunk_id`]), and Reed-Solomon encode/decode of a chunk into shards ([`Codec`]).
//!
//! Invariants: chunk boundaries depend only on the bytes and the parameters (so the same content
//! always yields the same chunk ids, which deduplication relies on); any `data` of the
//! `data + parity` shards rebuild the chunk bit-exact.
//!
//! Must not depend on: where shards live, async runtimes, metadata. Callers do the I/O.

mod alloc;
mod chunker;
mod codec;

pub use alloc::tune_allocator;
pub use chunker::{Chunker, ChunkerParams};
pub use codec::{Codec, CodecError};

use cairn_types::ChunkId;

/// The content address of `data`: its BLAKE3 hash.
pub fn chunk_id(data: &[u8]) -> ChunkId {
    ChunkId(*blake3::hash(data).as_bytes())
}
