//! The records stored in the metadata. All are plain data with serde derives; they are stored
//! with [`crate::encode`], behind a format version byte.

use std::collections::BTreeMap;

use cairn_types::{ChunkId, ErasureScheme};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. Times are chosen by the proposer and carried in commands,
/// so that `apply` stays deterministic.
pub type UnixMillis = i64;

/// A bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// The bucket's name.
    pub name: String,
    /// Access key of the owner.
    pub owner: String,
    /// Creation time.
    pub created: UnixMillis,
}

/// One chunk of an object's content, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Content address.
    pub id: ChunkId,
    /// Plaintext length in bytes.
    pub len: u32,
}

/// Where an object's bytes are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Small objects: the bytes themselves, in the metadata.
    Inline(Vec<u8>),
    /// Objects of up to [`MANIFEST_INLINE_MAX`] chunks: the ordered list of chunks, in the record.
    Chunks(Vec<ChunkRef>),
    /// Larger objects: the chunk list is stored apart from the record, in [`ManifestPage`]s
    /// under the version id (and the part layout too, one [`PartExtent`] per part), so that
    /// HEAD and listings decode a small record whatever the object's size, and a ranged read
    /// fetches only the pages it needs. Only `apply` makes this variant; a command carrying it
    /// is invalid. Appended last so records written before it decode unchanged.
    Paged(PagedManifest),
}

/// The shape of a manifest stored apart from its object record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagedManifest {
    /// Chunk references over all pages.
    pub chunks: u64,
    /// Number of pages.
    pub pages: u32,
    /// Number of parts (0 for a single upload); their extents are stored apart too.
    pub parts: u32,
}

/// Most chunk references (and part extents) an object record holds itself; a manifest with
/// more is stored apart ([`Body::Paged`]). Bounds the record at about 1.5 KiB of manifest.
pub const MANIFEST_INLINE_MAX: usize = 32;

/// Chunk references per stored manifest page (about 36 KiB): a ranged read of up to 1 GiB at
/// the 1 MiB average chunk size touches one or two pages.
pub const MANIFEST_PAGE_REFS: usize = 1024;

/// One page of a manifest stored apart: consecutive chunks of a version, starting at `start`.
/// Stored under the offset just past its last byte, so the page holding offset `x` is the
/// first one keyed above `x`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPage {
    /// Offset in the object of the page's first byte.
    pub start: u64,
    /// The chunks, in order; never empty, every one at least one byte long.
    pub chunks: Vec<ChunkRef>,
}

impl ManifestPage {
    /// Offset just past the page's last byte.
    pub fn end(&self) -> u64 {
        self.start + self.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>()
    }
}

/// The S3-visible attributes of an object, set at upload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttrs {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// Expires, as sent.
    pub expires: Option<String>,
    /// User metadata (`x-amz-meta-*`), names lower-cased.
    pub user_metadata: BTreeMap<String, String>,
}

/// S3 additional checksums of the whole object (base64, as S3 shows them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// CRC32.
    pub crc32: Option<String>,
    /// CRC32C.
    pub crc32c: Option<String>,
    /// SHA-1.
    pub sha1: Option<String>,
    /// SHA-256.
    pub sha256: Option<String>,
    /// CRC64/NVME.
    pub crc64nvme: Option<String>,
}

/// Where a part of a multipart object starts, for `partNumber` GETs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartExtent {
    /// The part number.
    pub number: u32,
    /// Offset of the part's first byte in the object.
    pub offset: u64,
    /// The part's size.
    pub size: u64,
}

/// The current version of an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
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
    /// The content.
    pub body: Body,
    /// Part layout of multipart objects (empty for single uploads, and for paged manifests,
    /// whose extents are stored apart: use [`ObjectRecord::part_count`]).
    pub parts: Vec<PartExtent>,
    /// Access key that wrote this version.
    pub owner: String,
    /// Its S3 storage class, `None` for `STANDARD`: the redundancy its chunks were written
    /// with (each chunk's record has the scheme itself). Since format 2.
    #[serde(deserialize_with = "crate::codec::since_2")]
    pub storage_class: Option<String>,
}

impl ObjectRecord {
    /// Number of parts of a multipart object (0 for a single upload).
    pub fn part_count(&self) -> u32 {
        match &self.body {
            Body::Paged(m) => m.parts,
            _ => self.parts.len() as u32,
        }
    }
}

/// A chunk's record: how many manifests and parts reference it, and how it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// References from object versions and uploaded parts.
    pub refcount: u64,
    /// Plaintext length.
    pub len: u32,
    /// The stripe layout its shards were written with.
    pub scheme: ErasureScheme,
}

