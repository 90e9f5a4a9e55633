//! Reads of the metadata: point lookups and ordered listings, as pure functions over
//! [`KvRead`]. Listings are range scans of the ordered key space, never full scans.

use cairn_types::ChunkId;
use serde::de::DeserializeOwned;

use crate::codec::decode;
use crate::keys::{self, prefix_end};
use crate::kv::KvRead;
use crate::records::{
    BucketRecord, ChunkRecord, CompletedUpload, GcInfo, GcMark, KeyRecord, ManifestPage, ObjectRecord, PagedManifest,
    PartExtent, PartRecord, UploadRecord,
};
use crate::MetaError;

type Result<T> = std::result::Result<T, MetaError>;

fn get<T: DeserializeOwned>(kv: &(impl KvRead + ?Sized), key: &[u8]) -> Result<Option<T>> {
    match kv.get(key).map_err(|e| MetaError::Store(e.0))? {
        None => Ok(None),
        Some(v) => decode(&v)
            .map(Some)
            .map_err(|e| MetaError::CorruptRecord(e.to_string())),
    }
}

fn scan<T: DeserializeOwned>(
    kv: &(impl KvRead + ?Sized),
    from: &[u8],
    to: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, T)>> {
    kv.scan(from, to, limit)
        .map_err(|e| MetaError::Store(e.0))?
        .into_iter()
        .map(|(k, v)| Ok((k, decode(&v).map_err(|e| MetaError::CorruptRecord(e.to_string()))?)))
        .collect()
}

/// A bucket.
pub fn bucket(kv: &(impl KvRead + ?Sized), name: &str) -> Result<Option<BucketRecord>> {
    get(kv, &keys::bucket_key(name))
}

/// Every bucket, by name.
pub fn buckets(kv: &(impl KvRead + ?Sized)) -> Result<Vec<BucketRecord>> {
    let p = [keys::T_BUCKET];
    Ok(scan(kv, &p, &prefix_end(&p), usize::MAX)?
        .into_iter()
        .map(|(_, b)| b)
        .collect())
}

/// The current version of an object.
pub fn object(kv: &(impl KvRead + ?Sized), bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
    get(kv, &keys::object_key(bucket, key))
}

/// Up to `limit` pages of the stored-apart manifest of `version`, in order, starting with the
/// page that holds byte `offset`. Empty if `offset` is past the end or the version has no
/// stored pages (collected, or never paged).
pub fn manifest_pages(
    kv: &(impl KvRead + ?Sized),
    version: &str,
    offset: u64,
    limit: usize,
) -> Result<Vec<ManifestPage>> {
    let from = keys::manifest_page_key(version, offset.saturating_add(1));
    let to = prefix_end(&keys::manifest_prefix(version));
    Ok(scan(kv, &from, &to, limit)?.into_iter().map(|(_, p)| p).collect())
}

/// Where part `number` of a paged multipart `version` lies, if it has such a part.
pub fn part_extent(kv: &(impl KvRead + ?Sized), version: &str, number: u32) -> Result<Option<PartExtent>> {
    get(kv, &keys::extent_key(version, number))
}

/// A chunk's record.
pub fn chunk(kv: &(impl KvRead + ?Sized), id: &ChunkId) -> Result<Option<ChunkRecord>> {
    get(kv, &keys::chunk_key(id))
}

/// Where a chunk's shards are (the default, epoch 0 with none missing, when none is stored).
pub fn placement(kv: &(impl KvRead + ?Sized), id: &ChunkId) -> Result<crate::ChunkPlacement> {
    Ok(get(kv, &keys::placement_key(id))?.unwrap_or_default())
}

/// Up to `limit` chunks of the repair queue (chunks with shards missing) after `after` (from
/// the first when `None`), in chunk id order.
pub fn repair_queue(kv: &(impl KvRead + ?Sized), after: Option<&ChunkId>, limit: usize) -> Result<Vec<ChunkId>> {
    let p = [keys::T_REPAIR];
    Ok(id_page::<()>(kv, &p, after, limit)?
        .into_iter()
        .map(|(id, ())| id)
        .collect())
}

/// The cluster map of `epoch`, or the current one (`None`); `None` if there is no such epoch
/// (no storage node has reported itself yet, for the current one).
pub fn cluster_map(kv: &(impl KvRead + ?Sized), epoch: Option<u64>) -> Result<Option<crate::ClusterMapRecord>> {
    let epoch = match epoch {
        Some(e) => e,
        None => match get::<u64>(kv, &keys::map_epoch_key())? {
            Some(e) => e,
            None => return Ok(None),
        },
    };
    get(kv, &keys::map_key(epoch))
}

/// A chunk's collection mark, if it has one.
pub fn gc_mark(kv: &(impl KvRead + ?Sized), id: &ChunkId) -> Result<Option<GcMark>> {
    get(kv, &keys::gc_key(id))
}

/// The progress of space reclamation.
pub fn gc_info(kv: &(impl KvRead + ?Sized)) -> Result<GcInfo> {
    Ok(get(kv, &keys::gc_info_key())?.unwrap_or_default())
}

