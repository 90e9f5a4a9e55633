//! [`Store`]: opening, buckets, objects, multipart uploads and keys.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_chunk::{ChunkerParams, Codec};
use cairn_meta::{Body, BucketRecord, Checksums, Command, MetaError, ObjectAttrs, ObjectRecord, Response};
use cairn_meta_client::{InBucket, ListQuery, MetaClient};
use cairn_shard_store::{DiskHealth, ShardStore};
use cairn_types::{limits, BucketName, ErasureScheme};

use crate::api::{AccessKey, Bucket, ListPage, Object, PartRange};
use crate::budget::MemoryBudget;
use crate::write::Staged;
use crate::{Error, Result};

/// Tuning of the data path.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Objects up to this size are stored inline in the metadata.
    pub inline_max: usize,
    /// Chunking parameters (part of the storage format).
    pub chunker: ChunkerParams,
    /// Chunks of one upload written concurrently.
    pub write_concurrency: usize,
    /// Chunks of one download fetched ahead.
    pub read_ahead: usize,
    /// Smallest size of every multipart part but the last.
    pub min_part_size: u64,
    /// Most body bytes all uploads and downloads together hold in memory (chunker buffers,
    /// chunks and shards in flight, chunks read ahead). Beyond it they wait for room.
    pub memory_budget: u64,
    /// How long an upload or download waits for room in the memory budget before it fails
    /// with [`Error::Unavailable`] (503 to S3 clients, which retry).
    pub memory_budget_wait: std::time::Duration,
    /// Size at which a disk's segment file is sealed and a new one begun (compaction rewrites
    /// whole segments: smaller ones reclaim space sooner, larger ones mean fewer files).
    pub segment_bytes: u64,
    /// How long a chunk read waits for its data shards before it asks the parity shards too
    /// and takes the first `k` to arrive (a slow or stopped disk costs at most this).
    pub hedge_after: std::time::Duration,
    /// Whether a chunk may be written with shards missing when disks fail: `k + 1` of its
    /// `k + m` shards durable suffice (the others are recorded and rebuilt by repair), so
    /// writes go on while up to `m - 1` disks (nodes) are down. Off, every shard must be
    /// written or the upload fails (503, retryable).
    pub degraded_writes: bool,
    /// Once enough shards of a chunk are durable, how much longer the write waits for the
    /// others before it records them missing (a stopped node costs at most this).
    pub straggler_wait: std::time::Duration,
    /// Storage classes other than `STANDARD` (which is the store's own scheme in the default
    /// pool), by S3 name: the scheme their chunks are written with and the storage pool they
    /// are placed in (see [`crate::class`]). Default: `REDUCED_REDUNDANCY` = 1+1 (two
    /// replicas) in the default pool. An object asking for a class not listed is refused
    /// ([`Error::InvalidStorageClass`]).
    pub storage_classes: std::collections::BTreeMap<String, crate::class::StorageClass>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            inline_max: 16 * 1024,
            chunker: ChunkerParams::V1,
            write_concurrency: 4,
            read_ahead: 3,
            min_part_size: limits::MIN_PART_SIZE,
            memory_budget: 1 << 30,
            memory_budget_wait: std::time::Duration::from_secs(30),
            segment_bytes: cairn_shard_store::SegmentStoreOptions::default().segment_bytes,
            hedge_after: std::time::Duration::from_millis(100),
            degraded_writes: true,
            straggler_wait: std::time::Duration::from_secs(2),
            storage_classes: [(
                crate::class::REDUCED_REDUNDANCY.to_string(),
                ErasureScheme::new(1, 1).expect("1+1 is valid").into(),
            )]
            .into(),
        }
    }
}

