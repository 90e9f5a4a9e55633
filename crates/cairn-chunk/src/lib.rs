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

use cairn_types::{ChunkId, ErasureScheme};

/// The content address of `data`: its BLAKE3 hash.
pub fn chunk_id(data: &[u8]) -> ChunkId {
    ChunkId(*blake3::hash(data).as_bytes())
}

/// The content address of `data` written with `scheme` in storage pool `pool` (`None`: the
/// default pool) where the store's own scheme is another or the pool is not the default one:
/// BLAKE3 in key-derivation mode with the scheme and the pool in its context, so that chunks of
/// different schemes or pools never share an id (nor shard keys), and deduplication stays
/// within one scheme and pool.
pub fn scheme_chunk_id(data: &[u8], scheme: ErasureScheme, pool: Option<&str>) -> ChunkId {
    let mut context = format!(
        "cairn 2026-12 chunk id, erasure scheme {}+{}",
        scheme.data, scheme.parity
    );
    if let Some(pool) = pool {
        context.push_str(", pool ");
        context.push_str(pool);
    }
    let mut h = blake3::Hasher::new_derive_key(&context);
    h.update(data);
    ChunkId(*h.finalize().as_bytes())
}

/// Whether `id` is the content address of `data` stored with `scheme` in `pool`: its plain
/// BLAKE3 hash ([`chunk_id`]) or the one keyed by `scheme` and `pool` ([`scheme_chunk_id`]).
/// Either way the bytes are those that were written: finding other bytes with one of two
/// BLAKE3 hashes is as hard as with one. `keyed_first`: try the keyed form first (the scheme is
/// not the store's own, or the pool not the default, so the id most likely is keyed), hashing
/// once instead of twice.
pub fn is_chunk_id(
    data: &[u8],
    (scheme, pool): (ErasureScheme, Option<&str>),
    id: &ChunkId,
    keyed_first: bool,
) -> bool {
    let keyed = || scheme_chunk_id(data, scheme, pool) == *id;
    let plain = || chunk_id(data) == *id;
    let order: [&dyn Fn() -> bool; 2] = if keyed_first {
        [&keyed, &plain]
    } else {
        [&plain, &keyed]
    };
    order.iter().any(|matches| matches())
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn scheme_ids_differ_by_scheme_and_pool_and_verify() {
        let data = b"some chunk";
        let (a, b) = (ErasureScheme::new(1, 1).unwrap(), ErasureScheme::new(4, 2).unwrap());
        let (ia, ib) = (scheme_chunk_id(data, a, None), scheme_chunk_id(data, b, None));
        assert_ne!(ia, ib);
        assert_ne!(ia, chunk_id(data));
        let pooled = scheme_chunk_id(data, b, Some("ssd"));
        assert!(![ia, ib, chunk_id(data), scheme_chunk_id(data, b, Some("hdd"))].contains(&pooled));
        for first in [false, true] {
            assert!(is_chunk_id(data, (a, None), &ia, first));
            assert!(is_chunk_id(data, (a, None), &chunk_id(data), first));
            assert!(is_chunk_id(data, (b, Some("ssd")), &pooled, first));
            assert!(
                !is_chunk_id(data, (b, None), &ia, first),
                "an id keyed by another scheme is refused"
            );
            assert!(
                !is_chunk_id(data, (b, Some("hdd")), &pooled, first),
                "an id keyed by another pool is refused"
            );
            assert!(!is_chunk_id(b"other chunk", (a, None), &ia, first));
        }
    }
}