/// Where a chunk's shards are, beyond its scheme. Kept apart from its [`ChunkRecord`] (and only
/// when it is not the default), so that records written before cluster maps existed read
/// unchanged as epoch 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlacement {
    /// The cluster-map epoch whose placement put shard `i` on the map's `i`-th disk for the
    /// chunk (its home); 0 for the fixed disk list of a store without a cluster map.
    pub epoch: u64,
    /// Bit `i` set: shard `i` is not stored (it could not be written, or was found lost) and
    /// awaits repair. Never all of them.
    pub missing: u32,
    /// Shards stored away from their home (its disk was down when they were written), with
    /// the disk that holds each (as the layout names disks); repair moves them home.
    pub moved: MovedShards,
    /// The storage pool whose nodes the epoch's placement chose from (`None`: the default
    /// pool). Since format 3.
    #[serde(deserialize_with = "crate::codec::since_3")]
    pub pool: Option<String>,
}

impl ChunkPlacement {
    /// Whether every shard is at its home: nothing for repair to do.
    pub fn is_whole(&self) -> bool {
        self.missing == 0 && self.moved.is_empty()
    }

    /// The disk holding shard `i` away from its home, if it was moved.
    pub fn moved_to(&self, i: usize) -> Option<&str> {
        self.moved
            .iter()
            .find(|(s, _)| usize::from(*s) == i)
            .map(|(_, d)| d.as_str())
    }
}

/// One storage node in the cluster map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapNode {
    /// The node's id.
    pub id: String,
    /// Its failure domain.
    pub zone: String,
    /// The weight of each of its disks, in its disk order (their capacity in GiB, at least 1).
    pub weights: Vec<u64>,
    /// Draining: its disks take no new shards (placement sees weight 0), and what they hold
    /// stays readable.
    pub draining: bool,
    /// Its storage pool (`None`: the default pool): it takes the shards of the storage classes
    /// placed in that pool only. Since format 3.
    #[serde(deserialize_with = "crate::codec::since_3")]
    pub pool: Option<String>,
}

/// The cluster map at one epoch: the storage nodes and disks placement chooses from. It
/// changes only through Raft (a node's first report or a change of its zone or disks, an
/// administrator's drain), each change a new epoch; every epoch is kept, because a chunk's
/// shards are found through the map of the epoch it was written in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMapRecord {
    /// The epoch, from 1.
    pub epoch: u64,
    /// The nodes, in id order.
    pub nodes: Vec<MapNode>,
}

impl MapNode {
    /// The map entry a node's report asks for (not draining).
    pub fn from_report(node: &StorageNodeRecord) -> Self {
        Self {
            id: node.id.clone(),
            zone: node.zone.clone(),
            weights: node.disks.iter().map(|d| (d.capacity_total >> 30).max(1)).collect(),
            draining: false,
            pool: node.pool.clone(),
        }
    }
}

/// What the writer of new chunks knows of where it put their shards, carried by its commit
/// ([`crate::Command::Placed`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WritePlacement {
    /// The cluster-map epoch the writer placed them by (0: a fixed disk list).
    pub epoch: u64,
    /// Written chunks whose shards are not all at home: (chunk, shards missing — bit `i` for
    /// shard `i` —, shards moved with the disk holding each). Chunks not listed are whole.
    pub exceptions: Vec<ShardExceptions>,
    /// The storage pool it placed them in (`None`: the default pool). Since format 3.
    #[serde(deserialize_with = "crate::codec::since_3")]
    pub pool: Option<String>,
}

/// Shards moved away from their home: (shard index, the disk holding it, as the layout names
/// disks).
pub type MovedShards = Vec<(u8, String)>;

/// A written chunk whose shards are not all at home: (chunk, shards missing — bit `i` for
/// shard `i` —, shards moved).
pub type ShardExceptions = (ChunkId, u32, MovedShards);

/// An in-progress multipart upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The upload id.
    pub upload_id: String,
    /// Target bucket.
    pub bucket: String,
    /// Target key.
    pub key: String,
    /// Initiation time.
    pub initiated: UnixMillis,
    /// Attributes the completed object will carry.
    pub attrs: ObjectAttrs,
    /// Checksum algorithm requested at creation, if any.
    pub checksum_algorithm: Option<String>,
    /// Access key that created the upload.
    pub owner: String,
    /// The storage class of its parts and of the completed object (`None`: `STANDARD`). Since
    /// format 2.
    #[serde(deserialize_with = "crate::codec::since_2")]
    pub storage_class: Option<String>,
}

/// What a completed multipart upload became, so that a `CompleteMultipartUpload` retried after
/// a lost response gets the same answer (as on AWS) instead of `NoSuchUpload`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedUpload {
    /// Bucket of the upload.
    pub bucket: String,
    /// Key of the upload.
    pub key: String,
    /// The version the completion created.
    pub version_id: String,
    /// The (part number, ETag) list the completion was made with.
    pub parts: Vec<(u32, String)>,
    /// When it completed.
    pub completed: UnixMillis,
}

/// An uploaded part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// Part number, 1 to 10,000.
    pub number: u32,
    /// Size in bytes.
    pub size: u64,
    /// Hex MD5 of the part.
    pub etag: String,
    /// Upload time.
    pub last_modified: UnixMillis,
    /// The part's content.
    pub body: Body,
    /// Checksums of the part.
    pub checksums: Checksums,
}

