//! Staging: turning a byte stream into durable, not yet referenced chunks.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_chunk::{Chunker, Codec};
use cairn_meta::{Body, ChunkRef, GcMark, WriteFence, WritePlacement};
use cairn_meta_client::{ChunkState, MetaClient};
use cairn_shard_store::ShardKey;
use cairn_types::{ChunkId, ErasureScheme};
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::budget::Reservation;
use crate::lookup::LookupBatcher;
use crate::store::Inner;
use crate::{Error, Result, Store};

/// Data written by [`Store::stage`] and not yet committed: its shards are durable, but no
/// metadata references them. Commit it with [`Store::commit_object`] or
/// [`Store::commit_part`]; dropped, it is garbage for the collector.
///
/// Its fields are private: only `stage` makes one, so a commit can only reference chunks that
/// the store itself wrote or found already stored.
#[derive(Clone, Debug)]
pub struct Staged {
    pub(crate) size: u64,
    pub(crate) md5: [u8; 16],
    pub(crate) body: Body,
    pub(crate) written: Vec<ChunkId>,
    /// The storage class it was staged in (`None`: `STANDARD`).
    pub(crate) class: Option<String>,
    /// Keeps the upload's chunks in the store's registry until it is committed or dropped.
    pub(crate) staging: Arc<Registered>,
}

/// Where an upload writes its chunks: the layout's epoch, its class's pool and the scheme the
/// class gets there, fixed when it begins.
pub(crate) struct Target {
    epoch: u64,
    codec: Arc<Codec>,
    /// How its chunks are named, with the pool they go to.
    naming: crate::class::ChunkNaming,
}

impl Target {
    /// The target of an upload of `class` now: the current epoch, the class's pool, and its
    /// scheme as the pool can honour it there.
    async fn now(inner: &Inner, class: crate::class::StorageClass) -> Result<Self> {
        let epoch = inner.layout.epoch().await?;
        let domains = inner.layout.domains(epoch, class.pool.as_deref()).await?;
        if domains == 0 {
            // Before any byte of the body is read: nodes may join (or end draining) later.
            return Err(Error::Unavailable(format!(
                "no storage node of pool {} takes shards",
                class.pool_name()
            )));
        }
        let scheme = crate::class::honoured(class.scheme, domains);
        Ok(Self {
            epoch,
            codec: inner.codec_for(scheme),
            naming: inner.naming(scheme, class.pool),
        })
    }

    fn scheme(&self) -> ErasureScheme {
        self.codec.scheme()
    }

    fn pool(&self) -> Option<&str> {
        self.naming.pool()
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("epoch", &self.epoch)
            .field("naming", &self.naming)
            .finish()
    }
}

