//! Commands replicated through Raft, and their outcomes.

use cairn_types::{ChunkId, ErasureScheme};
use serde::{Deserialize, Serialize};

use crate::records::{
    Body, BucketRecord, KeyRecord, ObjectAttrs, ObjectRecord, PartRecord, UnixMillis, UploadRecord, WriteFence,
};

/// A change to the metadata. Every field `apply` needs is in the command (times and ids are
/// chosen by the proposer), so applying it is deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Creates a bucket.
    CreateBucket {
        /// The new bucket.
        bucket: BucketRecord,
    },
    /// Deletes an empty bucket.
    DeleteBucket {
        /// Its name.
        name: String,
    },
    /// Makes `object` the current version of `bucket/key`, dropping the references of the
    /// version it replaces. Answers the version as stored (its manifest possibly moved apart).
    PutObject {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The new version, with its manifest.
        object: Box<ObjectRecord>,
        /// Chunks whose shards the proposer wrote (with `scheme`); every other chunk of the
        /// manifest must already be referenced.
        written: Vec<ChunkId>,
        /// The stripe layout of the written chunks.
        scheme: ErasureScheme,
        /// Fail with `PreconditionFailed` if the key exists (`If-None-Match: *`).
        if_none_match: bool,
        /// Fail with `PreconditionFailed` unless the current ETag is this one (`If-Match`).
        if_match: Option<String>,
    },
    /// Deletes the current version of `bucket/key` (no error if there is none).
    DeleteObjects {
        /// Bucket.
        bucket: String,
        /// Keys.
        keys: Vec<String>,
    },
    /// Starts a multipart upload.
    CreateUpload {
        /// The upload.
        upload: UploadRecord,
    },
    /// Stores (or replaces) one part of an upload.
    PutPart {
        /// Bucket of the upload.
        bucket: String,
        /// Key of the upload.
        key: String,
        /// The upload.
        upload_id: String,
        /// The part, whose body must be `Body::Chunks`.
        part: PartRecord,
        /// Chunks whose shards the proposer wrote.
        written: Vec<ChunkId>,
        /// The stripe layout of the written chunks.
        scheme: ErasureScheme,
    },
    /// Completes an upload from the listed parts, in order.
    CompleteUpload {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The upload.
        upload_id: String,
        /// (part number, ETag without quotes) as the client listed them.
        parts: Vec<(u32, String)>,
        /// Id of the version this creates.
        version_id: String,
        /// Its time.
        last_modified: UnixMillis,
        /// Fail with `PreconditionFailed` if the key exists.
        if_none_match: bool,
        /// Smallest size of every part but the last.
        min_part_size: u64,
    },
    /// Abandons an upload and its parts.
    AbortUpload {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The upload.
        upload_id: String,
    },
    /// Adds an access key.
    CreateKey {
        /// The key.
        key: KeyRecord,
    },
    /// Removes an access key.
    DeleteKey {
        /// Its id.
        access_key: String,
    },
    /// Runs `command` only if `bucket` is still the very bucket the proposer checked access
    /// against (same owner, same creation time); otherwise `NoSuchBucket` and nothing changes.
    /// So a bucket deleted and re-created under another key while an upload was in flight
    /// never receives that upload. Appended last so earlier log entries decode unchanged.
    InBucket {
        /// The bucket's name.
        bucket: String,
        /// Its owner when it was checked.
        owner: String,
        /// Its creation time when it was checked.
        created: UnixMillis,
        /// A `PutObject`, `CopyObject` or `CreateUpload` into that bucket.
        command: Box<Command>,
    },
    /// Makes a copy of `source_bucket/source_key` the current version of `bucket/key`, sharing
    /// its chunks (their references are added; no data moves), manifest pages included. Fails
    /// with `SourceChanged` unless the source's current version is still `source_version`, the
    /// one the proposer read and checked conditions against. Appended after `InBucket`.
    CopyObject {
        /// Bucket of the source.
        source_bucket: String,
        /// Key of the source.
        source_key: String,
        /// Version id of the source the proposer read.
        source_version: String,
        /// Destination bucket.
        bucket: String,
        /// Destination key.
        key: String,
        /// Id of the version this creates.
        version_id: String,
        /// Its time.
        last_modified: UnixMillis,
        /// Attributes of the copy; `None` keeps the source's.
        attrs: Option<ObjectAttrs>,
        /// Access key that writes the copy.
        owner: String,
    },
    /// Runs `command` (a `PutObject`, possibly inside `InBucket`, or a `PutPart`) with what its
    /// writer saw of space reclamation before writing its chunks: a written chunk that a
    /// collection pass may have deleted since is refused (`ChunksGone`) instead of being
    /// committed without shards. Appended after `CopyObject`; the data path sends every write
    /// of new chunks in it.
    Fenced {
        /// What the writer saw.
        fence: WriteFence,
        /// The write.
        command: Box<Command>,
    },
    /// Begins a collection pass, or resumes the one in progress (a collector that crashed
    /// mid-pass). Answers [`Response::Pass`].
    GcBegin,
    /// Claims chunks for deletion in the pass in progress: those with a record and no
    /// reference, and orphans (no record). Others are skipped. Answers [`Response::Chunks`],
    /// the chunks now claimed by this pass.
    GcClaim {
        /// The pass in progress.
        pass: u64,
        /// Candidates.
        ids: Vec<ChunkId>,
    },
    /// Gives back claims of `pass` whose shards were not deleted (a writer is using the chunk).
    GcRelease {
        /// The pass.
        pass: u64,
        /// Chunks claimed by it.
        ids: Vec<ChunkId>,
    },
    /// Records that the shards of chunks claimed by `pass` are deleted: their records go and
    /// their marks become `Gone`.
    GcDrop {
        /// The pass.
        pass: u64,
        /// Chunks claimed by it, every shard deleted.
        ids: Vec<ChunkId>,
    },
    /// Ends the pass in progress.
    GcEnd {
        /// The pass.
        pass: u64,
    },
    /// Forgets `Gone` marks of passes up to `through` (an ended pass). From this command on,
    /// a writer that began before pass `through` cannot commit a chunk it wrote whose record
    /// is missing.
    GcPurge {
        /// The last pass whose marks may go.
        through: u64,
        /// Chunks whose `Gone` marks to remove now (more may follow in later commands).
        ids: Vec<ChunkId>,
    },
    /// Removes records kept only for requests in flight: retired manifests (pages, extents and
    /// the retirement record) and completion records of multipart uploads.
    GcForget {
        /// Version ids of retired manifests.
        retired: Vec<String>,
        /// Upload ids of completion records.
        completed: Vec<String>,
    },
    /// A storage node reports itself (at start, then every heartbeat): its record replaces the
    /// one kept under its id, except `registered`, which the first report sets. Appended after
    /// `GcForget`.
    ReportStorageNode {
        /// The node as it is now.
        node: crate::StorageNodeRecord,
    },
    /// Runs `command` (a `Fenced` write) recording where the shards of the chunks it wrote
    /// are: the map epoch they were placed by and the shards it could not store, which go into
    /// the repair queue. Appended after `ReportStorageNode`; the data path sends every write of
    /// new chunks in it.
    Placed {
        /// Where the writer put the shards.
        placement: crate::WritePlacement,
        /// The write.
        command: Box<Command>,
    },
    /// Sets or clears a storage node's draining flag in the cluster map (a new epoch when it
    /// changes). Fails with `NoSuchStorageNode` if the map does not hold the node.
    DrainStorageNode {
        /// The node's id.
        id: String,
        /// Draining (`true`) or taking new shards again.
        drain: bool,
    },
    /// Records that shards of `chunk` placed by `epoch` are stored at their home again
    /// (`restored`, by repair: no longer missing nor moved) or were found lost (`lost`, by a
    /// read or a scrub: missing); the chunk enters or leaves the repair queue accordingly. Ignored if the chunk has no record or its placement is no
    /// longer `epoch` (collected and written again meanwhile); never marks every shard lost.
    ShardsChanged {
        /// The chunk.
        chunk: ChunkId,
        /// Its placement epoch as the caller saw it.
        epoch: u64,
        /// Shards stored again (bit `i` for shard `i`).
        restored: u32,
        /// Shards found lost.
        lost: u32,
    },
}