impl StoreConfig {
    /// The fewest shards of a chunk written with `scheme` that make the write succeed: all of
    /// them, or `k + 1` with [`StoreConfig::degraded_writes`] (never fewer than `k + 1`, so a
    /// degraded chunk survives one more loss before repair).
    pub fn min_shards(&self, scheme: ErasureScheme) -> usize {
        if self.degraded_writes {
            (usize::from(scheme.data) + 1).min(scheme.total())
        } else {
            scheme.total()
        }
    }
}

/// Conditions on the current version, checked atomically with a write.
#[derive(Clone, Debug, Default)]
pub struct PutConditions {
    /// Fail if the key exists (`If-None-Match: *`).
    pub if_none_match: bool,
    /// Fail unless the current ETag is this (`If-Match`).
    pub if_match: Option<String>,
}

/// What to list: see [`Store::list_objects`].
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up at the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Only entries after this key or common prefix.
    pub after: Option<String>,
    /// Most entries (objects plus common prefixes) returned.
    pub max_keys: usize,
}

/// A bucket as it was when the caller checked access to it. Writes made with it land only in
/// that very bucket: the check is repeated inside the Raft command, so a bucket deleted and
/// re-created (under another owner) meanwhile gets `NoSuchBucket` instead of the write. Only
/// [`Store::bucket_guard`] makes one.
#[derive(Clone, Debug)]
pub struct BucketGuard {
    pub(crate) name: String,
    owner: String,
    created: i64,
}

impl BucketGuard {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The access key that owns it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub(crate) fn wrap(&self, command: Command) -> Command {
        Command::InBucket {
            bucket: self.name.clone(),
            owner: self.owner.clone(),
            created: self.created,
            command: Box::new(command),
        }
    }
}

/// Space used by the store.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StoreStats {
    /// Live shards over all disks.
    pub shards: u64,
    /// Payload bytes of live shards over all disks.
    pub live_bytes: u64,
    /// Bytes on disk, including dead records awaiting compaction.
    pub disk_bytes: u64,
}

pub(crate) struct Inner {
    pub(crate) meta: Arc<dyn MetaClient>,
    pub(crate) layout: Arc<dyn crate::layout::Layout>,
    pub(crate) codec: Arc<Codec>,
    pub(crate) config: StoreConfig,
    pub(crate) budget: MemoryBudget,
    /// Background workers started on this store, with their status.
    pub(crate) workers: std::sync::Mutex<Vec<crate::workers::Worker>>,
    /// Uploads staged and not yet committed or dropped, by registration number.
    pub(crate) stagings: std::sync::Mutex<std::collections::HashMap<u64, Arc<crate::write::Staging>>>,
    pub(crate) next_staging: std::sync::atomic::AtomicU64,
    /// Woken when this process's collector drops or releases claimed chunks (uploads waiting
    /// for a chunk being deleted look again).
    pub(crate) gc_changed: tokio::sync::Notify,
    /// Runs of the reclamation workers: requests and completions.
    pub(crate) reclaim: crate::reclaim::Control,
    /// Access keys recently read.
    pub(crate) keys: crate::key_cache::KeyCache,
    pub(crate) buckets: crate::key_cache::BucketCache,
    /// When the cached keys and buckets were last checked against the metadata.
    pub(crate) access: crate::key_cache::AccessVersion,
    /// Chunks in the repair queue, as the repair worker last counted them.
    pub(crate) repair_queued: std::sync::atomic::AtomicU64,
    /// Scrub runs requested and done.
    pub(crate) scrub: crate::scrub::ScrubControl,
    /// Codecs of the schemes met so far (the store's own, other classes', old chunks').
    codecs: std::sync::Mutex<std::collections::HashMap<ErasureScheme, Arc<Codec>>>,
}

impl Inner {
    /// Memory a chunk of `len` bytes takes while it is decoded (what a read reserves per
    /// chunk): the chunk and its shards in the store's own scheme. An upload reserves by the
    /// scheme it writes with ([`chunk_cost_in`]).
    pub(crate) fn chunk_cost(&self, len: u64) -> u64 {
        chunk_cost_in(len, self.codec.scheme())
    }

