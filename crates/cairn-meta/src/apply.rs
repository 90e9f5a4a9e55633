//! `apply`: executes one [`Command`] over a transactional key-value view.

use std::collections::HashSet;

use cairn_types::{ChunkId, ErasureScheme};
use md5::{Digest, Md5};
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode};
use crate::command::{Command, MetaError, Response};
use crate::keys::{self, prefix_end};
use crate::kv::KvWrite;
use crate::records::{
    Body, ChunkPlacement, ChunkRecord, ChunkRef, CompletedUpload, GcInfo, GcMark, ObjectAttrs, ObjectRecord,
    PartExtent, PartRecord, UploadRecord, WriteFence, WritePlacement,
};

type Result<T> = std::result::Result<T, MetaError>;

/// Executes `cmd` over `kv`. On `Err`, `kv` may hold partial writes: run each command on its own
/// [`crate::Overlay`] and keep its writes only when it succeeds. Never panics on any state.
pub fn apply(kv: &mut impl KvWrite, cmd: &Command) -> Result<Response> {
    cmd.validate().map_err(MetaError::Invalid)?;
    run(kv, cmd, WriteCtx::default())
}

/// What wrappers of a write tell about it: what its writer saw of space reclamation
/// (`Fenced`) and where it put the shards it wrote (`Placed`).
#[derive(Clone, Copy, Default)]
struct WriteCtx<'a> {
    fence: Option<&'a WriteFence>,
    placement: Option<&'a WritePlacement>,
}