/// What one upload has stored or referenced so far, while it is staged: the collector never
/// deletes a chunk an upload in this process uses, and never purges a collection mark that
/// an upload in this process might still rely on.
#[derive(Debug)]
pub(crate) struct Staging {
    /// Every chunk id of the upload (written or found stored).
    chunks: Mutex<HashSet<ChunkId>>,
    /// Collection passes ended when the upload first looked at the metadata.
    passes_done: OnceLock<u64>,
    /// Chunks found `Gone` (with that pass) before being written again.
    seen_gone: Mutex<Vec<(ChunkId, u64)>>,
    /// The upload's chunk lookups, batched.
    lookups: Arc<LookupBatcher>,
    /// Where it writes.
    target: Target,
    /// Chunks written with shards not at home: (chunk, missing — bit `i` for shard `i` —,
    /// moved with the disk holding each).
    exceptions: Mutex<Vec<cairn_meta::ShardExceptions>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Staging {
    fn new(target: Target) -> Self {
        Self {
            chunks: Default::default(),
            passes_done: Default::default(),
            seen_gone: Default::default(),
            lookups: Default::default(),
            target,
            exceptions: Default::default(),
        }
    }

    /// Adds `id`; true if the upload had not met it before.
    fn note(&self, id: ChunkId) -> bool {
        locked(&self.chunks).insert(id)
    }

    /// Whether the upload uses chunk `id`.
    pub(crate) fn uses(&self, id: &ChunkId) -> bool {
        locked(&self.chunks).contains(id)
    }

    /// The ended passes seen before the upload's first look at a chunk, if it has looked.
    pub(crate) fn passes_done(&self) -> Option<u64> {
        self.passes_done.get().copied()
    }

    /// Reads the ended passes once, before the upload writes anything.
    async fn observe_passes(&self, meta: &dyn MetaClient) -> Result<()> {
        if self.passes_done.get().is_none() {
            let done = meta.gc_info().await?.done;
            // A racing first read keeps the value stored first, read before either writes.
            let _ = self.passes_done.set(done);
        }
        Ok(())
    }

    /// The metadata's state of chunk `id`, looked up in a batch with the upload's other
    /// lookups made meanwhile.
    async fn chunk_state(&self, meta: &Arc<dyn MetaClient>, id: ChunkId) -> Result<ChunkState> {
        let meta = meta.clone();
        self.lookups
            .get(id, move |ids| {
                let meta = meta.clone();
                async move { meta.chunks(ids).await }
            })
            .await
            .map_err(Error::from)
    }

    /// Where the commit says this upload's written chunks are.
    pub(crate) fn placement(&self) -> WritePlacement {
        WritePlacement {
            epoch: self.target.epoch,
            exceptions: locked(&self.exceptions).clone(),
            pool: self.target.pool().map(str::to_string),
        }
    }

    /// What the commit tells the metadata about this upload's writes.
    pub(crate) fn fence(&self) -> WriteFence {
        WriteFence {
            passes_done: self.passes_done().unwrap_or(0),
            seen_gone: locked(&self.seen_gone).clone(),
        }
    }
}

/// An upload's entry in the store's registry of stagings; removed when dropped.
#[derive(Debug)]
pub(crate) struct Registered {
    inner: std::sync::Weak<Inner>,
    id: u64,
    pub(crate) staging: Arc<Staging>,
}

impl Registered {
    fn new(inner: &Arc<Inner>, target: Target) -> Arc<Self> {
        let staging = Arc::new(Staging::new(target));
        let id = inner.next_staging.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        locked(&inner.stagings).insert(id, staging.clone());
        Arc::new(Self {
            inner: Arc::downgrade(inner),
            id,
            staging,
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            locked(&inner.stagings).remove(&self.id);
        }
    }
}

impl Staged {
    /// Total size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// MD5 of the content (the S3 ETag of a single-part object).
    pub fn md5(&self) -> &[u8; 16] {
        &self.md5
    }

    /// Whether the content is kept inline in the metadata (no chunks).
    pub fn is_inline(&self) -> bool {
        matches!(self.body, Body::Inline(_))
    }

    /// The hex MD5, as S3 shows it in ETags.
    pub fn md5_hex(&self) -> String {
        hex::encode(self.md5)
    }

    /// The scheme its written chunks have (the one its upload began with).
    pub(crate) fn scheme(&self) -> ErasureScheme {
        self.staging.staging.target.scheme()
    }

    /// The storage class it was staged in.
    pub fn storage_class(&self) -> &str {
        self.class.as_deref().unwrap_or(crate::class::STANDARD)
    }
}

type ChunkTask = JoinHandle<Result<(ChunkRef, bool)>>;

impl Store {
    /// Streams `body` into the store in the `STANDARD` class: chunks it, skips chunks already
    /// stored, erasure-codes and writes the rest, with at most `write_concurrency` chunks in
    /// flight. Bodies up to `inline_max` bytes are kept inline when `allow_inline`. Fails with
    /// [`Error::TooLarge`] past `max_size` bytes and [`Error::Body`] if the stream fails.
    pub async fn stage<S, E>(&self, body: S, max_size: u64, allow_inline: bool) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        self.stage_sized(crate::class::STANDARD, body, max_size, allow_inline, None)
            .await
    }

    /// [`Store::stage`] in storage class `class` (an unknown one is
    /// [`Error::InvalidStorageClass`], before any byte is read), for a body whose length may
    /// be declared (an HTTP Content-Length): a small body reserves only what it needs from the
    /// memory budget. A body longer than declared fails with [`Error::Body`].
    ///
    /// Before reading the body, the upload reserves (waiting for room, see
    /// [`StoreConfig::memory_budget`](crate::StoreConfig)) its chunker buffer and one chunk in
    /// flight; further chunks run in parallel only if the budget has room at that moment, so an
    /// upload never waits for memory while holding some.
    pub async fn stage_sized<S, E>(
        &self,
        class: &str,
        body: S,
        max_size: u64,
        allow_inline: bool,
        declared: Option<u64>,
    ) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let (class, wanted) = self.inner.class(class)?;
        let target = Target::now(&self.inner, wanted).await?;
        let base = self.upload_base(max_size, declared, target.scheme());
        let _base = self.inner.budget.reserve(base).await?;
        let body = body.map(|r| r.map_err(|e| Error::Body(e.to_string())));
        self.stage_reserved((class, target), body, max_size, allow_inline, declared)
            .await
    }

