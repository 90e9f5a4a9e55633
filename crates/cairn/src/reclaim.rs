//! Space reclamation: the collector (chunks no object references), the orphan sweep (shards
//! no chunk record owns), compaction (dead bytes inside segment files) and multipart upload
//! expiry, run one after the other by one background task, on a period or on request.
//!
//! The collector and the sweep delete shards only through the collection protocol of the
//! metadata (see `cairn_meta::Command::GcClaim` and docs/ARCHITECTURE.md, "Space
//! reclamation"): a chunk is claimed in a Raft command, and only then, if no upload of this
//! process uses it, its shards are deleted and it is dropped. Commits fenced by what their
//! upload saw cannot reference what a pass deleted. A chunk must have been unreferenced (or an
//! orphan) for the grace period, as seen by this process, before it is claimed; what this
//! process remembers of ages is lost on restart, which only delays collection by one grace
//! period.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_meta::{ChunkPlacement, ChunkRecord, Command, GcInfo, GcMark, Response};
use cairn_shard_store::{CompactOptions, CompactProgress, ShardKey};
use cairn_types::ChunkId;
use serde::Serialize;
use tokio::sync::Notify;

use crate::store::{now_millis, Inner};
use crate::workers::{PassOutcome, Worker, WorkerStatus};
use crate::{Error, Result, Store};

/// How space reclamation runs.
#[derive(Clone, Debug)]
pub struct ReclaimConfig {
    /// How long a chunk stays unreferenced (or a shard orphaned, or a retired manifest kept)
    /// before it is collected: requests in flight longer than this may fail.
    pub grace: Duration,
    /// Time between runs.
    pub every: Duration,
    /// Age after which an incomplete multipart upload is aborted; `None` keeps them.
    pub upload_expiry: Option<Duration>,
    /// When and how fast segments are compacted.
    pub compaction: CompactOptions,
}

impl ReclaimConfig {
    /// The period that fits a grace period: half of it, between 1 s and 10 min.
    pub fn period_for(grace: Duration) -> Duration {
        (grace / 2).clamp(Duration::from_secs(1), Duration::from_secs(600))
    }
}

/// Runs of the reclamation workers, as the admin API shows them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReclaimStatus {
    /// Runs begun since the process started.
    pub runs_started: u64,
    /// Runs finished.
    pub runs_done: u64,
    /// Whether a run is going on.
    pub running: bool,
    /// Seconds a chunk must stay unreferenced before it is collected.
    pub grace_secs: u64,
    /// Seconds between runs.
    pub every_secs: u64,
    /// Chunks without references, waiting for their grace period, at the last collector pass.
    pub pending_chunks: u64,
    /// Collection passes ended (over the store's life).
    pub passes_done: u64,
    /// The reclamation workers.
    pub workers: Vec<WorkerStatus>,
}

#[derive(Default)]
struct Runs {
    /// Whether a reclaimer task was started on the store.
    spawned: bool,
    started: u64,
    done: u64,
    pending_chunks: u64,
    grace: Duration,
    every: Duration,
}

/// Requests and completions of reclamation runs.
#[derive(Default)]
pub(crate) struct Control {
    trigger: Notify,
    finished: Notify,
    runs: Mutex<Runs>,
}