/// An access key and its secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The access key id.
    pub access_key: String,
    /// The secret key.
    pub secret_key: String,
    /// A human name.
    pub name: String,
    /// Creation time.
    pub created: UnixMillis,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("name", &self.name)
            .finish()
    }
}

/// Where a chunk stands in space reclamation (table `G`, keyed by chunk id). A chunk with a
/// live reference has no mark. See docs/ARCHITECTURE.md, "Space reclamation", for the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GcMark {
    /// Its reference count reached 0 (set by the command that dropped the last reference). A
    /// commit referencing it again revives it; after the grace period the collector claims it.
    Unreferenced,
    /// Claimed by collection pass `pass`: its shards are being deleted. Commits referencing it
    /// fail with `ChunksGone` until the pass drops or releases it.
    Deleting {
        /// The claiming pass.
        pass: u64,
        /// The `Gone` mark it had before the claim (an orphan claimed again), restored if the
        /// claim is released.
        prev_gone: Option<u64>,
    },
    /// Its shards were deleted by pass `pass` and its record dropped. Only a writer that saw
    /// this very mark before writing the chunk again may commit it (its shards came after the
    /// deletes); purged once older than the grace period.
    Gone {
        /// The pass that deleted it.
        pass: u64,
    },
}

/// Progress of space reclamation, one record in the metadata. Passes are numbered from 1 and
/// run one at a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcInfo {
    /// The last pass begun.
    pub started: u64,
    /// The last pass ended (`started` when none is in progress).
    pub done: u64,
    /// `Gone` marks of passes up to this one may have been purged.
    pub purged_through: u64,
}

/// What a writer saw of the collection state before writing chunks, carried by its commit
/// ([`crate::Command::Fenced`]) so that `apply` can tell whether the shards it wrote may have
/// been deleted by a collection pass meanwhile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFence {
    /// [`GcInfo::done`] when the writer began: passes up to this one had ended, so none of
    /// their deletes can land on what the writer wrote afterwards.
    pub passes_done: u64,
    /// Chunks the writer found `Gone` (with that pass) before writing them again.
    pub seen_gone: Vec<(ChunkId, u64)>,
}

/// A storage node as it last reported itself to the metadata (`Command::ReportStorageNode`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageNodeRecord {
    /// Its id (kept in its data directory: the same after a restart), 1 to 64 printable ASCII
    /// characters.
    pub id: String,
    /// Where gateways reach its shard API (`host:port`).
    pub addr: String,
    /// Its failure domain (a rack, a room, a site).
    pub zone: String,
    /// Its disks, in their order on the node.
    pub disks: Vec<DiskRecord>,
    /// When it first reported itself.
    pub registered: UnixMillis,
    /// When it last reported itself (the node's clock).
    pub heartbeat: UnixMillis,
    /// Its storage pool (`None`: the default pool, [`DEFAULT_POOL`]). Since format 3.
    #[serde(deserialize_with = "crate::codec::since_3")]
    pub pool: Option<String>,
}

/// The name of the storage pool of nodes and classes that name none. Records keep it as
/// `None`.
pub const DEFAULT_POOL: &str = "default";

/// Whether `name` may name a storage pool: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`.
pub fn valid_pool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A pool as records keep it: `None` for the default pool.
pub fn pool_field(name: &str) -> Option<String> {
    (name != DEFAULT_POOL).then(|| name.to_string())
}

/// Whether `pool` is a pool as records keep it: none, or a valid name other than the default
/// pool's (which is kept as none).
pub fn valid_pool_field(pool: Option<&str>) -> bool {
    pool.is_none_or(|p| valid_pool_name(p) && p != DEFAULT_POOL)
}

/// One disk of a storage node, as last reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRecord {
    /// Its directory on the node.
    pub path: String,
    /// Bytes of its file system.
    pub capacity_total: u64,
    /// Bytes free on it.
    pub capacity_free: u64,
    /// Whether it takes writes.
    pub writable: bool,
    /// Shards it holds.
    pub shards: u64,
    /// Shards known damaged.
    pub damaged: u64,
}

impl StorageNodeRecord {
    /// Most disks a node may report.
    pub const MAX_DISKS: usize = 256;

    /// Checks the bounds a report must keep (it goes into the Raft log).
    pub fn check(&self) -> Result<(), &'static str> {
        let printable =
            |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(&self.id, 64) {
            return Err("id: 1 to 64 printable ASCII characters");
        }
        if !printable(&self.addr, 256) {
            return Err("address: 1 to 256 printable ASCII characters");
        }
        if !printable(&self.zone, 64) {
            return Err("zone: 1 to 64 printable ASCII characters");
        }
        if self.disks.is_empty() || self.disks.len() > Self::MAX_DISKS {
            return Err("1 to 256 disks");
        }
        if self.disks.iter().any(|d| d.path.len() > 4096) {
            return Err("a disk path of more than 4096 bytes");
        }
        if !valid_pool_field(self.pool.as_deref()) {
            return Err("pool: 1 to 64 of a-z, 0-9, - and _ (the default pool is no pool)");
        }
        Ok(())
    }
}
