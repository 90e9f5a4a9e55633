//! Staging: turning a byte stream into durable, not yet referenced chunks.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use cairn_chunk::{chunk_id, Chunker};
use cairn_meta::{query, Body, ChunkRef, ObjectRecord};
use cairn_shard_store::ShardKey;
use cairn_types::ChunkId;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::budget::Reservation;
use crate::placement::disk_for;
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
}

type ChunkTask = JoinHandle<Result<(ChunkRef, bool)>>;

impl Store {
    /// Streams `body` into the store: chunks it, skips chunks already stored, erasure-codes and
    /// writes the rest, with at most `write_concurrency` chunks in flight. Bodies up to
    /// `inline_max` bytes are kept inline when `allow_inline`. Fails with
    /// [`Error::TooLarge`] past `max_size` bytes and [`Error::Body`] if the stream fails.
    pub async fn stage<S, E>(&self, body: S, max_size: u64, allow_inline: bool) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        self.stage_sized(body, max_size, allow_inline, None).await
    }

    /// [`Store::stage`] for a body whose length is declared (an HTTP Content-Length): a small
    /// body reserves only what it needs from the memory budget. A body longer than declared
    /// fails with [`Error::Body`].
    ///
    /// Before reading the body, the upload reserves (waiting for room, see
    /// [`StoreConfig::memory_budget`](crate::StoreConfig)) its chunker buffer and one chunk in
    /// flight; further chunks run in parallel only if the budget has room at that moment, so an
    /// upload never waits for memory while holding some.
    pub async fn stage_sized<S, E>(
        &self,
        body: S,
        max_size: u64,
        allow_inline: bool,
        declared: Option<u64>,
    ) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let _base = self.inner.budget.reserve(self.upload_base(max_size, declared)).await?;
        let body = body.map(|r| r.map_err(|e| Error::Body(e.to_string())));
        self.stage_reserved(body, max_size, allow_inline, declared).await
    }

    /// Stages bytes `range` of `source` (a version the caller read) as new data, for
    /// UploadPartCopy: chunks identical to the source's are deduplicated, so an aligned copy
    /// writes nothing new. The copy's whole working set — the upload's and the read-ahead of
    /// the source — is reserved in one acquisition, so copies cannot hold part of the budget
    /// while they wait for the rest.
    pub async fn stage_copy(
        &self,
        source: &ObjectRecord,
        range: std::ops::Range<u64>,
        max_size: u64,
    ) -> Result<Staged> {
        let inner = &self.inner;
        let length = range.end.saturating_sub(range.start);
        let chunk = (inner.config.chunker.max_size as u64).min(length);
        let reading = (inner.config.read_ahead as u64 + 1) * inner.chunk_cost(chunk);
        let _all = inner
            .budget
            .reserve(self.upload_base(max_size, Some(length)) + reading)
            .await?;
        let body = self.read_with(source, range, false);
        self.stage_reserved(body, max_size, false, Some(length)).await
    }

    /// What an upload reserves before reading its body: its chunker buffer and one chunk in
    /// flight.
    fn upload_base(&self, max_size: u64, declared: Option<u64>) -> u64 {
        let inner = &self.inner;
        let limit = declared.map_or(max_size, |d| d.min(max_size));
        let buffer = limit.min(inner.config.chunker.max_size as u64);
        buffer + inner.chunk_cost(buffer)
    }

    /// The body of [`Store::stage_sized`], once the caller holds the upload's base reservation.
    /// `body`'s errors keep their kind: a client's broken stream arrives as [`Error::Body`], a
    /// copy's unreadable source as the read's own error.
    async fn stage_reserved<S>(
        &self,
        body: S,
        max_size: u64,
        allow_inline: bool,
        declared: Option<u64>,
    ) -> Result<Staged>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let inner = &self.inner;
        let mut body = std::pin::pin!(body);
        let mut chunker = Chunker::new(inner.config.chunker);
        let mut size = 0u64;
        let mut in_flight = InFlight::new();
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
    seen: Seen,
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
    fn new() -> Self {
        let (tx, md5) = oneshot::channel();
        let _ = tx.send(Md5::new());
        Self {
            tasks: VecDeque::new(),
            refs: Vec::new(),
            written: Vec::new(),
            seen: Seen::default(),
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
            self.seen.clone(),
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
                if let Some(r) = inner.budget.try_reserve(inner.chunk_cost(chunk.len() as u64)) {
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
    seen: Seen,
) -> Result<(ChunkRef, bool)> {
    let (stored, hashed) = tokio::join!(write_chunk(inner, chunk.clone(), seen), md5.update(chunk));
    let stored = stored?;
    hashed?;
    Ok(stored)
}

/// The chunk ids an upload has stored or is storing.
type Seen = Arc<std::sync::Mutex<HashSet<ChunkId>>>;

/// Hashes one chunk; unless a live record has it or this upload already stores it (`seen`),
/// encodes it and writes its shards, each to its disk, in parallel. Returns the reference and
/// whether shards were written.
async fn write_chunk(inner: Arc<Inner>, chunk: Bytes, seen: Seen) -> Result<(ChunkRef, bool)> {
    let len = chunk.len() as u32;
    let reader = inner.meta.reader();
    let codec = inner.codec.clone();
    let (id, shards) = tokio::task::spawn_blocking(move || {
        let id = chunk_id(&chunk);
        // The first occurrence in this upload writes the chunk (and is among the chunks the
        // commit declares written); a later one references it. Held only for the insert.
        let first = seen.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        let exists = !first || query::chunk(&*reader, &id)?.is_some_and(|r| r.refcount > 0);
        Ok::<_, cairn_meta::MetaError>((id, (!exists).then(|| codec.encode(&chunk))))
    })
    .await
    .map_err(|e| Error::Storage(e.to_string()))??;
    let r = ChunkRef { id, len };
    let Some(shards) = shards else {
        metrics::counter!("cairn_chunks_deduplicated_total").increment(1);
        return Ok((r, false));
    };
    let n = inner.disks.len();
    let writes = shards.into_iter().enumerate().map(|(i, shard)| {
        let disk = inner.disks[disk_for(&id, i, n)].clone();
        async move {
            disk.put(
                ShardKey {
                    chunk: id,
                    index: i as u8,
                },
                shard,
            )
            .await
            .map_err(|e| Error::Storage(e.to_string()))
        }
    });
    futures::future::try_join_all(writes).await?;
    metrics::counter!("cairn_chunks_written_total").increment(1);
    Ok((r, true))
}