impl Control {
    fn runs(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Names of the reclamation workers, in the order a run runs them.
const WORKERS: [&str; 4] = ["upload-expiry", "collector", "orphan-sweep", "compaction"];

/// Chunks claimed, deleted and dropped per Raft command.
const CLAIM_BATCH: usize = 256;
/// Metadata records read per query while scanning.
const SCAN_PAGE: usize = 1000;
/// Shard indices looked for when deleting a chunk's shards (at most one per disk).
const MAX_SHARDS: u8 = 32;

/// What the collector remembers between passes.
struct Tracker {
    unreferenced: HashMap<ChunkId, Instant>,
    orphans: HashMap<ChunkId, Instant>,
    retired: HashMap<String, Instant>,
    /// When passes ended, as this process saw them; earlier ones count as ended at `since`.
    ended: HashMap<u64, Instant>,
    since: Instant,
    /// Chunks with no reference and no mark (stored before marks existed), found once.
    legacy: Option<HashSet<ChunkId>>,
}

impl Tracker {
    fn new() -> Self {
        Self {
            unreferenced: HashMap::new(),
            orphans: HashMap::new(),
            retired: HashMap::new(),
            ended: HashMap::new(),
            since: Instant::now(),
            legacy: None,
        }
    }
}

/// Keeps the candidates seen now, with the time each was first seen, and returns those seen
/// for at least `grace`.
fn aged<K: std::hash::Hash + Eq + Clone>(
    first_seen: &mut HashMap<K, Instant>,
    now_seen: impl IntoIterator<Item = K>,
    grace: Duration,
) -> Vec<K> {
    let now = Instant::now();
    let mut seen = HashMap::new();
    let mut ready = Vec::new();
    for k in now_seen {
        let first = first_seen.get(&k).copied().unwrap_or(now);
        if now.duration_since(first) >= grace {
            ready.push(k.clone());
        }
        seen.insert(k, first);
    }
    *first_seen = seen;
    ready
}

impl Inner {
    /// Whether an upload of this process uses chunk `id`.
    fn chunk_in_use(&self, id: &ChunkId) -> bool {
        let stagings = self.stagings.lock().unwrap_or_else(|p| p.into_inner());
        stagings.values().any(|s| s.uses(id))
    }

    /// The fewest ended passes any upload of this process saw when it began.
    fn oldest_fence(&self) -> Option<u64> {
        let stagings = self.stagings.lock().unwrap_or_else(|p| p.into_inner());
        stagings.values().filter_map(|s| s.passes_done()).min()
    }
}

impl Store {
    async fn gc(&self, cmd: Command) -> Result<Response> {
        match self.inner.meta.propose(cmd).await? {
            Response::Failed(e) => Err(e.into()),
            r => Ok(r),
        }
    }

    async fn gc_info(&self) -> Result<GcInfo> {
        Ok(self.inner.meta.gc_info().await?)
    }

    /// Runs a collection pass over `ready` if there is anything to claim or a pass a crash
    /// interrupted (whose claims it finishes first), and ends it.
    async fn pass_over(
        &self,
        ready: &[ChunkId],
        t: &mut Tracker,
        worker: &Worker,
        kind: &'static str,
    ) -> Result<PassOutcome> {
        let info = self.gc_info().await?;
        if ready.is_empty() && info.started == info.done {
            return Ok(PassOutcome::default());
        }
        let (pass, mut out) = self.begin_pass().await?;
        let done = self.claim_and_delete(pass, ready, worker, kind).await?;
        out.items += done.items;
        out.bytes += done.bytes;
        self.gc(Command::GcEnd { pass }).await?;
        t.ended.insert(pass, Instant::now());
        Ok(out)
    }

    /// Begins a collection pass, or resumes the one a crash interrupted (finishing what it had
    /// claimed: its shards are deleted and it is dropped).
    async fn begin_pass(&self) -> Result<(u64, PassOutcome)> {
        let Response::Pass(pass) = self.gc(Command::GcBegin).await? else {
            return Err(Error::Storage("GcBegin answered without a pass".into()));
        };
        let mut leftovers = Vec::new();
        let mut after = None;
        loop {
            let page = self.inner.meta.gc_marks(after, SCAN_PAGE).await?;
            for (id, mark) in &page {
                if matches!(mark, GcMark::Deleting { pass: p, .. } if *p == pass) {
                    leftovers.push(*id);
                }
            }
            match page.last() {
                Some((id, _)) if page.len() == SCAN_PAGE => after = Some(*id),
                _ => break,
            }
        }
        let mut out = PassOutcome::default();
        for batch in leftovers.chunks(CLAIM_BATCH) {
            out.bytes += self.delete_shards(batch).await?;
            self.gc(Command::GcDrop {
                pass,
                ids: batch.to_vec(),
            })
            .await?;
            out.items += batch.len() as u64;
        }
        if !leftovers.is_empty() {
            tracing::info!(
                pass,
                chunks = leftovers.len(),
                "finished the deletes of an interrupted collection pass"
            );
            self.inner.gc_changed.notify_waiters();
        }
        Ok((pass, out))
    }

    /// Claims `ids` in `pass`, gives back those an upload of this process uses, deletes the
    /// shards of the others and drops them.
    async fn claim_and_delete(
        &self,
        pass: u64,
        ids: &[ChunkId],
        worker: &Worker,
        kind: &'static str,
    ) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        for (n, batch) in ids.chunks(CLAIM_BATCH).enumerate() {
            let Response::Chunks(claimed) = self
                .gc(Command::GcClaim {
                    pass,
                    ids: batch.to_vec(),
                })
                .await?
            else {
                return Err(Error::Storage("GcClaim answered without chunks".into()));
            };
            // Checked after the claim is applied: an upload that registers the chunk later
            // looks at it after the claim, sees it being deleted and waits.
            let (busy, free): (Vec<ChunkId>, Vec<ChunkId>) =
                claimed.into_iter().partition(|id| self.inner.chunk_in_use(id));
            if !busy.is_empty() {
                metrics::counter!("cairn_gc_claims_released_total").increment(busy.len() as u64);
                self.gc(Command::GcRelease { pass, ids: busy }).await?;
            }
            if !free.is_empty() {
                out.bytes += self.delete_shards(&free).await?;
                self.gc(Command::GcDrop {
                    pass,
                    ids: free.clone(),
                })
                .await?;
                out.items += free.len() as u64;
                metrics::counter!("cairn_gc_chunks_deleted_total", "worker" => kind).increment(free.len() as u64);
            }
            self.inner.gc_changed.notify_waiters();
            worker.progress(
                ((n + 1) * CLAIM_BATCH).min(ids.len()) as u64,
                ids.len() as u64,
                out.bytes,
            );
        }
        Ok(out)
    }

    /// Deletes every shard of `ids` on every disk that can be reached; returns the shard
    /// bytes deleted. Shards on a disk unreachable now stay there as orphans (their records
    /// go): the orphan sweep deletes them once the disk is back. A disk is skipped only if it
    /// fails before this pass sent it any delete (its node is down): a delete that may still
    /// land later (a stopped node resumed) fails the pass instead, so that no delete of an
    /// ended pass can reach a shard written again after it.
    async fn delete_shards(&self, ids: &[ChunkId]) -> Result<u64> {
        let disks = reachable(self.inner.layout.disks().await?);
        // One listing per disk and chunk (its shards are adjacent in key order), then the
        // deletes, all disks at once.
        let per_disk = disks.iter().map(|(name, disk)| async move {
            let mut bytes = 0;
            let mut deleted_any = false;
            for id in ids {
                let shards = match disk.list(ShardKey::before_chunk(*id), usize::from(MAX_SHARDS)).await {
                    Ok(s) => s,
                    Err(e) if !deleted_any && node_down(&e) => {
                        skip_unreachable(name, &e);
                        return Ok(0);
                    }
                    Err(e) => return Err(storage(e)),
                };
                for (key, len) in shards.into_iter().take_while(|(k, _)| k.chunk == *id) {
                    deleted_any = true;
                    if disk.delete(key).await.map_err(storage)? {
                        bytes += u64::from(len);
                    }
                }
            }
            Ok::<u64, Error>(bytes)
        });
        Ok(futures::future::try_join_all(per_disk).await?.into_iter().sum())
    }

    /// One collector pass: collects chunks unreferenced for the grace period, then forgets
    /// collection marks, retired manifests and completion records older than it.
    async fn collect(&self, t: &mut Tracker, grace: Duration, worker: &Worker) -> Result<PassOutcome> {
        let mut unreferenced = Vec::new();
        let mut gone = Vec::new();
        let mut after = None;
        loop {
            let page = self.inner.meta.gc_marks(after, SCAN_PAGE).await?;
            for (id, mark) in &page {
                match mark {
                    GcMark::Unreferenced => unreferenced.push(*id),
                    GcMark::Gone { pass } => gone.push((*id, *pass)),
                    GcMark::Deleting { .. } => {}
                }
            }
            match page.last() {
                Some((id, _)) if page.len() == SCAN_PAGE => after = Some(*id),
                _ => break,
            }
        }
        unreferenced.extend(self.legacy_unreferenced(t).await?);
        metrics::gauge!("cairn_gc_chunks_pending").set(unreferenced.len() as f64);
        self.inner.reclaim.runs().pending_chunks = unreferenced.len() as u64;
        let ready = aged(&mut t.unreferenced, unreferenced, grace);
        worker.progress(0, ready.len() as u64, 0);
        let out = self.pass_over(&ready, t, worker, "collector").await?;
        self.purge(t, grace, &gone).await?;
        self.forget(t, grace).await?;
        Ok(out)
    }

    /// Chunks with no reference and no mark: written before collection marks existed. Found
    /// by one scan of every chunk record per process; later passes only check them again.
    async fn legacy_unreferenced(&self, t: &mut Tracker) -> Result<Vec<ChunkId>> {
        if t.legacy.is_none() {
            let mut found = HashSet::new();
            let mut after = None;
            loop {
                let page = self.inner.meta.chunk_page(after, SCAN_PAGE).await?;
                let zero: Vec<ChunkId> = page
                    .iter()
                    .filter(|(_, r)| r.refcount == 0)
                    .map(|(id, _)| *id)
                    .collect();
                if !zero.is_empty() {
                    let states = self.inner.meta.chunks(zero).await?;
                    found.extend(states.iter().filter(|s| s.mark.is_none()).map(|s| s.id));
                }
                match page.last() {
                    Some((id, _)) if page.len() == SCAN_PAGE => after = Some(*id),
                    _ => break,
                }
            }
            t.legacy = Some(found);
        }
        let legacy: Vec<ChunkId> = t.legacy.iter().flatten().copied().collect();
        if legacy.is_empty() {
            return Ok(legacy);
        }
        let still: Vec<ChunkId> = self
            .inner
            .meta
            .chunks(legacy)
            .await?
            .into_iter()
            .filter(|s| s.record.is_some_and(|r| r.refcount == 0) && s.mark.is_none())
            .map(|s| s.id)
            .collect();
        t.legacy = Some(still.iter().copied().collect());
        Ok(still)
    }

    /// Removes `Gone` marks of passes that ended at least `grace` ago, and that no upload of
    /// this process began before.
    async fn purge(&self, t: &mut Tracker, grace: Duration, gone: &[(ChunkId, u64)]) -> Result<()> {
        let info = self.gc_info().await?;
        let now = Instant::now();
        let mut through = info.purged_through;
        for p in info.purged_through + 1..=info.done {
            let ended = t.ended.get(&p).copied().unwrap_or(t.since);
            if now.duration_since(ended) < grace {
                break;
            }
            through = p;
        }
        if let Some(oldest) = self.inner.oldest_fence() {
            through = through.min(oldest);
        }
        let ids: Vec<ChunkId> = gone.iter().filter(|(_, p)| *p <= through).map(|(id, _)| *id).collect();
        for batch in ids.chunks(SCAN_PAGE) {
            self.gc(Command::GcPurge {
                through,
                ids: batch.to_vec(),
            })
            .await?;
        }
        t.ended.retain(|p, _| *p > through);
        Ok(())
    }

    /// Forgets retired manifests seen for the grace period, and completion records of
    /// multipart uploads older than it.
    async fn forget(&self, t: &mut Tracker, grace: Duration) -> Result<()> {
        let mut retired = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.inner.meta.retired(&after, SCAN_PAGE).await?;
            retired.extend(page.iter().map(|(v, _)| v.clone()));
            match page.last() {
                Some((v, _)) if page.len() == SCAN_PAGE => after = v.clone(),
                _ => break,
            }
        }
        let ready = aged(&mut t.retired, retired, grace);
        let cutoff = now_millis().saturating_sub(grace.as_millis().min(i64::MAX as u128) as i64);
        let mut completed = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.inner.meta.completed_uploads(&after, SCAN_PAGE).await?;
            completed.extend(
                page.iter()
                    .filter(|(_, c)| c.completed < cutoff)
                    .map(|(u, _)| u.clone()),
            );
            match page.last() {
                Some((u, _)) if page.len() == SCAN_PAGE => after = u.clone(),
                _ => break,
            }
        }
        for batch in ready.chunks(SCAN_PAGE) {
            self.gc(Command::GcForget {
                retired: batch.to_vec(),
                completed: Vec::new(),
            })
            .await?;
        }
        for batch in completed.chunks(SCAN_PAGE) {
            self.gc(Command::GcForget {
                retired: Vec::new(),
                completed: batch.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// One sweep pass: deletes shards that no chunk record owns once they have been orphans
    /// for the grace period (uploads that crashed or failed before their commit), and extra
    /// copies of shards on disks their record does not place them on.
    async fn sweep(&self, t: &mut Tracker, grace: Duration, worker: &Worker) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        // Disks whose node is down are left for a later pass.
        let mut disks = Vec::new();
        let mut listing = Vec::new();
        for (name, disk) in reachable(self.inner.layout.disks().await?) {
            match list_all(&*disk).await {
                Ok(shards) => {
                    listing.push(shards);
                    disks.push((name, disk));
                }
                Err(Error::Unavailable(e)) => skip_unreachable(&name, &e),
                Err(e) => return Err(e),
            }
        }
        let ids: Vec<ChunkId> = listing
            .iter()
            .flatten()
            .map(|(k, _)| k.chunk)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        worker.progress(0, ids.len() as u64, 0);
        let mut records: HashMap<ChunkId, Option<(ChunkRecord, ChunkPlacement)>> = HashMap::with_capacity(ids.len());
        for batch in ids.chunks(SCAN_PAGE) {
            let found = self.inner.meta.chunks(batch.to_vec()).await?;
            records.extend(found.into_iter().map(|s| (s.id, s.record.map(|r| (r, s.placement)))));
        }
        let mut misplaced = Vec::new();
        let mut homes: HashMap<ChunkId, Vec<crate::layout::Slot>> = HashMap::new();
        for (d, shards) in listing.iter().enumerate() {
            for (key, len) in shards {
                let Some(Some((rec, placement))) = records.get(&key.chunk) else {
                    continue;
                };
                let i = usize::from(key.index);
                let total = rec.scheme.total();
                if i >= total {
                    misplaced.push((d, *key, *len));
                    continue;
                }
                let home = match homes.get(&key.chunk) {
                    Some(h) => h,
                    None => {
                        let pool = placement.pool.as_deref();
                        let h = self
                            .inner
                            .layout
                            .place(&key.chunk, placement.epoch, pool, total)
                            .await?;
                        homes.entry(key.chunk).or_insert(h)
                    }
                };
                // An extra copy goes only if the placed one exists (where it was moved to, if
                // its home was down when it was written).
                let placed = match placement.moved_to(i) {
                    Some(disk) => self.inner.layout.slot(disk).await?,
                    None => home[i].clone(),
                };
                // (An unreachable placed disk confirms nothing: the copy stays.)
                if placed.disk != disks[d].0
                    && placement.missing & (1 << i) == 0
                    && match &placed.store {
                        Some(s) => s.stat(*key).await.ok().flatten().is_some(),
                        None => false,
                    }
                {
                    misplaced.push((d, *key, *len));
                }
            }
        }
        for (d, key, len) in misplaced {
            if disks[d]
                .1
                .delete(key)
                .await
                .map_err(|e| Error::Storage(e.to_string()))?
            {
                metrics::counter!("cairn_gc_misplaced_shards_deleted_total").increment(1);
                out.bytes += u64::from(len);
            }
        }
        let orphans = records.iter().filter(|(_, r)| r.is_none()).map(|(id, _)| *id);
        let ready = aged(&mut t.orphans, orphans, grace);
        let swept = self.pass_over(&ready, t, worker, "orphan-sweep").await?;
        out.items += swept.items;
        out.bytes += swept.bytes;
        Ok(out)
    }

    /// Compacts every disk: segments at least `opts.min_dead_ratio` dead are rewritten.
    async fn compact(&self, opts: &CompactOptions, worker: &Worker) -> Result<PassOutcome> {
        let mut out = PassOutcome::default();
        for (name, disk) in reachable(self.inner.layout.disks().await?) {
            let progress = CompactProgress::default();
            let run = disk.compact(opts, &progress);
            tokio::pin!(run);
            let report = loop {
                tokio::select! {
                    r = &mut run => match r {
                        Ok(report) => break Some(report),
                        // Its node is down: compacted on a later pass.
                        Err(e) if node_down(&e) => {
                            skip_unreachable(&name, &e);
                            break None;
                        }
                        Err(e) => return Err(Error::Storage(e.to_string())),
                    },
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {
                        use std::sync::atomic::Ordering::Relaxed;
                        worker.progress(
                            out.items + progress.segments_done.load(Relaxed),
                            out.items + progress.segments_total.load(Relaxed),
                            out.bytes + progress.bytes_reclaimed.load(Relaxed),
                        );
                    }
                }
            };
            let Some(report) = report else { continue };
            out.items += report.segments_removed;
            out.bytes += report.bytes_reclaimed;
            metrics::counter!("cairn_compaction_bytes_rewritten_total").increment(report.bytes_rewritten);
            metrics::counter!("cairn_compaction_bytes_reclaimed_total").increment(report.bytes_reclaimed);
        }
        Ok(out)
    }

    /// One run of every reclamation worker, in order; a worker's failure is recorded on it
    /// and the others still run.
    async fn reclaim_run(&self, cfg: &ReclaimConfig, t: &mut Tracker, workers: &HashMap<&'static str, Worker>) {
        for name in WORKERS {
            let Some(worker) = workers.get(name) else { continue };
            worker.begin();
            let result = match name {
                "upload-expiry" => match cfg.upload_expiry {
                    Some(age) => self
                        .expire_uploads(age, now_millis())
                        .await
                        .map(|items| PassOutcome { items, bytes: 0 }),
                    None => Ok(PassOutcome::default()),
                },
                "collector" => self.collect(t, cfg.grace, worker).await,
                "orphan-sweep" => self.sweep(t, cfg.grace, worker).await,
                _ => self.compact(&cfg.compaction, worker).await,
            };
            if let Err(e) = &result {
                metrics::counter!("cairn_worker_errors_total", "worker" => name).increment(1);
                if name == "upload-expiry" {
                    metrics::counter!("cairn_upload_expiry_errors_total").increment(1);
                }
                tracing::warn!(worker = name, error = %e, "reclamation pass failed");
            }
            if let Ok(o) = &result {
                metrics::counter!("cairn_worker_passes_total", "worker" => name).increment(1);
                metrics::counter!("cairn_worker_bytes_reclaimed_total", "worker" => name).increment(o.bytes);
                metrics::counter!("cairn_worker_items_total", "worker" => name).increment(o.items);
                if o.items > 0 || o.bytes > 0 {
                    tracing::info!(worker = name, items = o.items, bytes = o.bytes, "reclamation pass");
                }
            }
            worker.finish(&result);
        }
    }

    /// Starts space reclamation in the background: a run of every worker at once, then every
    /// `cfg.every` and whenever [`Store::request_reclaim`] asks, until the task is aborted.
    /// The workers' status is listed by [`Store::workers`] and [`Store::reclaim_status`].
    pub fn spawn_reclaimer(&self, cfg: ReclaimConfig) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        {
            let mut runs = self.inner.reclaim.runs();
            runs.spawned = true;
            runs.grace = cfg.grace;
            runs.every = cfg.every;
        }
        let workers: HashMap<&'static str, Worker> = WORKERS
            .iter()
            .filter(|n| **n != "upload-expiry" || cfg.upload_expiry.is_some())
            .map(|n| (*n, Worker::register(&self.inner, n, cfg.every)))
            .collect();
        tokio::spawn(async move {
            let mut t = Tracker::new();
            loop {
                store.inner.reclaim.runs().started += 1;
                store.reclaim_run(&cfg, &mut t, &workers).await;
                {
                    let mut runs = store.inner.reclaim.runs();
                    runs.done = runs.started;
                }
                store.inner.reclaim.finished.notify_waiters();
                tokio::select! {
                    _ = tokio::time::sleep(cfg.every) => {}
                    _ = store.inner.reclaim.trigger.notified() => {}
                }
            }
        })
    }

    /// Asks for a run of every reclamation worker now; returns its number, to wait for with
    /// [`Store::wait_reclaim`]. Fails with [`Error::Invalid`] if no reclaimer was started
    /// ([`Store::spawn_reclaimer`]).
    pub fn request_reclaim(&self) -> Result<u64> {
        let runs = self.inner.reclaim.runs();
        if !runs.spawned {
            return Err(Error::Invalid("space reclamation is not running on this store".into()));
        }
        let target = runs.started + 1;
        drop(runs);
        self.inner.reclaim.trigger.notify_one();
        Ok(target)
    }

    /// Waits until run `run` (a number [`Store::request_reclaim`] gave) has finished.
    pub async fn wait_reclaim(&self, run: u64) {
        loop {
            let finished = self.inner.reclaim.finished.notified();
            if self.inner.reclaim.runs().done >= run {
                return;
            }
            finished.await;
        }
    }

    /// Where space reclamation stands.
    pub async fn reclaim_status(&self) -> Result<ReclaimStatus> {
        let info = self.gc_info().await?;
        let runs = self.inner.reclaim.runs();
        let workers = self
            .workers()
            .into_iter()
            .filter(|w| WORKERS.contains(&w.name.as_str()))
            .collect();
        Ok(ReclaimStatus {
            runs_started: runs.started,
            runs_done: runs.done,
            running: runs.started > runs.done,
            grace_secs: runs.grace.as_secs(),
            every_secs: runs.every.as_secs(),
            pending_chunks: runs.pending_chunks,
            passes_done: info.done,
            workers,
        })
    }
}

fn storage(e: cairn_shard_store::ShardStoreError) -> Error {
    Error::from(e)
}

/// Whether `e` says the disk's node could not be reached (rather than the disk failing).
fn node_down(e: &cairn_shard_store::ShardStoreError) -> bool {
    matches!(e, cairn_shard_store::ShardStoreError::Unavailable(_))
}

/// Counts and logs a disk skipped by a pass because its node could not be reached.
fn skip_unreachable(disk: &str, e: &dyn std::fmt::Display) {
    metrics::counter!("cairn_gc_disks_unreachable_total").increment(1);
    tracing::warn!(disk = %disk, error = %e, "disk unreachable: skipped by space reclamation until it is back");
}

/// The disks of `slots` that can be reached now, with their names; the others are skipped
/// (counted in `cairn_gc_disks_unreachable_total`) and caught up on a later pass.
fn reachable(
    slots: Vec<crate::layout::Slot>,
) -> Vec<(std::sync::Arc<str>, std::sync::Arc<dyn cairn_shard_store::ShardStore>)> {
    slots
        .into_iter()
        .filter_map(|s| match s.store {
            Some(store) => Some((s.disk, store)),
            None => {
                metrics::counter!("cairn_gc_disks_unreachable_total").increment(1);
                tracing::warn!(disk = %s.disk, "disk unreachable: skipped by space reclamation until it is back");
                None
            }
        })
        .collect()
}

/// Every shard of `disk` with its length, in key order, a page at a time.
async fn list_all(disk: &dyn cairn_shard_store::ShardStore) -> Result<Vec<(ShardKey, u32)>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = disk.list(after, cairn_shard_store::MAX_LIST).await.map_err(storage)?;
        let full = page.len() == cairn_shard_store::MAX_LIST;
        after = page.last().map(|(k, _)| *k);
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}
