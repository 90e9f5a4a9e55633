//! Storage classes: the redundancy an object's chunks are written with, and the storage pool
//! of nodes they are placed in.
//!
//! `STANDARD` is the store's own scheme in the default pool; other classes are configured
//! ([`StoreConfig::storage_classes`](crate::StoreConfig)), by default
//! `REDUCED_REDUNDANCY` as two replicas (RS 1+1, whose parity shard is a copy). A class asks
//! for one shard per failure domain (a node of its pool in the cluster map, a disk of a fixed
//! list): with fewer domains than it has shards, new chunks are written with the strongest
//! scheme the layout can honour ([`honoured`]) and `cairn admin status` says so.
//!
//! A pool is a set of storage nodes (each node names its own, `cairn storage-node --pool`;
//! nodes that name none are in the default pool): a class placed in a pool has its chunks'
//! shards on that pool's nodes only — repairs and degraded writes included — and the other
//! pools' nodes never hold them. A fixed list of disks has no pools.
//!
//! Deduplication never weakens an object's redundancy nor moves it out of its pool: chunks
//! written with a scheme other than the store's own, or in a pool other than the default one,
//! are named by a BLAKE3 hash keyed by their scheme and pool
//! ([`cairn_chunk::scheme_chunk_id`]), so identical content written by two classes is two
//! chunks, each stored as its class asks, and two writers with different schemes never write
//! shards under the same key.

use cairn_types::{ChunkId, ErasureScheme};

/// The storage class of objects written without one.
pub const STANDARD: &str = "STANDARD";

/// The storage class of two replicas, configured by default.
pub const REDUCED_REDUNDANCY: &str = "REDUCED_REDUNDANCY";

/// Longest storage class name.
pub const MAX_CLASS_NAME: usize = 64;

/// What a storage class asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageClass {
    /// The redundancy of its chunks.
    pub scheme: ErasureScheme,
    /// The storage pool whose nodes hold its chunks' shards (`None`, or
    /// [`cairn_meta::DEFAULT_POOL`]: the default pool, whose nodes name no pool). A name
    /// [`cairn_meta::valid_pool_name`] refuses makes every write of the class fail.
    pub pool: Option<String>,
}

impl From<ErasureScheme> for StorageClass {
    /// The class of `scheme` in the default pool.
    fn from(scheme: ErasureScheme) -> Self {
        Self { scheme, pool: None }
    }
}

impl StorageClass {
    /// The pool's name as shown to people (`default` for the default pool).
    pub fn pool_name(&self) -> &str {
        self.pool.as_deref().unwrap_or(cairn_meta::DEFAULT_POOL)
    }
}

/// How the chunks of one scheme in one pool are named: by their plain BLAKE3 hash when they
/// are the store's own scheme in the default pool, else by the hash keyed by both (see the
/// module's documentation). Writers name chunks with it, readers and scrub check them with it.
#[derive(Clone, Debug)]
pub(crate) struct ChunkNaming {
    scheme: ErasureScheme,
    pool: Option<String>,
    keyed: bool,
}

impl ChunkNaming {
    /// The naming of chunks written with `scheme` in `pool` by a store whose own scheme is
    /// `own`.
    pub(crate) fn new(scheme: ErasureScheme, pool: Option<String>, own: ErasureScheme) -> Self {
        Self {
            keyed: scheme != own || pool.is_some(),
            scheme,
            pool,
        }
    }

    /// The pool (`None`: the default one).
    pub(crate) fn pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }

    /// The id of a new chunk of `data`.
    pub(crate) fn id(&self, data: &[u8]) -> ChunkId {
        if self.keyed {
            cairn_chunk::scheme_chunk_id(data, self.scheme, self.pool())
        } else {
            cairn_chunk::chunk_id(data)
        }
    }

    /// Whether `id` names `data` (either form, the likelier first: one BLAKE3 pass when it is
    /// right, see [`cairn_chunk::is_chunk_id`]).
    pub(crate) fn names(&self, data: &[u8], id: &ChunkId) -> bool {
        cairn_chunk::is_chunk_id(data, (self.scheme, self.pool()), id, self.keyed)
    }
}

/// The scheme a class asking for `wanted` is written with when the layout has `domains`
/// failure domains taking shards: `wanted` itself if it fits; replicas (`1+m`) keep as many
/// copies as there are domains; other schemes become the default scheme for that many
/// domains (a third of them parity). With no domain at all, `wanted` (writes then fail).
pub fn honoured(wanted: ErasureScheme, domains: usize) -> ErasureScheme {
    if domains == 0 || wanted.total() <= domains {
        return wanted;
    }
    let fallback = if wanted.data == 1 {
        ErasureScheme::new(1, (domains - 1) as u8)
    } else {
        ErasureScheme::for_disks(domains)
    };
    fallback.unwrap_or(wanted)
}

/// Whether `name` may name a storage class: 1 to [`MAX_CLASS_NAME`] characters of `A-Z`,
/// `0-9` and `_` (as S3's classes are written).
pub fn valid_class_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CLASS_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(k: u8, m: u8) -> ErasureScheme {
        ErasureScheme::new(k, m).unwrap()
    }

    #[test]
    fn a_class_degrades_to_what_the_domains_can_hold() {
        assert_eq!(honoured(s(4, 2), 6), s(4, 2));
        assert_eq!(honoured(s(4, 2), 12), s(4, 2));
        assert_eq!(honoured(s(4, 2), 5), s(4, 1));
        assert_eq!(honoured(s(4, 2), 3), s(2, 1));
        assert_eq!(honoured(s(4, 2), 1), s(1, 0));
        assert_eq!(honoured(s(1, 1), 2), s(1, 1));
        assert_eq!(honoured(s(1, 2), 2), s(1, 1), "replicas stay replicas");
        assert_eq!(honoured(s(1, 1), 1), s(1, 0));
        assert_eq!(honoured(s(4, 2), 0), s(4, 2));
    }

    #[test]
    fn class_names_are_s3_like() {
        assert!(valid_class_name("STANDARD"));
        assert!(valid_class_name("REDUCED_REDUNDANCY"));
        assert!(valid_class_name("GLACIER_IR"));
        assert!(!valid_class_name(""));
        assert!(!valid_class_name("standard"));
        assert!(!valid_class_name("A B"));
        assert!(!valid_class_name(&"A".repeat(65)));
    }
}
