//! Scrub: reads every shard of every chunk, at a bounded rate, so that damage nobody reads is
//! found while parity can still rebuild it.
//!
//! A run goes over every chunk record (counted first, for the progress bar): all of a chunk's
//! shards are read (each checked by its CRC on the node), the chunk decoded from the first `k`
//! and checked against its BLAKE3 id, re-encoded, and every shard compared with what it must
//! be. Shards absent, corrupt, of the wrong length or wrong are reported lost
//! (`ShardsChanged`): the chunk enters the repair queue and the repair worker rewrites them. A
//! chunk whose first `k` do not decode to it is read as a GET would (every subset tried), which
//! finds and reports the wrong shard. Disks that cannot be reached are skipped and counted. Runs
//! start on request (`Store::request_scrub`, `POST /admin/v1/scrub`, `cairn admin scrub start`)
//! and every `ScrubConfig::every` if set; status in `Store::scrub_status`, `/metrics` and the
//! admin API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_meta::ChunkRef;
use cairn_meta_client::ChunkState;
use cairn_shard_store::{ShardKey, ShardStoreError};
use cairn_types::ChunkId;

use crate::workers::{PassOutcome, Worker};
use crate::{Result, Store};

/// How a store's scrub worker runs.
#[derive(Clone, Debug)]
pub struct ScrubConfig {
    /// Start a run this long after the last one ended (`None`: only when requested).
    pub every: Option<Duration>,
    /// Most shard bytes a run reads per second (`None`: no limit).
    pub max_bytes_per_sec: Option<u64>,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self {
            every: Some(Duration::from_secs(30 * 24 * 3600)),
            max_bytes_per_sec: Some(64 << 20),
        }
    }
}

/// What a scrub run found.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ScrubFindings {
    /// Chunks checked.
    pub chunks: u64,
    /// Shards read and found right.
    pub shards_ok: u64,
    /// Shards found absent, corrupt or wrong (reported for repair).
    pub shards_bad: u64,
    /// Shards on disks that could not be reached (not checked).
    pub shards_unreachable: u64,
    /// Chunks that could not be decoded at all.
    pub chunks_unreadable: u64,
}

/// Scrub runs: requested, done, and what the last one found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ScrubStatus {
    /// Runs requested so far (`request_scrub` answers the number of the run it asked for).
    pub runs_requested: u64,
    /// Runs finished (with or without error).
    pub runs_done: u64,
    /// Whether one runs now.
    pub running: bool,
    /// What the run in progress has found so far, or the last run.
    pub findings: ScrubFindings,
    /// The worker (`scrub`), if started.
    pub worker: Option<crate::WorkerStatus>,
}

/// The scrub worker's shared state.
#[derive(Default)]
pub(crate) struct ScrubControl {
    state: std::sync::Mutex<ScrubStatus>,
    wake: tokio::sync::Notify,
}