    /// Stages bytes `range` of `source` (a version the caller read) as new data in storage
    /// class `class`, for UploadPartCopy and copies into another class: chunks identical to
    /// the source's (of the same class) are deduplicated, so an aligned copy writes nothing
    /// new. The copy's whole working set — the upload's and the read-ahead of
    /// the source — is reserved in one acquisition, so copies cannot hold part of the budget
    /// while they wait for the rest.
    pub async fn stage_copy(
        &self,
        class: &str,
        source: &crate::Object,
        range: std::ops::Range<u64>,
        max_size: u64,
    ) -> Result<Staged> {
        let inner = &self.inner;
        let (class, wanted) = inner.class(class)?;
        let target = Target::now(inner, wanted).await?;
        let length = range.end.saturating_sub(range.start);
        let chunk = (inner.config.chunker.max_size as u64).min(length);
        let reading = (inner.config.read_ahead as u64 + 1) * inner.chunk_cost(chunk);
        let _all = inner
            .budget
            .reserve(self.upload_base(max_size, Some(length), target.scheme()) + reading)
            .await?;
        let body = self.read_with(source, range, false);
        self.stage_reserved((class, target), body, max_size, false, Some(length))
            .await
    }

    /// What an upload writing with `scheme` reserves before reading its body: its chunker
    /// buffer and one chunk in flight.
    fn upload_base(&self, max_size: u64, declared: Option<u64>, scheme: ErasureScheme) -> u64 {
        let inner = &self.inner;
        let limit = declared.map_or(max_size, |d| d.min(max_size));
        let buffer = limit.min(inner.config.chunker.max_size as u64);
        buffer + crate::store::chunk_cost_in(buffer, scheme)
    }

    /// The body of [`Store::stage_sized`], once the caller holds the upload's base reservation.
    /// `body`'s errors keep their kind: a client's broken stream arrives as [`Error::Body`], a
    /// copy's unreadable source as the read's own error.
    async fn stage_reserved<S>(
        &self,
        (class, target): (Option<String>, Target),
        body: S,
        max_size: u64,
        allow_inline: bool,
        declared: Option<u64>,
    ) -> Result<Staged>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let inner = &self.inner;
        let registered = Registered::new(inner, target);
        let mut body = std::pin::pin!(body);
        let mut chunker = Chunker::new(inner.config.chunker);
        let mut size = 0u64;
        let mut in_flight = InFlight::new(registered.staging.clone());
        let mut emitted = false;
        while let Some(item) = body.next().await {
            let data = item?;
            size += data.len() as u64;
            if size > max_size {
                return Err(Error::TooLarge(size));
            }
            if declared.is_some_and(|d| size > d) {
                return Err(Error::Body("the body is longer than its declared length".into()));
            }
            for chunk in chunker.push(&data) {
                emitted = true;
                in_flight.push(inner, chunk).await?;
            }
        }
        let tail = chunker.finish();
        if !emitted && allow_inline && size <= inner.config.inline_max as u64 {
            let mut all = Vec::with_capacity(size as usize);
            for t in tail {
                all.extend_from_slice(&t);
            }
            return Ok(Staged {
                size,
                md5: Md5::digest(&all).into(),
                body: Body::Inline(all),
                written: Vec::new(),
                class,
                staging: registered,
            });
        }
        for chunk in tail {
            in_flight.push(inner, chunk).await?;
        }
        let (refs, written, md5) = in_flight.finish().await?;
        Ok(Staged {
            size,
            md5,
            body: Body::Chunks(refs),
            written,
            class,
            staging: registered,
        })
    }
}

