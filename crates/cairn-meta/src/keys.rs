//! Layout of the metadata key space. Each table is a one-byte prefix; keys sort so that an
//! object listing is a range scan in S3's order (UTF-8 byte order of keys).
//!
//! ```text
//! b'B' bucket                                  -> BucketRecord
//! b'O' bucket 0x00 key                         -> ObjectRecord
//! b'C' chunk-id(32)                            -> ChunkRecord
//! b'U' bucket 0x00 esc(key) 0x00 upload-id     -> UploadRecord
//! b'P' upload-id 0x00 part-number(u32 BE)      -> PartRecord
//! b'K' access-key                              -> KeyRecord
//! b'D' upload-id                               -> CompletedUpload (answers a retried Complete)
//! b'M' version-id 0x00 end-offset(u64 BE)      -> ManifestPage (manifests stored apart)
//! b'E' version-id 0x00 part-number(u32 BE)     -> PartExtent (their part layout)
//! b'R' version-id                              -> PagedManifest (replaced or deleted, its pages
//!                                                 kept for reads in flight until collected)
//! b'G' chunk-id(32)                            -> GcMark (chunks being reclaimed)
//! b'Z' "gc"                                    -> GcInfo (collection passes)
//! b'Z' "access"                                -> u64: the access version (key and bucket changes)
//! b'N' node-id                                 -> StorageNodeRecord (storage nodes)
//! b'L' chunk-id(32)                            -> ChunkPlacement (chunks placed by a cluster
//!                                                 map, or with shards missing)
//! b'Q' chunk-id(32)                            -> () (the repair queue: chunks with shards
//!                                                 missing)
//! b'Y' epoch(u64 BE)                           -> ClusterMapRecord (every epoch of the map)
//! b'Z' "map"                                   -> u64: the current epoch of the cluster map
//! ```
//! Version ids are checked by [`crate::Command::validate`] to be short and without 0x00.
//!
//! In `U`, an object key is followed by more key material, so a key holding 0x00 would be
//! ambiguous (key `a\0b` + upload `x` against key `a` + upload `b\0x`) and would sort between
//! the uploads of key `a`. `esc(key)` writes each 0x00 of the key as `0x00 0xFF`: 0xFF never
//! occurs in UTF-8 and upload ids are ASCII, so the 0x00 ending the key is always followed by a
//! byte below 0xFF and the layout stays unambiguous and in (key, upload id) order. Keys without
//! 0x00 (all keys stored before this rule) are written exactly as before.
//! Bucket names never contain 0x00, so `bucket 0x00` is an exact prefix of one bucket's keys.

use cairn_types::ChunkId;

pub(crate) const T_BUCKET: u8 = b'B';
pub(crate) const T_OBJECT: u8 = b'O';
pub(crate) const T_CHUNK: u8 = b'C';
pub(crate) const T_UPLOAD: u8 = b'U';
pub(crate) const T_PART: u8 = b'P';
pub(crate) const T_KEY: u8 = b'K';
pub(crate) const T_COMPLETED: u8 = b'D';
pub(crate) const T_MANIFEST: u8 = b'M';
pub(crate) const T_EXTENT: u8 = b'E';
pub(crate) const T_RETIRED: u8 = b'R';
pub(crate) const T_GC: u8 = b'G';
pub(crate) const T_SINGLE: u8 = b'Z';
pub(crate) const T_NODE: u8 = b'N';
pub(crate) const T_PLACEMENT: u8 = b'L';
pub(crate) const T_REPAIR: u8 = b'Q';
pub(crate) const T_MAP: u8 = b'Y';

/// One past the last byte used as a table prefix: the state lives in `[0, TABLE_STATE_END)`.
pub const TABLE_STATE_END: u8 = 0xFF;

/// Key of a bucket record.
pub fn bucket_key(bucket: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + bucket.len());
    k.push(T_BUCKET);
    k.extend_from_slice(bucket.as_bytes());
    k
}

/// Prefix of every object key of `bucket`.
pub fn object_prefix(bucket: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + bucket.len());
    k.push(T_OBJECT);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k
}

/// Key of an object record.
pub fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = object_prefix(bucket);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Key of a chunk record.
pub fn chunk_key(id: &ChunkId) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(T_CHUNK);
    k.extend_from_slice(id.as_bytes());
    k
}

pub(crate) fn upload_bucket_prefix(bucket: &str) -> Vec<u8> {
    let mut k = vec![T_UPLOAD];
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k
}