/// Executes a validated command in what its wrappers said.
fn run(kv: &mut impl KvWrite, cmd: &Command, ctx: WriteCtx<'_>) -> Result<Response> {
    match cmd {
        Command::CreateBucket { bucket } => {
            let k = keys::bucket_key(&bucket.name);
            if let Some(existing) = read::<crate::BucketRecord>(kv, &k)? {
                return Err(if existing.owner == bucket.owner {
                    MetaError::BucketAlreadyOwnedByYou
                } else {
                    MetaError::BucketAlreadyExists
                });
            }
            kv.put(k, encode(bucket));
            bump_access_version(kv)?;
            Ok(Response::Done)
        }
        Command::DeleteBucket { name } => {
            let k = keys::bucket_key(name);
            if kv.get(&k).map_err(store)?.is_none() {
                return Err(MetaError::NoSuchBucket);
            }
            let objects = keys::object_prefix(name);
            if !kv.scan(&objects, &prefix_end(&objects), 1).map_err(store)?.is_empty() {
                return Err(MetaError::BucketNotEmpty);
            }
            // As on AWS, incomplete multipart uploads do not keep a bucket alive: they are
            // discarded with it and their parts' references dropped.
            let uploads = keys::upload_bucket_prefix(name);
            for (uk, v) in kv.scan(&uploads, &prefix_end(&uploads), usize::MAX).map_err(store)? {
                let upload: UploadRecord = decode(&v).map_err(corrupt)?;
                discard_parts(kv, &upload.upload_id)?;
                kv.delete(uk);
            }
            kv.delete(k);
            bump_access_version(kv)?;
            Ok(Response::Done)
        }
        Command::PutObject {
            bucket,
            key,
            object,
            written,
            scheme,
            if_none_match,
            if_match,
        } => {
            require_bucket(kv, bucket)?;
            let k = keys::object_key(bucket, key);
            let old = read::<ObjectRecord>(kv, &k)?;
            check_conditions(old.as_ref(), *if_none_match, if_match.as_deref())?;
            if let Body::Chunks(chunks) = &object.body {
                add_refs(kv, chunks, Some(Written::new(written, *scheme, ctx)))?;
            }
            if let Some(old) = old {
                drop_version(kv, &old)?;
            }
            let mut object = (**object).clone();
            manifest::store_apart(kv, &mut object)?;
            kv.put(k, encode(&object));
            Ok(Response::Object(Box::new(object)))
        }
        Command::DeleteObjects { bucket, keys: names } => {
            require_bucket(kv, bucket)?;
            let mut existed = Vec::with_capacity(names.len());
            for name in names {
                let k = keys::object_key(bucket, name);
                match read::<ObjectRecord>(kv, &k)? {
                    Some(old) => {
                        drop_version(kv, &old)?;
                        kv.delete(k);
                        existed.push(true);
                    }
                    None => existed.push(false),
                }
            }
            Ok(Response::Deleted(existed))
        }
        Command::CreateUpload { upload } => {
            require_bucket(kv, &upload.bucket)?;
            kv.put(
                keys::upload_key(&upload.bucket, &upload.key, &upload.upload_id),
                encode(upload),
            );
            Ok(Response::Done)
        }
        Command::PutPart {
            bucket,
            key,
            upload_id,
            part,
            written,
            scheme,
        } => {
            require_upload(kv, bucket, key, upload_id)?;
            let pk = keys::part_key(upload_id, part.number);
            add_refs(kv, part_chunks(part)?, Some(Written::new(written, *scheme, ctx)))?;
            if let Some(old) = read::<PartRecord>(kv, &pk)? {
                drop_refs(kv, part_chunks(&old)?)?;
            }
            kv.put(pk, encode(part));
            Ok(Response::Done)
        }
        Command::CompleteUpload {
            bucket,
            key,
            upload_id,
            parts,
            version_id,
            last_modified,
            if_none_match,
            min_part_size,
        } => complete_upload(
            kv,
            bucket,
            key,
            upload_id,
            parts,
            version_id,
            *last_modified,
            *if_none_match,
            *min_part_size,
        ),
        Command::AbortUpload { bucket, key, upload_id } => {
            require_upload(kv, bucket, key, upload_id)?;
            discard_parts(kv, upload_id)?;
            kv.delete(keys::upload_key(bucket, key, upload_id));
            Ok(Response::Done)
        }
        Command::CreateKey { key } => {
            let k = keys::access_key_key(&key.access_key);
            if kv.get(&k).map_err(store)?.is_some() {
                return Err(MetaError::KeyExists);
            }
            kv.put(k, encode(key));
            bump_access_version(kv)?;
            Ok(Response::Done)
        }
        Command::InBucket {
            bucket,
            owner,
            created,
            command,
        } => match read::<crate::BucketRecord>(kv, &keys::bucket_key(bucket))? {
            Some(b) if b.owner == *owner && b.created == *created => run(kv, command, ctx),
            _ => Err(MetaError::NoSuchBucket),
        },
        Command::CopyObject {
            source_bucket,
            source_key,
            source_version,
            bucket,
            key,
            version_id,
            last_modified,
            attrs,
            owner,
        } => copy_object(
            kv,
            (source_bucket, source_key, source_version),
            (bucket, key, version_id),
            *last_modified,
            attrs.as_ref(),
            owner,
        ),
        Command::DeleteKey { access_key } => {
            let k = keys::access_key_key(access_key);
            if kv.get(&k).map_err(store)?.is_none() {
                return Err(MetaError::NoSuchAccessKey);
            }
            kv.delete(k);
            bump_access_version(kv)?;
            Ok(Response::Done)
        }
        Command::Fenced { fence, command } => run(
            kv,
            command,
            WriteCtx {
                fence: Some(fence),
                ..ctx
            },
        ),
        Command::Placed { placement, command } => run(
            kv,
            command,
            WriteCtx {
                placement: Some(placement),
                ..ctx
            },
        ),
        Command::DrainStorageNode { id, drain } => cluster::drain(kv, id, *drain),
        Command::ShardsChanged {
            chunk,
            epoch,
            restored,
            lost,
        } => cluster::shards_changed(kv, chunk, *epoch, *restored, *lost),
        Command::ReportStorageNode { node } => {
            let k = keys::storage_node_key(&node.id);
            let mut node = node.clone();
            if let Some(known) = read::<crate::StorageNodeRecord>(kv, &k)? {
                node.registered = known.registered;
            }
            kv.put(k, encode(&node));
            cluster::reported(kv, &node)?;
            Ok(Response::Done)
        }
        Command::GcBegin => gc::begin(kv),
        Command::GcClaim { pass, ids } => gc::claim(kv, *pass, ids),
        Command::GcRelease { pass, ids } => gc::release(kv, *pass, ids),
        Command::GcDrop { pass, ids } => gc::drop_claimed(kv, *pass, ids),
        Command::GcEnd { pass } => gc::end(kv, *pass),
        Command::GcPurge { through, ids } => gc::purge(kv, *through, ids),
        Command::GcForget { retired, completed } => gc::forget(kv, retired, completed),
    }
}

