//! The types of the embedding API: what a `Store` answers and takes. They are Cairn's own, not
//! the records the metadata stores, so that the stored layout (manifests, part extents, chunk
//! references) can change without changing what an application compiles against. An
//! [`Object`] keeps its manifest inside, private, for [`crate::Store::read`].
//!
//! `ObjectAttrs` (the headers stored with an object) and `Checksums` (its S3 additional
//! checksums) are plain values shared with the metadata and re-exported as they are.

use cairn_meta::{
    Body, BucketRecord, Checksums, KeyRecord, ObjectAttrs, ObjectRecord, PartExtent, PartRecord, UploadRecord,
};

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

/// A bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Its name.
    pub name: String,
    /// The access key that owns it.
    pub owner: String,
    /// When it was created.
    pub created: UnixMillis,
}

impl From<BucketRecord> for Bucket {
    fn from(r: BucketRecord) -> Self {
        Self {
            name: r.name,
            owner: r.owner,
            created: r.created,
        }
    }
}

/// A version of an object: what a reader sees of it. Read its bytes with
/// [`crate::Store::read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// Unique id of this version (changes on every overwrite).
    pub version_id: String,
    /// Size in bytes.
    pub size: u64,
    /// The S3 ETag without quotes: hex MD5, or `md5-of-md5s-N` for multipart objects.
    pub etag: String,
    /// Last modification time.
    pub last_modified: UnixMillis,
    /// Headers and user metadata.
    pub attrs: ObjectAttrs,
    /// Additional checksums supplied or requested at upload.
    pub checksums: Checksums,
    /// The access key that wrote this version.
    pub owner: String,
    /// Its storage class (`STANDARD` unless written with another).
    pub storage_class: String,
    /// Where the bytes are (private: the stored layout).
    pub(crate) body: Body,
    /// Part layout of a multipart object when held in the record.
    pub(crate) parts: Vec<PartExtent>,
}

impl Object {
    /// Number of parts of a multipart object (0 for a single upload).
    pub fn part_count(&self) -> u32 {
        match &self.body {
            Body::Paged(m) => m.parts,
            _ => self.parts.len() as u32,
        }
    }

    /// Whether the bytes are kept in the metadata itself (small objects).
    pub fn is_inline(&self) -> bool {
        matches!(self.body, Body::Inline(_))
    }

    /// For an object of many chunks, how many pages its chunk list is stored in, apart from
    /// the object's record (`None`: the list, if any, is in the record).
    pub fn manifest_pages(&self) -> Option<u32> {
        match &self.body {
            Body::Paged(m) => Some(m.pages),
            _ => None,
        }
    }
}

impl From<ObjectRecord> for Object {
    fn from(r: ObjectRecord) -> Self {
        Self {
            version_id: r.version_id,
            size: r.size,
            etag: r.etag,
            last_modified: r.last_modified,
            attrs: r.attrs,
            checksums: r.checksums,
            owner: r.owner,
            storage_class: r.storage_class.unwrap_or_else(|| crate::STANDARD.into()),
            body: r.body,
            parts: r.parts,
        }
    }
}

/// Where one part of a multipart object lies in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartRange {
    /// The part number.
    pub number: u32,
    /// Offset of the part's first byte in the object.
    pub offset: u64,
    /// The part's size.
    pub size: u64,
}

impl From<PartExtent> for PartRange {
    fn from(e: PartExtent) -> Self {
        Self {
            number: e.number,
            offset: e.offset,
            size: e.size,
        }
    }
}

/// A multipart upload in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// Its id.
    pub upload_id: String,
    /// The bucket it writes to.
    pub bucket: String,
    /// The key it writes.
    pub key: String,
    /// When it was started.
    pub initiated: UnixMillis,
    /// Headers and user metadata the object will have.
    pub attrs: ObjectAttrs,
    /// The additional checksum requested for its parts, if any.
    pub checksum_algorithm: Option<String>,
    /// The access key that started it.
    pub owner: String,
    /// The storage class of its parts and of the object it makes.
    pub storage_class: String,
}

impl From<UploadRecord> for Upload {
    fn from(r: UploadRecord) -> Self {
        Self {
            upload_id: r.upload_id,
            bucket: r.bucket,
            key: r.key,
            initiated: r.initiated,
            attrs: r.attrs,
            checksum_algorithm: r.checksum_algorithm,
            owner: r.owner,
            storage_class: r.storage_class.unwrap_or_else(|| crate::STANDARD.into()),
        }
    }
}

/// An uploaded part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Its number.
    pub number: u32,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag (hex MD5, without quotes).
    pub etag: String,
    /// When it was uploaded.
    pub last_modified: UnixMillis,
    /// Its additional checksums.
    pub checksums: Checksums,
}