/// The outcome of a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done; nothing to report.
    Done,
    /// The version a `PutObject`, `CopyObject` or `CompleteUpload` stored.
    Object(Box<ObjectRecord>),
    /// Which of the keys of a `DeleteObjects` existed.
    Deleted(Vec<bool>),
    /// The command was refused and changed nothing.
    Failed(MetaError),
    /// The collection pass begun or resumed by `GcBegin`.
    Pass(u64),
    /// The chunks a `GcClaim` claimed.
    Chunks(Vec<ChunkId>),
}

/// Why a command was refused. These are the client's or the race's fault, never the store's,
/// except `Store`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MetaError {
    /// No such bucket.
    #[error("no such bucket")]
    NoSuchBucket,
    /// Another owner has the bucket name.
    #[error("bucket name taken")]
    BucketAlreadyExists,
    /// The caller already owns the bucket.
    #[error("bucket already owned by you")]
    BucketAlreadyOwnedByYou,
    /// The bucket still holds objects or uploads.
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// No such object.
    #[error("no such key")]
    NoSuchKey,
    /// A condition (`If-Match`, `If-None-Match`) did not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// No such multipart upload.
    #[error("no such upload")]
    NoSuchUpload,
    /// A listed part does not exist or has another ETag.
    #[error("invalid part {0}")]
    InvalidPart(u32),
    /// Listed parts are not in ascending order.
    #[error("parts not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is too small.
    #[error("part {0} is smaller than the minimum part size")]
    EntityTooSmall(u32),
    /// Chunks the command relied on were dropped meanwhile; write them and retry.
    #[error("{} chunks are no longer stored", .0.len())]
    ChunksGone(Vec<ChunkId>),
    /// The access key exists already.
    #[error("access key exists")]
    KeyExists,
    /// No such access key.
    #[error("no such access key")]
    NoSuchAccessKey,
    /// The command itself is malformed; it was applied as a no-op. A correct proposer never
    /// sends one (it runs [`Command::validate`] first), so this is the proposer's bug.
    #[error("invalid command: {0}")]
    Invalid(InvalidCommand),
    /// A stored value could not be decoded. Deterministic (every replica holds the same bytes),
    /// so the command that met it fails as a no-op instead of stopping the state machine.
    #[error("undecodable metadata record: {0}")]
    CorruptRecord(String),
    /// The source of a copy is no longer the version the proposer read: read it again (and
    /// check its conditions again), then retry.
    #[error("the copy source changed")]
    SourceChanged,
    /// A new version's id is already used by stored manifest pages (a proposer's bug: ids
    /// must be unique).
    #[error("version id already in use")]
    VersionIdInUse,
    /// The local metadata store failed to read or write (I/O). The only error the state
    /// machine treats as fatal: it is not the command's fault and not the same on every replica.
    #[error("metadata store: {0}")]
    Store(String),
    /// A collection command named a pass other than the one in progress (another collector
    /// runs, or this one restarted): begin or resume a pass again.
    #[error("collection pass {0} is not in progress")]
    NotCurrentPass(u64),
    /// The cluster map holds no storage node of that id.
    #[error("no such storage node")]
    NoSuchStorageNode,
}