    /// How chunks written with `scheme` in `pool` are named.
    pub(crate) fn naming(&self, scheme: ErasureScheme, pool: Option<String>) -> crate::class::ChunkNaming {
        crate::class::ChunkNaming::new(scheme, pool, self.codec.scheme())
    }

    /// The codec of `scheme`, made once.
    pub(crate) fn codec_for(&self, scheme: ErasureScheme) -> Arc<Codec> {
        if scheme == self.codec.scheme() {
            return self.codec.clone();
        }
        let mut codecs = self.codecs.lock().unwrap_or_else(|p| p.into_inner());
        codecs
            .entry(scheme)
            .or_insert_with(|| Arc::new(Codec::new(scheme)))
            .clone()
    }

    /// The class an object asks for, as records keep it (`None`: `STANDARD`), and what it is
    /// configured with.
    pub(crate) fn class(&self, name: &str) -> Result<(Option<String>, crate::class::StorageClass)> {
        if name == crate::class::STANDARD {
            return Ok((None, self.codec.scheme().into()));
        }
        match self.config.storage_classes.get(name) {
            Some(s) => Ok((Some(name.to_string()), s.clone())),
            None => Err(Error::InvalidStorageClass(
                name.chars().take(crate::class::MAX_CLASS_NAME).collect(),
            )),
        }
    }
}

/// Memory a chunk of `len` bytes written with `scheme` takes while it is encoded: the chunk
/// and its shards.
pub(crate) fn chunk_cost_in(len: u64, scheme: ErasureScheme) -> u64 {
    len + len.div_ceil(u64::from(scheme.data)) * scheme.total() as u64
}