impl From<PartRecord> for Part {
    fn from(r: PartRecord) -> Self {
        Self {
            number: r.number,
            size: r.size,
            etag: r.etag,
            last_modified: r.last_modified,
            checksums: r.checksums,
        }
    }
}

/// An access key and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The access key id.
    pub access_key: String,
    /// The secret (never logged: `Debug` hides it).
    pub secret_key: String,
    /// A name for people.
    pub name: String,
    /// When it was created.
    pub created: UnixMillis,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("name", &self.name)
            .finish()
    }
}

impl From<KeyRecord> for AccessKey {
    fn from(r: KeyRecord) -> Self {
        Self {
            access_key: r.access_key,
            secret_key: r.secret_key,
            name: r.name,
            created: r.created,
        }
    }
}

impl From<AccessKey> for KeyRecord {
    fn from(k: AccessKey) -> Self {
        Self {
            access_key: k.access_key,
            secret_key: k.secret_key,
            name: k.name,
            created: k.created,
        }
    }
}

/// One page of a bucket listing, in S3 order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects (key, current version), in key order.
    pub objects: Vec<(String, Object)>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// Whether more entries follow.
    pub truncated: bool,
    /// The last key or common prefix returned, to continue after.
    pub last: Option<String>,
}

impl From<cairn_meta::query::ListPage> for ListPage {
    fn from(p: cairn_meta::query::ListPage) -> Self {
        Self {
            objects: p.objects.into_iter().map(|(k, o)| (k, o.into())).collect(),
            common_prefixes: p.common_prefixes,
            truncated: p.truncated,
            last: p.last,
        }
    }
}

/// A storage node as it last reported itself to the metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StorageNode {
    /// Its id (the same after a restart).
    pub id: String,
    /// Where its shard API listens.
    pub addr: String,
    /// Its failure domain.
    pub zone: String,
    /// Its storage pool ([`cairn_meta::DEFAULT_POOL`] for the default one).
    pub pool: String,
    /// Its disks, in order.
    pub disks: Vec<StorageDisk>,
    /// When it first reported itself.
    pub registered: UnixMillis,
    /// When it last reported itself (its clock).
    pub heartbeat: UnixMillis,
}

/// The cluster map: the storage nodes placement chooses from, at one epoch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClusterMap {
    /// The epoch (each change of the map makes a new one).
    pub epoch: u64,
    /// The nodes, by id.
    pub nodes: Vec<MapNode>,
}

/// A storage node in the [`ClusterMap`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MapNode {
    /// Its id.
    pub id: String,
    /// Its failure domain.
    pub zone: String,
    /// Each disk's weight (capacity in GiB).
    pub weights: Vec<u64>,
    /// Whether it is draining (takes no new shards).
    pub draining: bool,
    /// Its storage pool ([`cairn_meta::DEFAULT_POOL`] for the default one).
    pub pool: String,
}

impl From<cairn_meta::ClusterMapRecord> for ClusterMap {
    fn from(r: cairn_meta::ClusterMapRecord) -> Self {
        Self {
            epoch: r.epoch,
            nodes: r
                .nodes
                .into_iter()
                .map(|n| MapNode {
                    id: n.id,
                    zone: n.zone,
                    weights: n.weights,
                    draining: n.draining,
                    pool: pool_name(n.pool),
                })
                .collect(),
        }
    }
}

/// One disk of a [`StorageNode`], as last reported.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StorageDisk {
    /// Its directory on the node.
    pub path: String,
    /// Bytes of its file system.
    pub capacity_total: u64,
    /// Bytes free.
    pub capacity_free: u64,
    /// Whether it takes writes.
    pub writable: bool,
    /// Shards it holds.
    pub shards: u64,
    /// Shards known damaged.
    pub damaged: u64,
}

impl From<cairn_meta::StorageNodeRecord> for StorageNode {
    fn from(r: cairn_meta::StorageNodeRecord) -> Self {
        Self {
            id: r.id,
            addr: r.addr,
            zone: r.zone,
            disks: r
                .disks
                .into_iter()
                .map(|d| StorageDisk {
                    path: d.path,
                    capacity_total: d.capacity_total,
                    capacity_free: d.capacity_free,
                    writable: d.writable,
                    shards: d.shards,
                    damaged: d.damaged,
                })
                .collect(),
            registered: r.registered,
            heartbeat: r.heartbeat,
            pool: pool_name(r.pool),
        }
    }
}

/// A pool as records keep it, by name.
fn pool_name(pool: Option<String>) -> String {
    pool.unwrap_or_else(|| cairn_meta::DEFAULT_POOL.to_string())
}