/// What makes a command malformed, whatever the state it meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum InvalidCommand {
    /// A part's body must be a chunk list (parts are never inline).
    #[error("a multipart part must be stored as chunks, not inline")]
    InlinePart,
    /// Part numbers run from 1 to 10,000.
    #[error("part number {0} is outside 1..=10000")]
    PartNumber(u32),
    /// A `PutObject`'s size does not match its body.
    #[error("object size does not match its body")]
    SizeMismatch,
    /// `InBucket` wraps something other than a `PutObject`, `CopyObject` or `CreateUpload` of
    /// that bucket.
    #[error("InBucket must wrap a PutObject, CopyObject or CreateUpload of the same bucket")]
    BadGuard,
    /// A body in a command is a stored-apart manifest, which only `apply` makes.
    #[error("a command cannot carry a paged manifest")]
    PagedBody,
    /// A chunk reference of length 0.
    #[error("a chunk reference has length 0")]
    EmptyChunk,
    /// A version id must be 1 to 64 ASCII letters, digits, `-` or `_`.
    #[error("malformed version id")]
    VersionId,
    /// `Fenced` wraps something other than a `PutObject` (possibly in `InBucket`) or `PutPart`.
    #[error("Fenced must wrap a PutObject or PutPart")]
    BadFence,
    /// A storage node's report is malformed (id, address, zone or disks out of bounds: see
    /// `StorageNodeRecord::check`).
    #[error("malformed storage node report (id, address, zone or disks out of bounds)")]
    StorageNode,
    /// `Placed` wraps something other than a `Fenced` write, names a shard beyond 32 or a
    /// malformed pool.
    #[error("Placed must wrap a Fenced write")]
    BadPlacement,
}