/// Appends `esc(text)`: `text` with each 0x00 written as `0x00 0xFF`. Preserves order and
/// prefixes (`esc(p)` is a prefix of `esc(k)` exactly when `p` is a prefix of `k`).
pub(crate) fn push_escaped(k: &mut Vec<u8>, text: &str) {
    for &b in text.as_bytes() {
        k.push(b);
        if b == 0 {
            k.push(0xFF);
        }
    }
}

/// Prefix of the uploads of `bucket` whose key starts with `key_prefix`.
pub(crate) fn upload_key_prefix(bucket: &str, key_prefix: &str) -> Vec<u8> {
    let mut k = upload_bucket_prefix(bucket);
    push_escaped(&mut k, key_prefix);
    k
}

/// Prefix of the uploads of exactly `key`.
pub(crate) fn upload_exact_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = upload_key_prefix(bucket, key);
    k.push(0);
    k
}

pub(crate) fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = upload_exact_prefix(bucket, key);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

pub(crate) fn completed_key(upload_id: &str) -> Vec<u8> {
    let mut k = vec![T_COMPLETED];
    k.extend_from_slice(upload_id.as_bytes());
    k
}

pub(crate) fn part_prefix(upload_id: &str) -> Vec<u8> {
    let mut k = vec![T_PART];
    k.extend_from_slice(upload_id.as_bytes());
    k.push(0);
    k
}

pub(crate) fn part_key(upload_id: &str, part: u32) -> Vec<u8> {
    let mut k = part_prefix(upload_id);
    k.extend_from_slice(&part.to_be_bytes());
    k
}

pub(crate) fn access_key_key(access_key: &str) -> Vec<u8> {
    let mut k = vec![T_KEY];
    k.extend_from_slice(access_key.as_bytes());
    k
}

/// Prefix of every manifest page of `version`.
pub(crate) fn manifest_prefix(version: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + version.len() + 8);
    k.push(T_MANIFEST);
    k.extend_from_slice(version.as_bytes());
    k.push(0);
    k
}

/// Key of the manifest page of `version` that ends just before byte `end`.
pub(crate) fn manifest_page_key(version: &str, end: u64) -> Vec<u8> {
    let mut k = manifest_prefix(version);
    k.extend_from_slice(&end.to_be_bytes());
    k
}

/// Prefix of every part extent of `version`.
pub(crate) fn extent_prefix(version: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + version.len() + 4);
    k.push(T_EXTENT);
    k.extend_from_slice(version.as_bytes());
    k.push(0);
    k
}

/// Key of part `number`'s extent in `version`.
pub(crate) fn extent_key(version: &str, number: u32) -> Vec<u8> {
    let mut k = extent_prefix(version);
    k.extend_from_slice(&number.to_be_bytes());
    k
}

/// Key of a retired manifest.
pub(crate) fn retired_key(version: &str) -> Vec<u8> {
    let mut k = vec![T_RETIRED];
    k.extend_from_slice(version.as_bytes());
    k
}

/// Key of a chunk's collection mark.
pub(crate) fn gc_key(id: &ChunkId) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(T_GC);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key of a chunk's placement record.
pub(crate) fn placement_key(id: &ChunkId) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(T_PLACEMENT);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key of a chunk's entry in the repair queue.
pub(crate) fn repair_key(id: &ChunkId) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(T_REPAIR);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key of the cluster map of `epoch`.
pub(crate) fn map_key(epoch: u64) -> Vec<u8> {
    let mut k = vec![T_MAP];
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// Key of the current epoch of the cluster map.
pub(crate) fn map_epoch_key() -> Vec<u8> {
    vec![T_SINGLE, b'm', b'a', b'p']
}

/// Key of the access version (`query::access_version`).
pub(crate) fn access_version_key() -> Vec<u8> {
    vec![T_SINGLE, b'a', b'c', b'c', b'e', b's', b's']
}

/// Key of the collection progress record.
pub(crate) fn gc_info_key() -> Vec<u8> {
    vec![T_SINGLE, b'g', b'c']
}

/// The smallest key greater than every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![TABLE_STATE_END]
}

/// Key of a storage node's record.
pub(crate) fn storage_node_key(id: &str) -> Vec<u8> {
    let mut k = vec![T_NODE];
    k.extend_from_slice(id.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"ab"), b"ac");
        assert_eq!(prefix_end(&[b'a', 0xFF]), b"b");
        let p = object_prefix("photos");
        let end = prefix_end(&p);
        assert!(object_key("photos", "\u{10FFFF}") < end);
        assert!(object_key("photos0", "a") >= end);
    }
}