/// The chunks of one upload being stored, oldest first, and the references of those done.
/// Dropped with chunks still running (the upload failed, or its client went away and the
/// request was cancelled), it aborts them: their shards are garbage for the collector.
///
/// It also computes the upload's MD5 (its ETag) off the request's task: each chunk's task
/// updates the digest on the blocking pool once the previous chunk's update is done, so the
/// digest covers the chunks in stream order while the upload reads and chunks on.
struct InFlight {
    tasks: VecDeque<ChunkTask>,
    refs: Vec<ChunkRef>,
    written: Vec<ChunkId>,
    /// Chunks of this upload already stored or being stored: a chunk repeated within the
    /// upload (a run of zeros) is written once.
    staging: Arc<Staging>,
    /// The digest after the last chunk pushed, once its task has computed it.
    md5: oneshot::Receiver<Md5>,
}

/// One link of an upload's MD5 chain: the digest after the previous chunk, and where to hand
/// the digest after this one.
struct Md5Link {
    prev: oneshot::Receiver<Md5>,
    next: oneshot::Sender<Md5>,
}

impl Md5Link {
    /// Waits for the previous chunk's digest, adds `chunk` to it on the blocking pool and hands
    /// it on. Fails if an earlier chunk's task failed or was aborted.
    async fn update(self, chunk: Bytes) -> Result<()> {
        let mut h = self
            .prev
            .await
            .map_err(|_| Error::Storage("an earlier chunk of the upload failed".into()))?;
        let h = tokio::task::spawn_blocking(move || {
            h.update(&chunk);
            h
        })
        .await
        .map_err(|e| Error::Storage(e.to_string()))?;
        let _ = self.next.send(h);
        Ok(())
    }
}

impl InFlight {
    fn new(staging: Arc<Staging>) -> Self {
        let (tx, md5) = oneshot::channel();
        let _ = tx.send(Md5::new());
        Self {
            tasks: VecDeque::new(),
            refs: Vec::new(),
            written: Vec::new(),
            staging,
            md5,
        }
    }

    /// Starts the task that stores `chunk` and adds it to the digest, as the next link of the
    /// MD5 chain.
    fn spawn(&mut self, inner: &Arc<Inner>, chunk: Bytes, reserved: Option<Reservation>) {
        let (next, rx) = oneshot::channel();
        let link = Md5Link {
            prev: std::mem::replace(&mut self.md5, rx),
            next,
        };
        self.tasks.push_back(tokio::spawn(store_chunk(
            inner.clone(),
            chunk,
            reserved,
            link,
            self.staging.clone(),
        )));
    }

    /// Starts storing `chunk`. With no chunk in flight it runs on the upload's base
    /// reservation; otherwise it needs room in the budget now (never waited for) and a free
    /// slot of `write_concurrency`, and without them the oldest chunk in flight is finished
    /// first.
    async fn push(&mut self, inner: &Arc<Inner>, chunk: Bytes) -> Result<()> {
        loop {
            if self.tasks.is_empty() {
                self.spawn(inner, chunk, None);
                return Ok(());
            }
            if self.tasks.len() < inner.config.write_concurrency {
                let cost = crate::store::chunk_cost_in(chunk.len() as u64, self.staging.target.scheme());
                if let Some(r) = inner.budget.try_reserve(cost) {
                    self.spawn(inner, chunk, Some(r));
                    return Ok(());
                }
            }
            self.finish_oldest().await?;
        }
    }

    /// Waits for the oldest chunk in flight, if any, and records its reference.
    async fn finish_oldest(&mut self) -> Result<()> {
        let Some(task) = self.tasks.pop_front() else {
            return Ok(());
        };
        let (r, wrote) = task.await.map_err(|e| Error::Storage(e.to_string()))??;
        self.refs.push(r);
        if wrote {
            self.written.push(r.id);
        }
        Ok(())
    }