impl ScrubControl {
    fn state(&self) -> std::sync::MutexGuard<'_, ScrubStatus> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Chunk records read at a time.
const PAGE: usize = 256;

impl Store {
    /// Starts the scrub worker (`scrub`); it runs until the returned handle is aborted.
    pub fn spawn_scrubber(&self, config: ScrubConfig) -> tokio::task::JoinHandle<()> {
        let every = config.every.unwrap_or(Duration::ZERO);
        let worker = Worker::register(&self.inner, "scrub", every);
        let store = self.clone();
        tokio::spawn(async move {
            let mut last_end = Instant::now();
            loop {
                let control = &store.inner.scrub;
                let wanted = {
                    let s = control.state();
                    s.runs_requested > s.runs_done
                };
                let due = config.every.is_some_and(|e| last_end.elapsed() >= e);
                if !wanted && !due {
                    let wait = config
                        .every
                        .map_or(Duration::from_secs(3600), |e| e.saturating_sub(last_end.elapsed()));
                    let _ = tokio::time::timeout(wait, control.wake.notified()).await;
                    continue;
                }
                {
                    let mut s = control.state();
                    if s.runs_requested == s.runs_done {
                        s.runs_requested += 1;
                    }
                    s.running = true;
                    s.findings = ScrubFindings::default();
                }
                worker.begin();
                let result = store.scrub_run(&config, &worker).await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "scrub run failed");
                }
                worker.finish(&result);
                let mut s = control.state();
                s.runs_done += 1;
                s.running = false;
                tracing::info!(findings = ?s.findings, "scrub run done");
                last_end = Instant::now();
            }
        })
    }

    /// Asks for a scrub run (the one in progress, if any, does not count); answers its
    /// number, which `scrub_status().runs_done` reaches when it is done.
    pub fn request_scrub(&self) -> u64 {
        let control = &self.inner.scrub;
        let n = {
            let mut s = control.state();
            // A run in progress started before this request: the next one answers it.
            let wanted = s.runs_done + 1 + u64::from(s.running);
            s.runs_requested = s.runs_requested.max(wanted);
            wanted
        };
        control.wake.notify_one();
        n
    }

    /// Scrub runs and the worker.
    pub fn scrub_status(&self) -> ScrubStatus {
        let mut s = self.inner.scrub.state().clone();
        s.worker = self.workers().into_iter().find(|w| w.name == "scrub");
        s
    }

    async fn scrub_run(&self, config: &ScrubConfig, worker: &Worker) -> Result<PassOutcome> {
        // Count first, for the progress bar.
        let mut ids: Vec<ChunkId> = Vec::new();
        let mut after = None;
        loop {
            let page = self.inner.meta.chunk_page(after, 10 * PAGE).await?;
            after = page.last().map(|(id, _)| *id);
            let full = page.len() == 10 * PAGE;
            ids.extend(page.into_iter().map(|(id, _)| id));
            if !full {
                break;
            }
        }
        let total = ids.len() as u64;
        worker.progress(0, total, 0);
        let started = Instant::now();
        let mut out = PassOutcome::default();
        for (n, batch) in ids.chunks(PAGE).enumerate() {
            let states = self.inner.meta.chunks(batch.to_vec()).await?;
            for state in states {
                let (found, bytes) = scrub_chunk(&self.inner, state).await;
                out.bytes += bytes;
                out.items += 1;
                metrics::counter!("cairn_scrub_bytes_read_total").increment(bytes);
                metrics::counter!("cairn_scrub_shards_bad_total").increment(found.shards_bad);
                let mut s = self.inner.scrub.state();
                let f = &mut s.findings;
                f.chunks += found.chunks;
                f.shards_ok += found.shards_ok;
                f.shards_bad += found.shards_bad;
                f.shards_unreachable += found.shards_unreachable;
                f.chunks_unreadable += found.chunks_unreadable;
            }
            worker.progress(((n + 1) * PAGE).min(ids.len()) as u64, total, out.bytes);
            if let Some(limit) = config.max_bytes_per_sec.filter(|l| *l > 0) {
                let due = Duration::from_secs_f64(out.bytes as f64 / limit as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Ok(out)
    }
}

/// Checks every shard of one chunk; answers what it found and the shard bytes it read.
async fn scrub_chunk(inner: &Arc<crate::store::Inner>, state: ChunkState) -> (ScrubFindings, u64) {
    let mut found = ScrubFindings::default();
    let Some(record) = state.record else {
        return (found, 0);
    };
    found.chunks = 1;
    let placement = state.placement;
    let scheme = record.scheme;
    let (k, total) = (usize::from(scheme.data), scheme.total());
    let codec = inner.codec_for(scheme);
    let naming = inner.naming(scheme, placement.pool.clone());
    let shard_len = codec.shard_len(record.len as usize);
    let slots = match crate::fetch::shard_slots(inner, &state.id, &placement, total).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(chunk = %state.id, error = %e, "scrub could not place the chunk");
            found.chunks_unreadable = 1;
            return (found, 0);
        }
    };
    let reads = slots.iter().enumerate().map(|(i, slot)| {
        let store = slot.store.clone().filter(|_| placement.missing & (1 << i) == 0);
        let key = ShardKey {
            chunk: state.id,
            index: i as u8,
        };
        async move {
            match store {
                None => Err(false),
                Some(s) => match s.get(key).await {
                    Ok(Some(b)) if b.len() == shard_len => Ok(b),
                    Ok(_) | Err(ShardStoreError::Corrupt { .. }) => Err(true),
                    Err(_) => Err(false),
                },
            }
        }
    });
    let got: Vec<std::result::Result<Bytes, bool>> = futures::future::join_all(reads).await;
    let bytes: u64 = got.iter().filter_map(|g| g.as_ref().ok()).map(|b| b.len() as u64).sum();
    let mut lost = 0u32;
    for (i, g) in got.iter().enumerate() {
        match g {
            Err(true) => lost |= 1 << i,
            Err(false) if placement.missing & (1 << i) == 0 => found.shards_unreachable += 1,
            _ => {}
        }
    }
    let present: Vec<usize> = (0..total).filter(|&i| got[i].is_ok()).collect();
    let shards: Vec<Option<Bytes>> = got.into_iter().map(|g| g.ok()).collect();
    let id = state.id;
    let len = record.len as usize;
    let first: Vec<Option<Bytes>> = (0..total)
        .map(|i| {
            present
                .iter()
                .take(k)
                .any(|&p| p == i)
                .then(|| shards[i].clone())
                .flatten()
        })
        .collect();
    let checked = tokio::task::spawn_blocking(move || {
        let data = codec.decode(first, len).ok()?;
        naming.names(&data, &id).then(|| {
            let right = codec.encode(&data);
            (0..total)
                .filter(|&i| shards[i].as_ref().is_some_and(|s| *s != right[i]))
                .fold(0u32, |m, i| m | 1 << i)
        })
    })
    .await
    .ok()
    .flatten();
    match checked {
        Some(wrong) => {
            lost |= wrong;
            found.shards_bad = u64::from(lost.count_ones());
            found.shards_ok = present.len() as u64 - u64::from(wrong.count_ones());
            if lost != 0 {
                tracing::warn!(chunk = %id, shards = lost.count_ones(), "scrub found damaged shards; queued for repair");
                crate::fetch::report_lost(inner, ChunkRef { id, len: record.len }, &placement, lost);
            }
        }
        None => {
            // The first k do not decode to the chunk (or fewer than k were read): read it as a
            // GET does, which tries every subset and reports the wrong shards.
            crate::fetch::report_lost(inner, ChunkRef { id, len: record.len }, &placement, lost);
            match crate::fetch::fetch_chunk(inner, ChunkRef { id, len: record.len }, scheme, placement).await {
                Ok(_) => found.shards_bad = u64::from(lost.count_ones()).max(1),
                Err(e) => {
                    tracing::warn!(chunk = %id, error = %e, "scrub could not read the chunk");
                    found.shards_bad = u64::from(lost.count_ones());
                    found.chunks_unreadable = 1;
                }
            }
        }
    }
    (found, bytes)
}