#[allow(clippy::too_many_arguments)]
fn complete_upload(
    kv: &mut impl KvWrite,
    bucket: &str,
    key: &str,
    upload_id: &str,
    listed: &[(u32, String)],
    version_id: &str,
    last_modified: i64,
    if_none_match: bool,
    min_part_size: u64,
) -> Result<Response> {
    let upload = match require_upload(kv, bucket, key, upload_id) {
        Ok(u) => u,
        Err(MetaError::NoSuchUpload) => return completed_again(kv, bucket, key, upload_id, listed),
        Err(e) => return Err(e),
    };
    if listed.is_empty() {
        return Err(MetaError::InvalidPart(0));
    }
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(MetaError::InvalidPartOrder);
    }
    let stored = all_parts(kv, upload_id)?;
    let mut used = Vec::with_capacity(listed.len());
    for (number, etag) in listed {
        let part = stored
            .iter()
            .find(|p| p.number == *number)
            .filter(|p| p.etag == etag.trim_matches('"'))
            .ok_or(MetaError::InvalidPart(*number))?;
        used.push(part);
    }
    for p in &used[..used.len() - 1] {
        if p.size < min_part_size {
            return Err(MetaError::EntityTooSmall(p.number));
        }
    }
    let k = keys::object_key(bucket, key);
    let old = read::<ObjectRecord>(kv, &k)?;
    check_conditions(old.as_ref(), if_none_match, None)?;

    let mut md5 = Md5::new();
    let mut chunks = Vec::new();
    let mut extents = Vec::with_capacity(used.len());
    let mut offset = 0u64;
    for p in &used {
        md5.update(hex::decode(&p.etag).map_err(|_| MetaError::InvalidPart(p.number))?);
        chunks.extend_from_slice(part_chunks(p)?);
        extents.push(PartExtent {
            number: p.number,
            offset,
            size: p.size,
        });
        offset += p.size;
    }
    let mut object = ObjectRecord {
        version_id: version_id.to_string(),
        size: offset,
        etag: format!("{}-{}", hex::encode(md5.finalize()), used.len()),
        last_modified,
        attrs: upload.attrs.clone(),
        checksums: composite::composite(upload.checksum_algorithm.as_deref(), &used),
        body: Body::Chunks(chunks),
        parts: extents,
        owner: upload.owner.clone(),
        storage_class: upload.storage_class.clone(),
    };
    // The object takes over the references of the parts it uses; the others are dropped.
    let used_numbers: HashSet<u32> = used.iter().map(|p| p.number).collect();
    for p in &stored {
        if !used_numbers.contains(&p.number) {
            drop_refs(kv, part_chunks(p)?)?;
        }
        kv.delete(keys::part_key(upload_id, p.number));
    }
    if let Some(old) = old {
        drop_version(kv, &old)?;
    }
    kv.delete(keys::upload_key(bucket, key, upload_id));
    manifest::store_apart(kv, &mut object)?;
    kv.put(k, encode(&object));
    let done = CompletedUpload {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version_id.into(),
        parts: listed.to_vec(),
        completed: last_modified,
    };
    kv.put(keys::completed_key(upload_id), encode(&done));
    Ok(Response::Object(Box::new(object)))
}

