//! How the data path reaches the metadata: the [`MetaClient`] trait, named and typed operations
//! (propose a command; look up a bucket, an object, an upload, a key; list a page; look up a
//! batch of chunks; the collection state), and the errors they can end with.
//!
//! Owns: the trait, its error kinds, and [`conformance`], the suite every implementation must
//! pass (the in-process one in `cairn-meta-node`; a gRPC one later).
//!
//! Invariants:
//! - every read sees every write acknowledged before it began (reads are linearizable);
//! - errors keep their kind: [`MetaClientError::Unavailable`] and
//!   [`MetaClientError::NotLeader`] may succeed when retried, [`MetaClientError::Meta`] is the
//!   metadata's own answer (a refused command, an undecodable record) and will not.
//!
//! Must not depend on: RocksDB, openraft, HTTP, the data path.

pub mod conformance;
pub mod grpc;

use cairn_meta::query::ListPage;
use cairn_meta::{
    BucketRecord, ChunkRecord, Command, CompletedUpload, GcInfo, GcMark, KeyRecord, ManifestPage, MetaError,
    ObjectRecord, PagedManifest, PartExtent, PartRecord, Response, UploadRecord,
};
use cairn_types::ChunkId;
use serde::{Deserialize, Serialize};

/// Why a metadata operation did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaClientError {
    /// The metadata cannot answer now (no leader, shutting down, unreachable); retry.
    #[error("metadata unavailable: {0}")]
    Unavailable(String),
    /// This node is not the leader; retry there (`None` while no leader is known).
    #[error("not the metadata leader (leader: {leader:?})")]
    NotLeader {
        /// The leader's address, when known.
        leader: Option<String>,
    },
    /// The metadata answered with an error of its own: not retryable as is.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The meta-node refused this client (a wrong cluster secret, an unknown protocol):
    /// a configuration error, not retryable.
    #[error("refused by the meta-node: {0}")]
    Refused(String),
}

impl MetaClientError {
    /// Whether the same operation may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::NotLeader { .. })
    }
}

/// Result of a metadata operation.
pub type Result<T> = std::result::Result<T, MetaClientError>;

/// A record looked up inside a bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InBucket<T> {
    /// The bucket does not exist.
    NoBucket,
    /// The bucket exists; the record does not.
    Absent,
    /// The record.
    Found(T),
}

/// A page of a bucket listing: see [`MetaClient::list_objects`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up at the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Only entries after this key or common prefix.
    pub after: Option<String>,
    /// Most entries (objects plus common prefixes) returned.
    pub max_keys: usize,
}

/// What the metadata holds about a chunk: its record (absent if never stored or collected)
/// and its collection mark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkState {
    /// The chunk.
    pub id: ChunkId,
    /// Its record.
    pub record: Option<ChunkRecord>,
    /// Its collection mark.
    pub mark: Option<GcMark>,
    /// Where its shards are (meaningful while it has a record).
    pub placement: cairn_meta::ChunkPlacement,
}

/// What a meta-node knows of its Raft group (`cairn meta status`, the gateway's
/// `/admin/v1/meta`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// The node's id.
    pub id: u64,
    /// Leader, Follower, Candidate, Learner...
    pub state: String,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// Index of its last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last entry applied to its state.
    pub applied_index: Option<u64>,
    /// Index of the last entry of its current snapshot (built or installed).
    pub snapshot_index: Option<u64>,
    /// Index of the last entry purged from its log (folded into a snapshot).
    pub purged_index: Option<u64>,
    /// Whether the node answers its group's Raft calls (false: new or lost data directory,
    /// not yet added).
    pub admitted: bool,
    /// Members: id, address, whether it votes.
    pub members: Vec<(u64, String, bool)>,
    /// On the leader: how many entries each member is behind its log (`None`: nothing
    /// matched yet). Empty on other nodes.
    pub lag: Vec<(u64, Option<u64>)>,
}