impl Command {
    /// Checks what can be checked without the state. The proposer calls it before proposing,
    /// and `apply` calls it again, so a malformed command that reaches the log is a no-op.
    pub fn validate(&self) -> Result<(), InvalidCommand> {
        match self {
            Command::PutPart { part, .. } => {
                if !(1..=cairn_types::limits::MAX_PART_NUMBER as u32).contains(&part.number) {
                    return Err(InvalidCommand::PartNumber(part.number));
                }
                if matches!(part.body, Body::Inline(_)) {
                    return Err(InvalidCommand::InlinePart);
                }
                check_body(part.size, &part.body)
            }
            Command::PutObject { object, .. } => {
                check_version_id(&object.version_id)?;
                check_body(object.size, &object.body)
            }
            Command::CompleteUpload { version_id, .. } | Command::CopyObject { version_id, .. } => {
                check_version_id(version_id)
            }
            Command::InBucket { bucket, command, .. } => {
                let same = match &**command {
                    Command::PutObject { bucket: b, .. } | Command::CopyObject { bucket: b, .. } => b == bucket,
                    Command::CreateUpload { upload } => upload.bucket == *bucket,
                    _ => false,
                };
                if !same {
                    return Err(InvalidCommand::BadGuard);
                }
                command.validate()
            }
            Command::Fenced { command, .. } => {
                let ok = match &**command {
                    Command::PutObject { .. } | Command::PutPart { .. } => true,
                    Command::InBucket { command: inner, .. } => matches!(**inner, Command::PutObject { .. }),
                    _ => false,
                };
                if !ok {
                    return Err(InvalidCommand::BadFence);
                }
                command.validate()
            }
            Command::ReportStorageNode { node } => node.check().map_err(|_| InvalidCommand::StorageNode),
            Command::Placed { placement, command } => {
                let malformed = |(_, missing, moved): &crate::ShardExceptions| {
                    (*missing == 0 && moved.is_empty())
                        || moved.len() > 32
                        || moved.iter().any(|(i, d)| *i >= 32 || d.is_empty() || d.len() > 128)
                };
                let bad_pool = !crate::valid_pool_field(placement.pool.as_deref());
                if !matches!(**command, Command::Fenced { .. })
                    || placement.exceptions.iter().any(malformed)
                    || bad_pool
                {
                    return Err(InvalidCommand::BadPlacement);
                }
                command.validate()
            }
            _ => Ok(()),
        }
    }
}