/// Up to `limit` collection marks of chunks after `after` (from the first when `None`), in
/// chunk id order.
pub fn gc_marks(kv: &(impl KvRead + ?Sized), after: Option<&ChunkId>, limit: usize) -> Result<Vec<(ChunkId, GcMark)>> {
    let p = [keys::T_GC];
    id_page(kv, &p, after, limit)
}

/// Up to `limit` chunk records after `after` (from the first when `None`), in chunk id order.
pub fn chunks(
    kv: &(impl KvRead + ?Sized),
    after: Option<&ChunkId>,
    limit: usize,
) -> Result<Vec<(ChunkId, ChunkRecord)>> {
    let p = [keys::T_CHUNK];
    id_page(kv, &p, after, limit)
}

/// A page of a table keyed by one byte and a chunk id.
fn id_page<T: DeserializeOwned>(
    kv: &(impl KvRead + ?Sized),
    table: &[u8; 1],
    after: Option<&ChunkId>,
    limit: usize,
) -> Result<Vec<(ChunkId, T)>> {
    let from = match after {
        Some(id) => {
            let mut k = table.to_vec();
            k.extend_from_slice(id.as_bytes());
            k.push(0);
            k
        }
        None => table.to_vec(),
    };
    scan(kv, &from, &prefix_end(table), limit)?
        .into_iter()
        .map(|(k, v)| {
            let id: [u8; 32] = k[1..]
                .try_into()
                .map_err(|_| MetaError::CorruptRecord("malformed chunk-keyed key".into()))?;
            Ok((ChunkId(id), v))
        })
        .collect()
}

/// Up to `limit` retired manifests after version `after`: (version id, shape).
pub fn retired(kv: &(impl KvRead + ?Sized), after: &str, limit: usize) -> Result<Vec<(String, PagedManifest)>> {
    let p = [keys::T_RETIRED];
    let mut from = keys::retired_key(after);
    from.push(0);
    string_page(kv, &p, &from, limit)
}

/// Up to `limit` completion records of multipart uploads after upload id `after`.
pub fn completed_uploads(
    kv: &(impl KvRead + ?Sized),
    after: &str,
    limit: usize,
) -> Result<Vec<(String, CompletedUpload)>> {
    let p = [keys::T_COMPLETED];
    let mut from = keys::completed_key(after);
    from.push(0);
    string_page(kv, &p, &from, limit)
}

fn string_page<T: DeserializeOwned>(
    kv: &(impl KvRead + ?Sized),
    table: &[u8; 1],
    from: &[u8],
    limit: usize,
) -> Result<Vec<(String, T)>> {
    scan(kv, from, &prefix_end(table), limit)?
        .into_iter()
        .map(|(k, v)| {
            let name =
                String::from_utf8(k[1..].to_vec()).map_err(|_| MetaError::CorruptRecord("malformed key".into()))?;
            Ok((name, v))
        })
        .collect()
}

/// An access key.
pub fn access_key(kv: &(impl KvRead + ?Sized), access_key: &str) -> Result<Option<KeyRecord>> {
    get(kv, &keys::access_key_key(access_key))
}

/// Every access key.
pub fn access_keys(kv: &(impl KvRead + ?Sized)) -> Result<Vec<KeyRecord>> {
    let p = [keys::T_KEY];
    Ok(scan(kv, &p, &prefix_end(&p), usize::MAX)?
        .into_iter()
        .map(|(_, k)| k)
        .collect())
}

/// The access version: how many times an access key or a bucket record was created or
/// deleted (0 before the first). Unchanged, every key and bucket read since is still current.
pub fn access_version(kv: &(impl KvRead + ?Sized)) -> Result<u64> {
    Ok(get(kv, &keys::access_version_key())?.unwrap_or(0))
}

/// Every storage node that reported itself, by id.
pub fn storage_nodes(kv: &(impl KvRead + ?Sized)) -> Result<Vec<crate::StorageNodeRecord>> {
    let p = [keys::T_NODE];
    Ok(scan(kv, &p, &prefix_end(&p), usize::MAX)?
        .into_iter()
        .map(|(_, n)| n)
        .collect())
}

/// A multipart upload.
pub fn upload(kv: &(impl KvRead + ?Sized), bucket: &str, key: &str, upload_id: &str) -> Result<Option<UploadRecord>> {
    get(kv, &keys::upload_key(bucket, key, upload_id))
}

/// Parts of an upload with numbers above `after`, at most `limit`.
pub fn parts(kv: &(impl KvRead + ?Sized), upload_id: &str, after: u32, limit: usize) -> Result<Vec<PartRecord>> {
    let from = keys::part_key(upload_id, after.saturating_add(1));
    let to = prefix_end(&keys::part_prefix(upload_id));
    if after == u32::MAX {
        return Ok(Vec::new());
    }
    Ok(scan(kv, &from, &to, limit)?.into_iter().map(|(_, p)| p).collect())
}

