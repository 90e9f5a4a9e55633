//! Manifests stored apart from their object record: writing, copying and retiring the pages
//! of a version (see [`Body::Paged`]). Pages are read in batches, so a manifest of millions of
//! references is never decoded at once.

use crate::codec::{decode, encode};
use crate::command::MetaError;
use crate::keys::{self, prefix_end};
use crate::kv::{KvRead, KvWrite};
use crate::records::{Body, ManifestPage, ObjectRecord, PagedManifest, MANIFEST_INLINE_MAX, MANIFEST_PAGE_REFS};

use super::{add_refs, corrupt, drop_refs, store, Result};

/// Pages read per scan while walking a manifest.
const WALK_BATCH: usize = 64;

/// Moves the manifest of `object` (about to be stored as a new version) out of the record when
/// it is too large to keep inline: its chunk list into pages, its part extents into their own
/// keys. Fails with `VersionIdInUse` if pages already exist under the version id.
pub(super) fn store_apart(kv: &mut impl KvWrite, object: &mut ObjectRecord) -> Result<()> {
    let chunks = match &object.body {
        Body::Chunks(c) if c.len() > MANIFEST_INLINE_MAX || object.parts.len() > MANIFEST_INLINE_MAX => c,
        _ => return Ok(()),
    };
    let version = object.version_id.as_str();
    require_unused(kv, version)?;
    let mut start = 0u64;
    let mut pages = 0u32;
    for slice in chunks.chunks(MANIFEST_PAGE_REFS) {
        let page = ManifestPage {
            start,
            chunks: slice.to_vec(),
        };
        start = page.end();
        kv.put(keys::manifest_page_key(version, start), encode(&page));
        pages += 1;
    }
    for e in &object.parts {
        kv.put(keys::extent_key(version, e.number), encode(e));
    }
    object.body = Body::Paged(PagedManifest {
        chunks: chunks.len() as u64,
        pages,
        parts: object.parts.len() as u32,
    });
    object.parts = Vec::new();
    Ok(())
}

/// Drops the references of a paged version's chunks and retires its pages: they stay until
/// the collector removes them, so that reads already streaming the version can finish.
pub(super) fn retire(kv: &mut impl KvWrite, version: &str, manifest: &PagedManifest) -> Result<()> {
    let mut cursor = keys::manifest_prefix(version);
    loop {
        let batch = page_batch(kv, version, &cursor)?;
        for (_, page) in &batch {
            drop_refs(kv, &page.chunks)?;
        }
        if !advance(&mut cursor, &batch) {
            break;
        }
    }
    kv.put(keys::retired_key(version), encode(manifest));
    Ok(())
}

/// Copies the pages and part extents of version `from` to the new version `to`, adding a
/// reference to every chunk. Fails with `ChunksGone` if a chunk is no longer stored and with
/// `VersionIdInUse` if `to` has pages already.
pub(super) fn copy(kv: &mut impl KvWrite, from: &str, to: &str) -> Result<()> {
    require_unused(kv, to)?;
    let mut cursor = keys::manifest_prefix(from);
    loop {
        let batch = page_batch(kv, from, &cursor)?;
        for (_, page) in &batch {
            add_refs(kv, &page.chunks, None)?;
            kv.put(keys::manifest_page_key(to, page.end()), encode(page));
        }
        if !advance(&mut cursor, &batch) {
            break;
        }
    }
    let prefix = keys::extent_prefix(from);
    for (k, v) in kv.scan(&prefix, &prefix_end(&prefix), usize::MAX).map_err(store)? {
        let number: [u8; 4] = k[prefix.len()..]
            .try_into()
            .map_err(|_| corrupt("malformed extent key"))?;
        kv.put(keys::extent_key(to, u32::from_be_bytes(number)), v);
    }
    Ok(())
}

fn require_unused(kv: &impl KvRead, version: &str) -> Result<()> {
    let prefix = keys::manifest_prefix(version);
    if kv.scan(&prefix, &prefix_end(&prefix), 1).map_err(store)?.is_empty() {
        Ok(())
    } else {
        Err(MetaError::VersionIdInUse)
    }
}

/// Up to [`WALK_BATCH`] pages of `version` from key `cursor` on.
fn page_batch(kv: &impl KvRead, version: &str, cursor: &[u8]) -> Result<Vec<(Vec<u8>, ManifestPage)>> {
    let end = prefix_end(&keys::manifest_prefix(version));
    kv.scan(cursor, &end, WALK_BATCH)
        .map_err(store)?
        .into_iter()
        .map(|(k, v)| Ok((k, decode(&v).map_err(corrupt)?)))
        .collect()
}

/// Moves `cursor` past `batch`; false when the batch was the last.
fn advance(cursor: &mut Vec<u8>, batch: &[(Vec<u8>, ManifestPage)]) -> bool {
    match batch.last() {
        Some((k, _)) if batch.len() == WALK_BATCH => {
            *cursor = k.clone();
            cursor.push(0);
            true
        }
        _ => false,
    }
}