/// Version ids name manifest pages in the key space: short, and never holding 0x00.
fn check_version_id(id: &str) -> Result<(), InvalidCommand> {
    let ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(InvalidCommand::VersionId)
    }
}

fn check_body(size: u64, body: &Body) -> Result<(), InvalidCommand> {
    let actual = match body {
        Body::Inline(b) => b.len() as u64,
        Body::Chunks(c) => {
            if c.iter().any(|c| c.len == 0) {
                return Err(InvalidCommand::EmptyChunk);
            }
            c.iter().map(|c| u64::from(c.len)).sum()
        }
        Body::Paged(_) => return Err(InvalidCommand::PagedBody),
    };
    if actual == size {
        Ok(())
    } else {
        Err(InvalidCommand::SizeMismatch)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::CreateBucket { bucket } => write!(f, "CreateBucket({})", bucket.name),
            Command::DeleteBucket { name } => write!(f, "DeleteBucket({name})"),
            Command::PutObject { bucket, key, .. } => write!(f, "PutObject({bucket}/{key})"),
            Command::DeleteObjects { bucket, keys } => write!(f, "DeleteObjects({bucket}, {} keys)", keys.len()),
            Command::CreateUpload { upload } => write!(f, "CreateUpload({}/{})", upload.bucket, upload.key),
            Command::PutPart { upload_id, part, .. } => write!(f, "PutPart({upload_id}#{})", part.number),
            Command::CompleteUpload { bucket, key, .. } => write!(f, "CompleteUpload({bucket}/{key})"),
            Command::AbortUpload { upload_id, .. } => write!(f, "AbortUpload({upload_id})"),
            Command::CreateKey { key } => write!(f, "CreateKey({})", key.access_key),
            Command::DeleteKey { access_key } => write!(f, "DeleteKey({access_key})"),
            Command::InBucket { command, .. } => write!(f, "InBucket({command})"),
            Command::CopyObject {
                source_bucket,
                source_key,
                bucket,
                key,
                ..
            } => write!(f, "CopyObject({source_bucket}/{source_key} -> {bucket}/{key})"),
            Command::Fenced { command, .. } => write!(f, "Fenced({command})"),
            Command::GcBegin => f.write_str("GcBegin"),
            Command::GcClaim { pass, ids } => write!(f, "GcClaim(pass {pass}, {} chunks)", ids.len()),
            Command::GcRelease { pass, ids } => write!(f, "GcRelease(pass {pass}, {} chunks)", ids.len()),
            Command::GcDrop { pass, ids } => write!(f, "GcDrop(pass {pass}, {} chunks)", ids.len()),
            Command::GcEnd { pass } => write!(f, "GcEnd({pass})"),
            Command::GcPurge { through, ids } => write!(f, "GcPurge(through {through}, {} marks)", ids.len()),
            Command::ReportStorageNode { node } => write!(f, "ReportStorageNode({} at {})", node.id, node.addr),
            Command::Placed { placement, command } => write!(f, "Placed(epoch {}, {command})", placement.epoch),
            Command::DrainStorageNode { id, drain } => write!(f, "DrainStorageNode({id}, {drain})"),
            Command::ShardsChanged {
                chunk, restored, lost, ..
            } => write!(f, "ShardsChanged({chunk}, +{restored:#x}, -{lost:#x})"),
            Command::GcForget { retired, completed } => {
                write!(
                    f,
                    "GcForget({} manifests, {} completions)",
                    retired.len(),
                    completed.len()
                )
            }
        }
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Response::Done => f.write_str("Done"),
            Response::Object(o) => write!(f, "Object({})", o.version_id),
            Response::Deleted(v) => write!(f, "Deleted({})", v.len()),
            Response::Failed(e) => write!(f, "Failed({e})"),
            Response::Pass(p) => write!(f, "Pass({p})"),
            Response::Chunks(c) => write!(f, "Chunks({})", c.len()),
        }
    }
}