/// A `CompleteMultipartUpload` for an upload that no longer exists: if that very upload was
/// completed with the same parts and its version is still the current one, the answer is that
/// version again (the client retried after losing the first response). Otherwise `NoSuchUpload`.
fn completed_again(
    kv: &impl KvWrite,
    bucket: &str,
    key: &str,
    upload_id: &str,
    listed: &[(u32, String)],
) -> Result<Response> {
    let Some(done) = read::<CompletedUpload>(kv, &keys::completed_key(upload_id))? else {
        return Err(MetaError::NoSuchUpload);
    };
    let same_parts = done.parts.len() == listed.len()
        && done
            .parts
            .iter()
            .zip(listed)
            .all(|(a, b)| a.0 == b.0 && a.1.trim_matches('"') == b.1.trim_matches('"'));
    if done.bucket != bucket || done.key != key || !same_parts {
        return Err(MetaError::NoSuchUpload);
    }
    match read::<ObjectRecord>(kv, &keys::object_key(bucket, key))? {
        Some(current) if current.version_id == done.version_id => Ok(Response::Object(Box::new(current))),
        _ => Err(MetaError::NoSuchUpload),
    }
}

/// Makes a copy of the source version the current version of the destination: see
/// [`Command::CopyObject`].
fn copy_object(
    kv: &mut impl KvWrite,
    (source_bucket, source_key, source_version): (&str, &str, &str),
    (bucket, key, version_id): (&str, &str, &str),
    last_modified: i64,
    attrs: Option<&ObjectAttrs>,
    owner: &str,
) -> Result<Response> {
    require_bucket(kv, bucket)?;
    let source = match read::<ObjectRecord>(kv, &keys::object_key(source_bucket, source_key))? {
        Some(s) if s.version_id == source_version => s,
        _ => return Err(MetaError::SourceChanged),
    };
    let k = keys::object_key(bucket, key);
    let old = read::<ObjectRecord>(kv, &k)?;
    // References are added before the replaced version's are dropped: a copy onto itself
    // must not see its chunks' counts touch zero.
    match &source.body {
        Body::Inline(_) => {}
        Body::Chunks(chunks) => add_refs(kv, chunks, None)?,
        Body::Paged(_) => manifest::copy(kv, &source.version_id, version_id)?,
    }
    if let Some(old) = old {
        drop_version(kv, &old)?;
    }
    let mut object = ObjectRecord {
        version_id: version_id.to_string(),
        last_modified,
        attrs: attrs.cloned().unwrap_or(source.attrs),
        owner: owner.to_string(),
        ..source
    };
    // A record written before manifests were stored apart moves its manifest out now.
    manifest::store_apart(kv, &mut object)?;
    kv.put(k, encode(&object));
    Ok(Response::Object(Box::new(object)))
}

/// Drops the references a replaced or deleted version holds.
fn drop_version(kv: &mut impl KvWrite, old: &ObjectRecord) -> Result<()> {
    match &old.body {
        Body::Inline(_) => Ok(()),
        Body::Chunks(chunks) => drop_refs(kv, chunks),
        Body::Paged(m) => manifest::retire(kv, &old.version_id, m),
    }
}

/// The chunks of a part (parts are never inline or paged; an invalid stored one is corrupt).
fn part_chunks(part: &PartRecord) -> Result<&[ChunkRef]> {
    match &part.body {
        Body::Chunks(c) => Ok(c),
        _ => Err(corrupt(format!("part {} is not a chunk list", part.number))),
    }
}

/// Drops every part of an upload and the references they hold.
fn discard_parts(kv: &mut impl KvWrite, upload_id: &str) -> Result<()> {
    for part in all_parts(kv, upload_id)? {
        drop_refs(kv, part_chunks(&part)?)?;
        kv.delete(keys::part_key(upload_id, part.number));
    }
    Ok(())
}