/// The metadata, as the data path sees it. Implementations: in process over the local Raft
/// node (`cairn_meta_node::LocalMetaClient`), and over gRPC (later). Every implementation
/// passes [`conformance::run`].
#[async_trait::async_trait]
pub trait MetaClient: Send + Sync + 'static {
    /// Proposes `cmd` and answers its outcome once it is committed and applied. A command
    /// the state machine refused answers `Ok(Response::Failed(..))`.
    async fn propose(&self, cmd: Command) -> Result<Response>;

    /// Whether the metadata takes writes now.
    fn is_ready(&self) -> bool;

    /// Stops this client (and, in process, the metadata node it runs).
    async fn shutdown(&self);

    /// What the meta-node this client talks to (the leader, when it knows it) knows of its
    /// Raft group. Not a linearizable read: a view of one node.
    async fn group_status(&self) -> Result<GroupStatus>;

    /// A bucket.
    async fn bucket(&self, name: &str) -> Result<Option<BucketRecord>>;

    /// Every bucket, by name.
    async fn buckets(&self) -> Result<Vec<BucketRecord>>;

    /// The current version of `bucket/key`.
    async fn object(&self, bucket: &str, key: &str) -> Result<InBucket<ObjectRecord>>;

    /// One page of a listing, in S3 order; `None` if the bucket does not exist.
    async fn list_objects(&self, bucket: &str, query: &ListQuery) -> Result<Option<ListPage>>;

    /// A multipart upload.
    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<InBucket<UploadRecord>>;

    /// In-progress uploads of a bucket whose key starts with `prefix`, after (`key_marker`,
    /// `upload_id_marker`), in (key, upload id) order, at most `limit`.
    async fn uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: usize,
    ) -> Result<Vec<UploadRecord>>;

    /// Parts of an upload numbered above `after`, at most `limit`.
    async fn parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<PartRecord>>;

    /// Where part `number` of a paged multipart `version` lies.
    async fn part_extent(&self, version: &str, number: u32) -> Result<Option<PartExtent>>;

    /// Up to `limit` manifest pages of `version` from the one holding byte `offset`.
    async fn manifest_pages(&self, version: &str, offset: u64, limit: usize) -> Result<Vec<ManifestPage>>;

    /// An access key.
    async fn access_key(&self, access_key: &str) -> Result<Option<KeyRecord>>;

    /// Every access key.
    async fn access_keys(&self) -> Result<Vec<KeyRecord>>;

    /// The access version (`cairn_meta::query::access_version`): it changes whenever an
    /// access key or a bucket record is created or deleted, so a cache of them is current for
    /// as long as it is unchanged.
    async fn access_version(&self) -> Result<u64>;

    /// Every storage node that reported itself (`Command::ReportStorageNode`), by id.
    async fn storage_nodes(&self) -> Result<Vec<cairn_meta::StorageNodeRecord>>;

    /// The cluster map of `epoch`, or the current one (`None`); `None` when there is no such
    /// epoch. A past epoch never changes.
    async fn cluster_map(&self, epoch: Option<u64>) -> Result<Option<cairn_meta::ClusterMapRecord>>;

    /// Up to `limit` chunks of the repair queue (shards missing) after `after`, with their
    /// state, in chunk id order.
    async fn repair_queue(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<ChunkState>>;

    /// The state of each chunk of `ids`, in the same order, read at one point in time.
    async fn chunks(&self, ids: Vec<ChunkId>) -> Result<Vec<ChunkState>>;

    /// Up to `limit` chunk records after `after`, in chunk id order.
    async fn chunk_page(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<(ChunkId, ChunkRecord)>>;

    /// Progress of space reclamation.
    async fn gc_info(&self) -> Result<GcInfo>;

    /// Up to `limit` collection marks after `after`, in chunk id order.
    async fn gc_marks(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<(ChunkId, GcMark)>>;

    /// Up to `limit` retired manifests after version `after`.
    async fn retired(&self, after: &str, limit: usize) -> Result<Vec<(String, PagedManifest)>>;

    /// Up to `limit` completion records of multipart uploads after upload id `after`.
    async fn completed_uploads(&self, after: &str, limit: usize) -> Result<Vec<(String, CompletedUpload)>>;
}