/// An object store: metadata plus disks. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// How many times a commit that met chunks being collected is proposed again.
const COMMIT_ATTEMPTS: u32 = 3;

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// A store over a metadata client and opened disks (a [`crate::FixedLayout`] of them).
    pub fn from_parts(
        meta: Arc<dyn MetaClient>,
        disks: Vec<Arc<dyn ShardStore>>,
        scheme: ErasureScheme,
        config: StoreConfig,
    ) -> Self {
        assert!(scheme.total() <= disks.len(), "scheme needs one disk per shard");
        Self::with_layout(meta, Arc::new(crate::FixedLayout::new(disks)), scheme, config)
    }

    /// A store over a metadata client and a layout of disks (a [`crate::RingLayout`]: the
    /// cluster map of the metadata), writing new chunks with `scheme`.
    pub fn with_layout(
        meta: Arc<dyn MetaClient>,
        layout: Arc<dyn crate::layout::Layout>,
        scheme: ErasureScheme,
        mut config: StoreConfig,
    ) -> Self {
        // The default pool has one spelling in records: none.
        for class in config.storage_classes.values_mut() {
            class.pool = class.pool.take().and_then(|p| cairn_meta::pool_field(&p));
        }
        Self {
            inner: Arc::new(Inner {
                meta,
                layout,
                codecs: Default::default(),
                codec: Arc::new(Codec::new(scheme)),
                budget: MemoryBudget::new(config.memory_budget, config.memory_budget_wait),
                config,
                workers: Default::default(),
                stagings: Default::default(),
                next_staging: Default::default(),
                gc_changed: Default::default(),
                reclaim: Default::default(),
                keys: Default::default(),
                buckets: Default::default(),
                access: Default::default(),
                repair_queued: Default::default(),
                scrub: Default::default(),
            }),
        }
    }

    /// The erasure scheme new chunks are written with.
    pub fn scheme(&self) -> ErasureScheme {
        self.inner.codec.scheme()
    }

    /// The data path's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The Raft state of the metadata group, as the meta-node this store talks to (the
    /// leader, when it knows it) sees it: term, leader, log, applied and snapshot index,
    /// members and, on the leader, how far behind each member is.
    pub async fn meta_status(&self) -> Result<cairn_meta_client::GroupStatus> {
        Ok(self.inner.meta.group_status().await?)
    }

    /// The storage nodes that reported themselves to the metadata, by id.
    pub async fn storage_nodes(&self) -> Result<Vec<crate::api::StorageNode>> {
        Ok(self
            .inner
            .meta
            .storage_nodes()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The current cluster map (`None` before any storage node registered).
    pub async fn cluster_map(&self) -> Result<Option<crate::api::ClusterMap>> {
        Ok(self.inner.meta.cluster_map(None).await?.map(Into::into))
    }

    /// Drains a storage node (its disks take no new shards; what they hold stays readable) or
    /// ends its draining: a new epoch of the cluster map if it changes anything.
    pub async fn drain_storage_node(&self, id: &str, drain: bool) -> Result<()> {
        self.propose(Command::DrainStorageNode { id: id.into(), drain })
            .await
            .map(|_| ())
    }

    /// The storage classes objects may ask for, `STANDARD` first, each with what it is
    /// configured with.
    pub fn storage_classes(&self) -> Vec<(String, crate::class::StorageClass)> {
        std::iter::once((crate::class::STANDARD.to_string(), self.scheme().into()))
            .chain(
                self.inner
                    .config
                    .storage_classes
                    .iter()
                    .map(|(n, s)| (n.clone(), s.clone())),
            )
            .collect()
    }

    /// The storage classes new chunks cannot be written as configured (their pool has fewer
    /// failure domains than they have shards: they are written with fewer, see
    /// [`crate::class::honoured`]; or none at all: their writes fail), or why the layout
    /// cannot be read: shown by `cairn admin status`.
    pub async fn placement_warnings(&self) -> Vec<String> {
        let layout = &self.inner.layout;
        let epoch = match layout.epoch().await {
            Ok(e) => e,
            Err(e) => return vec![format!("the layout cannot be read: {e}")],
        };
        let mut warnings = Vec::new();
        for (name, class) in self.storage_classes() {
            let domains = match layout.domains(epoch, class.pool.as_deref()).await {
                Ok(d) => d,
                Err(e) => {
                    warnings.push(format!("the layout cannot be read: {e}"));
                    break;
                }
            };
            let at = match (epoch, &class.pool) {
                (0, None) => format!("{domains} disks"),
                (0, Some(pool)) => {
                    warnings.push(format!(
                        "storage class {name} is placed in pool {pool}, but this store has a fixed list of disks and no pools: its writes fail"
                    ));
                    continue;
                }
                (_, _) if domains == 0 => {
                    warnings.push(format!(
                        "storage class {name}: no storage node of pool {} takes shards (cluster map epoch {epoch}): its writes fail",
                        class.pool_name()
                    ));
                    continue;
                }
                (_, None) => format!("cluster map epoch {epoch}: {domains} nodes take shards"),
                (_, Some(pool)) => format!("cluster map epoch {epoch}: {domains} nodes of pool {pool} take shards"),
            };
            let (wanted, got) = (class.scheme, crate::class::honoured(class.scheme, domains));
            if got != wanted {
                warnings.push(format!(
                    "storage class {name}: {}+{} needs {} failure domains ({at}): new chunks are written {}+{}",
                    wanted.data,
                    wanted.parity,
                    wanted.total(),
                    got.data,
                    got.parity
                ));
            }
        }
        warnings
    }

    /// Whether the metadata accepts writes.
    pub fn is_ready(&self) -> bool {
        self.inner.meta.is_ready()
    }

    /// Stops the metadata node. In-flight operations fail with [`Error::Unavailable`].
    pub async fn shutdown(&self) {
        self.inner.meta.shutdown().await;
    }

    /// Body bytes reserved in the memory budget right now.
    pub fn memory_reserved(&self) -> u64 {
        self.inner.budget.reserved()
    }

    /// Space used, summed over the disks; fails if a disk cannot be asked.
    pub async fn stats(&self) -> Result<StoreStats> {
        let mut s = StoreStats::default();
        for h in self.disk_health().await {
            let ds = h?.stats;
            s.shards += ds.shards;
            s.live_bytes += ds.live_bytes;
            s.disk_bytes += ds.disk_bytes;
        }
        Ok(s)
    }

    /// The health of every disk, in placement order (all asked at once).
    pub async fn disk_health(&self) -> Vec<Result<DiskHealth>> {
        let disks = match self.inner.layout.disks().await {
            Ok(d) => d,
            Err(e) => return vec![Err(e)],
        };
        futures::future::join_all(disks.into_iter().map(|d| async move {
            match d.store {
                Some(s) => Ok(s.health().await?),
                None => Err(Error::Unavailable(format!("{} unreachable", d.disk))),
            }
        }))
        .await
    }

    /// Validates `cmd` (a malformed command never reaches the log) and proposes it.
    pub(crate) async fn propose(&self, cmd: Command) -> Result<Response> {
        cmd.validate().map_err(|e| Error::Invalid(e.to_string()))?;
        match self.inner.meta.propose(cmd).await? {
            Response::Failed(e) => Err(e.into()),
            r => Ok(r),
        }
    }

    /// Proposes a write of staged chunks in what its upload saw of space reclamation. A commit
    /// that meets chunks a collection pass has claimed waits for the pass to give them back
    /// (it does for chunks an upload of this process uses) and is proposed again; the caller
    /// sees an error only if the chunks were really deleted (a collector elsewhere, or an
    /// upload outliving the grace period).
    pub(crate) async fn propose_fenced(&self, command: Command, staging: &crate::write::Staging) -> Result<Response> {
        let mut attempts = 0;
        loop {
            let cmd = Command::Placed {
                placement: staging.placement(),
                command: Box::new(Command::Fenced {
                    fence: staging.fence(),
                    command: Box::new(command.clone()),
                }),
            };
            cmd.validate().map_err(|e| Error::Invalid(e.to_string()))?;
            match self.inner.meta.propose(cmd).await? {
                Response::Failed(MetaError::ChunksGone(ids)) if attempts < COMMIT_ATTEMPTS => {
                    attempts += 1;
                    self.wait_until_not_deleting(ids).await?;
                }
                Response::Failed(e) => return Err(e.into()),
                r => return Ok(r),
            }
        }
    }

    /// Waits (bounded) until none of `ids` is claimed by a collection pass.
    async fn wait_until_not_deleting(&self, ids: Vec<cairn_types::ChunkId>) -> Result<()> {
        let deadline = std::time::Instant::now() + crate::write::COLLECTION_WAIT;
        loop {
            let changed = self.inner.gc_changed.notified();
            let deleting = self
                .inner
                .meta
                .chunks(ids.clone())
                .await?
                .iter()
                .any(|s| matches!(s.mark, Some(cairn_meta::GcMark::Deleting { .. })));
            if !deleting {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Unavailable("chunks of the upload are being collected".into()));
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), changed).await;
        }
    }

    // ---- buckets ----

    /// Creates a bucket owned by `owner`.
    pub async fn create_bucket(&self, name: &BucketName, owner: &str) -> Result<()> {
        let bucket = BucketRecord {
            name: name.to_string(),
            owner: owner.to_string(),
            created: now_millis(),
        };
        let name = bucket.name.clone();
        let r = self.propose(Command::CreateBucket { bucket }).await.map(drop);
        self.inner.buckets.forget(&name);
        r
    }

    /// Deletes an empty bucket.
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        let r = self
            .propose(Command::DeleteBucket { name: name.into() })
            .await
            .map(drop);
        self.inner.buckets.forget(name);
        r
    }

    /// A bucket, or `NoSuchBucket` (a linearizable read).
    pub async fn bucket(&self, name: &str) -> Result<Bucket> {
        self.inner
            .meta
            .bucket(name)
            .await?
            .map(Bucket::from)
            .ok_or(Error::NoSuchBucket)
    }

    /// A bucket as cached while the metadata's access version is unchanged, or `NoSuchBucket`:
    /// for authorising a request, so that a steady stream of requests costs no metadata round
    /// trip for it. A bucket deleted or re-created through another gateway may be seen as it
    /// was for at most [`ACCESS_CACHE_BOUND`](crate::ACCESS_CACHE_BOUND) (through this store:
    /// at once). Never use it to decide where a write goes: [`Store::bucket_guard`] reads the
    /// bucket as it is.
    pub async fn bucket_for_access(&self, name: &str) -> Result<Bucket> {
        let version = self
            .inner
            .access
            .current(&*self.inner.meta, std::time::Instant::now())
            .await?;
        let b = match self.inner.buckets.get(name, version) {
            Some(b) => b,
            None => {
                let generation = self.inner.buckets.generation();
                let b = self.inner.meta.bucket(name).await?;
                self.inner.buckets.put(name, b.clone(), version, generation);
                b
            }
        };
        b.map(Bucket::from).ok_or(Error::NoSuchBucket)
    }

    /// A guard for writing into bucket `name` as it is now, or `NoSuchBucket`.
    pub async fn bucket_guard(&self, name: &str) -> Result<BucketGuard> {
        let b = self.bucket(name).await?;
        Ok(BucketGuard {
            name: b.name,
            owner: b.owner,
            created: b.created,
        })
    }

    /// Every bucket, by name.
    pub async fn buckets(&self) -> Result<Vec<Bucket>> {
        Ok(self.inner.meta.buckets().await?.into_iter().map(Bucket::from).collect())
    }

    // ---- objects ----

    /// The current version of an object. `NoSuchBucket` or `NoSuchKey` if absent.
    pub async fn object(&self, bucket: &str, key: &str) -> Result<Object> {
        match self.inner.meta.object(bucket, key).await? {
            InBucket::NoBucket => Err(Error::NoSuchBucket),
            InBucket::Absent => Err(Error::NoSuchKey),
            InBucket::Found(o) => Ok(o.into()),
        }
    }

    /// Makes staged data the current version of `bucket/key`. Only this makes it visible.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_object(
        &self,
        bucket: &BucketGuard,
        key: &str,
        staged: Staged,
        attrs: ObjectAttrs,
        checksums: Checksums,
        owner: &str,
        conditions: PutConditions,
    ) -> Result<Object> {
        let scheme = staged.scheme();
        let object = ObjectRecord {
            version_id: uuid::Uuid::now_v7().simple().to_string(),
            size: staged.size,
            etag: staged.md5_hex(),
            last_modified: now_millis(),
            attrs,
            checksums,
            body: staged.body,
            parts: Vec::new(),
            owner: owner.to_string(),
            storage_class: staged.class,
        };
        let command = bucket.wrap(Command::PutObject {
            bucket: bucket.name.clone(),
            key: key.into(),
            object: Box::new(object),
            written: staged.written,
            scheme,
            if_none_match: conditions.if_none_match,
            if_match: conditions.if_match,
        });
        // The registration (`staged.staging`) lives until the command is applied.
        let r = self.propose_fenced(command, &staged.staging.staging).await?;
        match r {
            Response::Object(o) => Ok((*o).into()),
            other => Err(Error::Storage(format!("unexpected response {other}"))),
        }
    }

    /// Copies `source_bucket/source_key` to `bucket/key`, sharing its chunks and manifest
    /// pages: no data is read or written, and the copy keeps the source's storage class (to
    /// copy into another class, stage the source's bytes with [`Store::stage_copy`]). `source`
    /// is the version the caller read (and checked copy conditions against); if it was
    /// replaced meanwhile nothing is copied and the answer is [`Error::SourceChanged`].
    /// `attrs` replaces the source's attributes when given.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object(
        &self,
        source_bucket: &str,
        source_key: &str,
        source: &Object,
        bucket: &BucketGuard,
        key: &str,
        attrs: Option<ObjectAttrs>,
        owner: &str,
    ) -> Result<Object> {
        let r = self
            .propose(bucket.wrap(Command::CopyObject {
                source_bucket: source_bucket.into(),
                source_key: source_key.into(),
                source_version: source.version_id.clone(),
                bucket: bucket.name.clone(),
                key: key.into(),
                version_id: uuid::Uuid::now_v7().simple().to_string(),
                last_modified: now_millis(),
                attrs,
                owner: owner.into(),
            }))
            .await?;
        match r {
            Response::Object(o) => Ok((*o).into()),
            other => Err(Error::Storage(format!("unexpected response {other}"))),
        }
    }

    /// Where part `number` of a multipart `object` lies, or `None` if it has no such part.
    pub async fn part_extent(&self, object: &Object, number: u32) -> Result<Option<PartRange>> {
        match &object.body {
            Body::Paged(m) if m.parts > 0 => Ok(self
                .inner
                .meta
                .part_extent(&object.version_id, number)
                .await?
                .map(PartRange::from)),
            _ => Ok(object
                .parts
                .iter()
                .find(|p| p.number == number)
                .copied()
                .map(PartRange::from)),
        }
    }

    /// Deletes objects; returns which existed. Deleting a missing key is not an error.
    pub async fn delete_objects(&self, bucket: &str, keys: Vec<String>) -> Result<Vec<bool>> {
        match self
            .propose(Command::DeleteObjects {
                bucket: bucket.into(),
                keys,
            })
            .await?
        {
            Response::Deleted(v) => Ok(v),
            other => Err(Error::Storage(format!("unexpected response {other:?}"))),
        }
    }

    /// One page of a listing, in S3 order.
    pub async fn list_objects(&self, bucket: &str, req: ListRequest) -> Result<ListPage> {
        let query = ListQuery {
            prefix: req.prefix,
            delimiter: req.delimiter,
            after: req.after,
            max_keys: req.max_keys,
        };
        self.inner
            .meta
            .list_objects(bucket, &query)
            .await?
            .map(ListPage::from)
            .ok_or(Error::NoSuchBucket)
    }

    // ---- keys ----

    /// Adds an access key.
    pub async fn create_key(&self, key: AccessKey) -> Result<()> {
        let id = key.access_key.clone();
        let r = self.propose(Command::CreateKey { key: key.into() }).await.map(drop);
        self.inner.keys.forget(&id);
        r
    }

    /// Removes an access key.
    pub async fn delete_key(&self, access_key: &str) -> Result<()> {
        let r = self
            .propose(Command::DeleteKey {
                access_key: access_key.into(),
            })
            .await
            .map(drop);
        self.inner.keys.forget(access_key);
        r
    }

    /// An access key, if it exists, as cached while the metadata's access version is
    /// unchanged (a key deleted through another gateway works here for at most
    /// [`ACCESS_CACHE_BOUND`](crate::ACCESS_CACHE_BOUND); through this store it stops at once).
    pub async fn key(&self, access_key: &str) -> Result<Option<AccessKey>> {
        let version = self
            .inner
            .access
            .current(&*self.inner.meta, std::time::Instant::now())
            .await?;
        if let Some(k) = self.inner.keys.get(access_key, version) {
            return Ok(k.map(AccessKey::from));
        }
        let generation = self.inner.keys.generation();
        let k = self.inner.meta.access_key(access_key).await?;
        self.inner.keys.put(access_key, k.clone(), version, generation);
        Ok(k.map(AccessKey::from))
    }

    /// Every access key.
    pub async fn keys(&self) -> Result<Vec<AccessKey>> {
        Ok(self
            .inner
            .meta
            .access_keys()
            .await?
            .into_iter()
            .map(AccessKey::from)
            .collect())
    }
}