fn check_conditions(old: Option<&ObjectRecord>, if_none_match: bool, if_match: Option<&str>) -> Result<()> {
    if if_none_match && old.is_some() {
        return Err(MetaError::PreconditionFailed);
    }
    if let Some(want) = if_match {
        match old {
            Some(o) if want == "*" || o.etag == want.trim_matches('"') => {}
            Some(_) => return Err(MetaError::PreconditionFailed),
            None => return Err(MetaError::NoSuchKey),
        }
    }
    Ok(())
}

fn store(e: impl std::fmt::Display) -> MetaError {
    MetaError::Store(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> MetaError {
    MetaError::CorruptRecord(e.to_string())
}

fn read<T: DeserializeOwned>(kv: &impl KvWrite, key: &[u8]) -> Result<Option<T>> {
    match kv.get(key).map_err(store)? {
        None => Ok(None),
        Some(v) => decode(&v).map(Some).map_err(corrupt),
    }
}

fn require_bucket(kv: &impl KvWrite, bucket: &str) -> Result<()> {
    match kv.get(&keys::bucket_key(bucket)).map_err(store)? {
        Some(_) => Ok(()),
        None => Err(MetaError::NoSuchBucket),
    }
}

fn require_upload(kv: &impl KvWrite, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRecord> {
    require_bucket(kv, bucket)?;
    read(kv, &keys::upload_key(bucket, key, upload_id))?.ok_or(MetaError::NoSuchUpload)
}

fn all_parts(kv: &impl KvWrite, upload_id: &str) -> Result<Vec<PartRecord>> {
    let prefix = keys::part_prefix(upload_id);
    kv.scan(&prefix, &prefix_end(&prefix), usize::MAX)
        .map_err(store)?
        .iter()
        .map(|(_, v)| decode(v).map_err(corrupt))
        .collect()
}

/// The chunks a write command's proposer stored, and what it saw before storing them.
pub(super) struct Written<'a> {
    ids: HashSet<&'a ChunkId>,
    scheme: ErasureScheme,
    fence: Option<&'a WriteFence>,
    placement: Option<&'a WritePlacement>,
}

impl<'a> Written<'a> {
    fn new(ids: &'a [ChunkId], scheme: ErasureScheme, ctx: WriteCtx<'a>) -> Self {
        Self {
            ids: ids.iter().collect(),
            scheme,
            fence: ctx.fence,
            placement: ctx.placement,
        }
    }

    /// Where this writer put the shards of `id`, one of the chunks it wrote.
    fn placement_of(&self, id: &ChunkId) -> ChunkPlacement {
        self.placement.map_or_else(ChunkPlacement::default, |p| {
            let (missing, moved) = p
                .exceptions
                .iter()
                .find(|(c, _, _)| c == id)
                .map_or((0, Vec::new()), |(_, m, v)| (*m, v.clone()));
            ChunkPlacement {
                epoch: p.epoch,
                missing,
                moved,
                pool: p.pool.clone(),
            }
        })
    }

    /// Whether the shards this writer stored for `id`, which has no record, are sure to be
    /// intact: no collection pass can have deleted them after they were written.
    fn still_stored(&self, id: &ChunkId, mark: Option<GcMark>, info: &GcInfo) -> bool {
        match mark {
            // Being deleted right now.
            Some(GcMark::Deleting { .. }) => false,
            // Deleted by `pass`: fine only if the writer saw that and wrote afterwards.
            Some(GcMark::Gone { pass }) => self
                .fence
                .is_some_and(|f| f.seen_gone.iter().any(|(c, p)| c == id && *p == pass)),
            // Never claimed, unless a mark of a pass that had not ended when the writer began
            // was purged meanwhile.
            Some(GcMark::Unreferenced) | None => info.purged_through <= self.fence.map_or(0, |f| f.passes_done),
        }
    }
}

/// Adds one reference per occurrence of each chunk. A chunk with a record is revived unless a
/// collection pass is deleting it; a chunk without one may only be referenced if it is among
/// the chunks the proposer wrote (`written`; `None` for a command that writes nothing, such
/// as a copy) and no collection pass can have deleted those shards since. Otherwise the command
/// fails with `ChunksGone`.
fn add_refs(kv: &mut impl KvWrite, chunks: &[ChunkRef], written: Option<Written<'_>>) -> Result<()> {
    let mut gone = Vec::new();
    let mut info = None;
    for c in chunks {
        let k = keys::chunk_key(&c.id);
        let rec = match read::<ChunkRecord>(kv, &k)? {
            Some(mut r) if r.refcount > 0 => {
                r.refcount += 1;
                r
            }
            existing => {
                let gk = keys::gc_key(&c.id);
                let mark = read::<GcMark>(kv, &gk)?;
                let rewritten = written.as_ref().filter(|w| w.ids.contains(&c.id));
                let revived = match (existing, rewritten) {
                    (_, _) if matches!(mark, Some(GcMark::Deleting { .. })) => None,
                    // Revived; if this writer stored it again, its shards are in its scheme,
                    // where it placed them.
                    (Some(r), w) => {
                        if let Some(w) = w {
                            cluster::set_placement(kv, &c.id, w.placement_of(&c.id));
                        }
                        Some(ChunkRecord {
                            refcount: 1,
                            scheme: w.map_or(r.scheme, |w| w.scheme),
                            ..r
                        })
                    }
                    (None, Some(w)) => {
                        let info = match info {
                            Some(i) => i,
                            None => *info.insert(gc::info(kv)?),
                        };
                        let stored = w.still_stored(&c.id, mark, &info);
                        if stored {
                            cluster::set_placement(kv, &c.id, w.placement_of(&c.id));
                        }
                        stored.then_some(ChunkRecord {
                            refcount: 1,
                            len: c.len,
                            scheme: w.scheme,
                        })
                    }
                    (None, None) => None,
                };
                match revived {
                    Some(r) => {
                        if mark.is_some() {
                            kv.delete(gk);
                        }
                        r
                    }
                    None => {
                        gone.push(c.id);
                        continue;
                    }
                }
            }
        };
        kv.put(k, encode(&rec));
    }
    if gone.is_empty() {
        Ok(())
    } else {
        Err(MetaError::ChunksGone(gone))
    }
}

/// Drops one reference per occurrence. A chunk that reaches zero keeps its record (with
/// refcount 0) and is marked `Unreferenced`, for the collector to find.
fn drop_refs(kv: &mut impl KvWrite, chunks: &[ChunkRef]) -> Result<()> {
    for c in chunks {
        let k = keys::chunk_key(&c.id);
        if let Some(mut r) = read::<ChunkRecord>(kv, &k)? {
            if r.refcount == 1 {
                kv.put(keys::gc_key(&c.id), encode(&GcMark::Unreferenced));
            }
            r.refcount = r.refcount.saturating_sub(1);
            kv.put(k, encode(&r));
        }
    }
    Ok(())
}

mod cluster;
#[cfg(test)]
mod cluster_tests;
mod composite;
mod gc;
#[cfg(test)]
mod gc_tests;
mod manifest;
#[cfg(test)]
mod manifest_tests;
#[cfg(test)]
mod tests;

/// Counts a change of an access key or a bucket record: gateways caching them for
/// authentication compare this version instead of reading every key and bucket again.
fn bump_access_version(kv: &mut impl KvWrite) -> Result<()> {
    let k = keys::access_version_key();
    let v: u64 = read(kv, &k)?.unwrap_or(0);
    kv.put(k, encode(&(v + 1)));
    Ok(())
}