    /// Waits for every chunk; returns the references in order, the chunks written and the MD5
    /// of all the chunks' bytes.
    async fn finish(mut self) -> Result<(Vec<ChunkRef>, Vec<ChunkId>, [u8; 16])> {
        while !self.tasks.is_empty() {
            self.finish_oldest().await?;
        }
        let (_, done) = oneshot::channel();
        let md5 = std::mem::replace(&mut self.md5, done)
            .await
            .map_err(|_| Error::Storage("the upload's digest was not computed".into()))?;
        Ok((
            std::mem::take(&mut self.refs),
            std::mem::take(&mut self.written),
            md5.finalize().into(),
        ))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Stores one chunk of an upload and adds it to the upload's MD5, the two at once. `_reserved`
/// is the chunk's share of the memory budget, given back when both are done.
async fn store_chunk(
    inner: Arc<Inner>,
    chunk: Bytes,
    _reserved: Option<Reservation>,
    md5: Md5Link,
    staging: Arc<Staging>,
) -> Result<(ChunkRef, bool)> {
    let (stored, hashed) = tokio::join!(write_chunk(inner, chunk.clone(), staging), md5.update(chunk));
    let stored = stored?;
    hashed?;
    Ok(stored)
}

/// What an upload found of a chunk before storing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    /// Stored with a live reference, or met earlier in this upload: reference it.
    Stored,
    /// To be written; `Some(pass)` if collection pass `pass` deleted it.
    Write(Option<u64>),
    /// A collection pass is deleting its shards right now: wait until it is done.
    Deleting,
}

async fn look(meta: &dyn MetaClient, id: ChunkId) -> Result<Look> {
    let state = meta
        .chunks(vec![id])
        .await?
        .pop()
        .ok_or_else(|| Error::Storage("chunk lookup answered nothing".into()))?;
    Ok(look_at(&state))
}

fn look_at(state: &ChunkState) -> Look {
    if state.record.is_some_and(|r| r.refcount > 0) {
        return Look::Stored;
    }
    match state.mark {
        Some(GcMark::Deleting { .. }) => Look::Deleting,
        Some(GcMark::Gone { pass }) => Look::Write(Some(pass)),
        _ => Look::Write(None),
    }
}

/// How long an upload waits for a collection pass to finish deleting a chunk it is about to
/// write again, before it fails with [`Error::Unavailable`].
pub(crate) const COLLECTION_WAIT: Duration = Duration::from_secs(60);

/// Hashes one chunk; unless a live record has it or this upload already stores it, encodes it
/// and writes its shards, each to its disk, in parallel. A chunk whose shards a collection
/// pass is deleting is written once the pass has dropped it. Returns the reference and whether
/// shards were written.
async fn write_chunk(inner: Arc<Inner>, chunk: Bytes, staging: Arc<Staging>) -> Result<(ChunkRef, bool)> {
    let len = chunk.len() as u32;
    let data = chunk.clone();
    let target = &staging.target;
    let naming = target.naming.clone();
    let id = tokio::task::spawn_blocking(move || naming.id(&data))
        .await
        .map_err(|e| Error::Storage(e.to_string()))?;
    // In the registry before the look: a pass that claims the chunk after this sees it in
    // use and gives it back. A chunk met earlier in this upload is referenced again.
    let mut found = if staging.note(id) {
        staging.observe_passes(&*inner.meta).await?;
        look_at(&staging.chunk_state(&inner.meta, id).await?)
    } else {
        Look::Stored
    };
    if found == Look::Deleting {
        let deadline = Instant::now() + COLLECTION_WAIT;
        while found == Look::Deleting {
            let changed = inner.gc_changed.notified();
            if Instant::now() >= deadline {
                return Err(Error::Unavailable("a chunk of the upload is being collected".into()));
            }
            // Woken by this process's collector; the timeout covers one elsewhere.
            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
            found = look(&*inner.meta, id).await?;
        }
    }
    let shards = match found {
        Look::Write(_) => {
            let (codec, data) = (target.codec.clone(), chunk.clone());
            Some(
                tokio::task::spawn_blocking(move || codec.encode(&data))
                    .await
                    .map_err(|e| Error::Storage(e.to_string()))?,
            )
        }
        _ => None,
    };
    if let Look::Write(Some(pass)) = found {
        locked(&staging.seen_gone).push((id, pass));
    }
    let r = ChunkRef { id, len };
    let Some(shards) = shards else {
        metrics::counter!("cairn_chunks_deduplicated_total").increment(1);
        return Ok((r, false));
    };
    let slots = inner
        .layout
        .place(&id, target.epoch, target.pool(), shards.len())
        .await?;
    let (missing, moved) = put_shards(&inner, id, target, slots, shards).await?;
    if missing != 0 || !moved.is_empty() {
        locked(&staging.exceptions).push((id, missing, moved));
    }
    metrics::counter!("cairn_chunks_written_total").increment(1);
    Ok((r, true))
}

/// Writes shard `i` to `slots[i]` (its home), all at once; a shard whose home fails goes to
/// the first spare disk that takes it (other disks of the layout, then the homes that took
/// their own shard). Succeeds when all are durable, or when at least
/// [`StoreConfig::min_shards`](crate::StoreConfig::min_shards) are and the others have failed
/// or had [`StoreConfig::straggler_wait`](crate::StoreConfig) more to finish. Answers the
/// shards not written (bit `i` for shard `i`) and those moved (with their disk), which the
/// commit records for repair.
async fn put_shards(
    inner: &Inner,
    id: ChunkId,
    target: &Target,
    slots: Vec<crate::layout::Slot>,
    shards: Vec<Bytes>,
) -> Result<(u32, cairn_meta::MovedShards)> {
    use futures::stream::FuturesUnordered;
    let total = shards.len();
    let required = inner.config.min_shards(target.scheme());
    let put = |i: usize, slot: crate::layout::Slot, shard: Bytes| async move {
        let key = ShardKey {
            chunk: id,
            index: i as u8,
        };
        let outcome = match &slot.store {
            Some(disk) => disk.put(key, shard).await.map_err(Error::from),
            None => Err(Error::Unavailable(format!("{} unreachable", slot.disk))),
        };
        if let Err(e) = &outcome {
            tracing::warn!(chunk = %id, shard = i, disk = %slot.disk, error = %e, "shard not written");
        }
        (i, outcome)
    };
    let mut pending: FuturesUnordered<_> = shards
        .iter()
        .cloned()
        .zip(slots.iter().cloned())
        .enumerate()
        .map(|(i, (shard, slot))| put(i, slot, shard))
        .collect();
    let mut home = 0u32;
    let mut failed: Vec<usize> = Vec::new();
    let mut first_error = None;
    let straggle = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(straggle);
    let mut straggling = false;
    loop {
        tokio::select! {
            next = pending.next() => match next {
                Some((i, Ok(()))) => {
                    home |= 1 << i;
                    let written = home.count_ones() as usize;
                    if written >= required && !straggling && written != total {
                        straggling = true;
                        straggle.as_mut().reset(tokio::time::Instant::now() + inner.config.straggler_wait);
                    }
                }
                Some((i, Err(e))) => {
                    failed.push(i);
                    first_error.get_or_insert(e);
                }
                None => break,
            },
            _ = &mut straggle, if straggling => break,
        }
    }
    // Shards whose home failed try the spares, each for at most the straggler wait (a spare on
    // a stopped node must not hold the upload); shards still in flight are left missing.
    let mut moved: Vec<(u8, String)> = Vec::new();
    if !failed.is_empty() {
        failed.sort_unstable();
        let mut spares = inner
            .layout
            .spares(&id, target.epoch, target.pool(), total)
            .await
            .unwrap_or_default();
        spares.extend(
            slots
                .iter()
                .enumerate()
                .filter(|(i, _)| home & (1 << i) != 0)
                .map(|(_, s)| s.clone()),
        );
        spares.retain(|s| s.store.is_some());
        let mut next = 0usize;
        for &i in &failed {
            for _ in 0..spares.len() {
                let spare = spares[next % spares.len()].clone();
                next += 1;
                let tried = tokio::time::timeout(inner.config.straggler_wait, put(i, spare.clone(), shards[i].clone()));
                if let Ok((_, Ok(()))) = tried.await {
                    moved.push((i as u8, spare.disk.to_string()));
                    break;
                }
            }
        }
    }
    let all = if total >= 32 { u32::MAX } else { (1u32 << total) - 1 };
    let moved_mask = moved.iter().fold(0u32, |m, (i, _)| m | 1 << i);
    let missing = all & !home & !moved_mask;
    let written = (home | moved_mask).count_ones() as usize;
    if written < required {
        let why = first_error.map_or_else(String::new, |e| format!(": {e}"));
        // Too few disks answered: a retry may find them back.
        return Err(Error::Unavailable(format!(
            "chunk {id}: {written} of {total} shards written, {required} needed{why}"
        )));
    }
    if missing != 0 || !moved.is_empty() {
        metrics::counter!("cairn_chunks_written_degraded_total").increment(1);
        tracing::warn!(chunk = %id, missing = missing.count_ones(), moved = moved.len(), "chunk written with shards away from home; queued for repair");
    }
    Ok((missing, moved))
}