/// Uploads of a bucket whose key starts with `prefix`, after (`key_marker`, `upload_id_marker`),
/// at most `limit`, in (key, upload id) order.
pub fn uploads(
    kv: &(impl KvRead + ?Sized),
    bucket: &str,
    prefix: &str,
    key_marker: &str,
    upload_id_marker: &str,
    limit: usize,
) -> Result<Vec<UploadRecord>> {
    let start = keys::upload_key_prefix(bucket, prefix);
    let end = prefix_end(&start);
    let from = if key_marker.is_empty() {
        start.clone()
    } else if upload_id_marker.is_empty() {
        // After every upload of key_marker: its upload ids follow `esc(key) 0x00` and are ASCII,
        // longer keys continue with `0x00 0xFF` (an escaped NUL) or a byte above 0x00.
        let mut k = keys::upload_exact_prefix(bucket, key_marker);
        k.push(0xFF);
        k
    } else {
        let mut k = keys::upload_key(bucket, key_marker, upload_id_marker);
        k.push(0);
        k
    };
    let from = from.max(start);
    Ok(scan(kv, &from, &end, limit)?.into_iter().map(|(_, u)| u).collect())
}

/// Parameters of an object listing.
#[derive(Clone, Debug, Default)]
pub struct ListParams<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up to the first occurrence of this after the prefix.
    pub delimiter: Option<&'a str>,
    /// Only keys (or common prefixes) after this one.
    pub after: Option<&'a str>,
    /// Most entries (objects plus common prefixes) to return.
    pub max_keys: usize,
}

/// One page of an object listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListPage {
    /// Objects, in key order.
    pub objects: Vec<(String, ObjectRecord)>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub truncated: bool,
    /// The last key or common prefix returned, to continue after.
    pub last: Option<String>,
}

/// Whether `after` names a common prefix of this listing (`prefix`, then text without the
/// delimiter, then the delimiter), so that resuming after it skips everything under it. The
/// prefix itself is never one: `StartAfter` equal to the prefix starts at its first key.
fn is_common_prefix(after: &str, prefix: &str, delimiter: Option<&str>) -> bool {
    let Some(d) = delimiter.filter(|d| !d.is_empty()) else {
        return false;
    };
    let Some(rest) = after.strip_prefix(prefix) else {
        return false;
    };
    rest.find(d).is_some_and(|i| i + d.len() == rest.len())
}

/// Keys read per scan once a listing has rolled keys up: the next entry is usually a seek away,
/// so reading ahead would be wasted.
const ROLLUP_BATCH: usize = 16;

/// Lists objects of `bucket` the way S3 does: keys in UTF-8 byte order, rolled up into common
/// prefixes at the delimiter. Skips over a rolled-up prefix with one seek and decodes only the
/// records it returns, so the cost is proportional to the page, not to the number of keys under
/// the prefixes. `max_keys == 0` returns an empty, untruncated page, as S3 does.
pub fn list_objects(kv: &(impl KvRead + ?Sized), bucket: &str, p: &ListParams<'_>) -> Result<ListPage> {
    let base = keys::object_prefix(bucket);
    let with_prefix = keys::object_key(bucket, p.prefix);
    let end = prefix_end(&with_prefix);
    let mut cursor = with_prefix.clone();
    if let Some(after) = p.after {
        let mut a = keys::object_key(bucket, after);
        if is_common_prefix(after, p.prefix, p.delimiter) {
            a = prefix_end(&a);
        } else {
            a.push(0);
        }
        cursor = cursor.max(a);
    }
    let mut page = ListPage::default();
    if p.max_keys == 0 {
        return Ok(page);
    }
    let decode_key = |k: &[u8]| String::from_utf8_lossy(&k[base.len()..]).into_owned();
    let count = |page: &ListPage| page.objects.len() + page.common_prefixes.len();
    let mut batch_size = 1000;
    'outer: loop {
        let want = (p.max_keys - count(&page) + 1).min(batch_size);
        let batch = kv.scan(&cursor, &end, want).map_err(|e| MetaError::Store(e.0))?;
        if batch.is_empty() {
            break;
        }
        let batch_len = batch.len();
        for (k, v) in batch {
            let name = decode_key(&k);
            if count(&page) == p.max_keys {
                page.truncated = true;
                break 'outer;
            }
            let rolled = p.delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                name[p.prefix.len()..]
                    .find(d)
                    .map(|i| name[..p.prefix.len() + i + d.len()].to_string())
            });
            match rolled {
                Some(cp) => {
                    cursor = prefix_end(&keys::object_key(bucket, &cp));
                    page.last = Some(cp.clone());
                    page.common_prefixes.push(cp);
                    batch_size = ROLLUP_BATCH;
                    continue 'outer;
                }
                None => {
                    let obj: ObjectRecord = decode(&v).map_err(|e| MetaError::CorruptRecord(e.to_string()))?;
                    cursor = k.clone();
                    cursor.push(0);
                    page.last = Some(name.clone());
                    page.objects.push((name, obj));
                }
            }
        }
        if batch_len < want && count(&page) < p.max_keys {
            // Fewer than asked: the range is exhausted.
            break;
        }
    }
    if !page.truncated && count(&page) == p.max_keys {
        page.truncated = !kv.scan(&cursor, &end, 1).map_err(|e| MetaError::Store(e.0))?.is_empty();
    }
    Ok(page)
}
