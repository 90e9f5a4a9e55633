//! Repair: brings the chunks of the repair queue back to every shard at home.
//!
//! The queue (kept in the metadata) holds the chunks written with shards missing or moved
//! away from a home that was down, and those a read found a shard of lost or wrong. A pass
//! goes over it, [`RepairConfig::concurrency`] chunks at a time: each chunk is read (verified
//! against its BLAKE3 id, rebuilt from parity as any read), encoded again, and the shards not
//! at home are written there; then one metadata command records them restored. A chunk whose
//! home disks are still unreachable stays queued for the next pass; copies left on spare disks
//! are deleted by the orphan sweep once the home copy exists. The worker's progress, rate and
//! errors are in `Store::workers` (`repair`), `/metrics` and the admin API.

use std::time::{Duration, Instant};

use cairn_meta::{ChunkRef, Command};
use cairn_meta_client::ChunkState;
use cairn_shard_store::ShardKey;
use cairn_types::ChunkId;
use futures::StreamExt;

use crate::workers::{PassOutcome, Worker};
use crate::{Error, Result, Store};

/// How a store's repair worker runs.
#[derive(Clone, Debug)]
pub struct RepairConfig {
    /// Pause between passes over the repair queue.
    pub every: Duration,
    /// Most shard bytes a pass writes per second (`None`: no limit): the throttle that keeps
    /// repair from crowding out client traffic.
    pub max_bytes_per_sec: Option<u64>,
    /// Chunks repaired at once (at least 1): each holds its chunk and shards in memory while
    /// it is rebuilt, and reads and writes on several nodes overlap.
    pub concurrency: usize,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(5),
            max_bytes_per_sec: Some(64 << 20),
            concurrency: 4,
        }
    }
}

/// What repair is doing: the chunks still queued (as the last pass counted them) and its
/// worker.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RepairStatus {
    /// Chunks in the repair queue when the last pass began, less those it repaired.
    pub queued: u64,
    /// The worker (`repair`), if started.
    pub worker: Option<crate::WorkerStatus>,
}

/// Chunks read from the queue at a time.
const QUEUE_PAGE: usize = 256;

impl Store {
    /// Starts the repair worker (`repair`); it runs until the returned handle is aborted.
    pub fn spawn_repairer(&self, config: RepairConfig) -> tokio::task::JoinHandle<()> {
        let worker = Worker::register(&self.inner, "repair", config.every);
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                worker.begin();
                let result = store.repair_pass(&config, &worker).await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "repair pass failed");
                }
                worker.finish(&result);
                tokio::time::sleep(config.every).await;
            }
        })
    }

    /// The repair queue and worker.
    pub fn repair_status(&self) -> RepairStatus {
        RepairStatus {
            queued: self.inner.repair_queued.load(std::sync::atomic::Ordering::Relaxed),
            worker: self.workers().into_iter().find(|w| w.name == "repair"),
        }
    }

    /// One pass over the repair queue: chunks repaired and shard bytes written.
    async fn repair_pass(&self, config: &RepairConfig, worker: &Worker) -> Result<PassOutcome> {
        use std::sync::atomic::Ordering::Relaxed;
        // Count first, for the progress bar.
        let mut queued: Vec<ChunkState> = Vec::new();
        let mut after: Option<ChunkId> = None;
        loop {
            let page = self.inner.meta.repair_queue(after, QUEUE_PAGE).await?;
            after = page.last().map(|s| s.id);
            let full = page.len() == QUEUE_PAGE;
            queued.extend(page);
            if !full {
                break;
            }
        }
        let total = queued.len() as u64;
        self.inner.repair_queued.store(total, Relaxed);
        metrics::gauge!("cairn_repair_queue_chunks").set(total as f64);
        worker.progress(0, total, 0);
        let started = Instant::now();
        let mut out = PassOutcome::default();
        let mut first_error = None;
        let mut repairs = futures::stream::iter(queued)
            .map(|state| self.repair_chunk(state))
            .buffer_unordered(config.concurrency.max(1));
        let mut n = 0u64;
        while let Some(repaired) = repairs.next().await {
            n += 1;
            match repaired {
                Ok(Some(bytes)) => {
                    out.items += 1;
                    out.bytes += bytes;
                    self.inner.repair_queued.fetch_sub(1, Relaxed);
                    metrics::gauge!("cairn_repair_queue_chunks").decrement(1.0);
                }
                Ok(None) => {}
                Err(e) => {
                    metrics::counter!("cairn_repair_errors_total").increment(1);
                    first_error.get_or_insert(e);
                }
            }
            worker.progress(n, total, out.bytes);
            if let Some(limit) = config.max_bytes_per_sec.filter(|l| *l > 0) {
                let due = Duration::from_secs_f64(out.bytes as f64 / limit as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        match first_error {
            // Chunks that could not be repaired stay queued; the pass reports the first error.
            Some(e) if out.items == 0 => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, repaired = out.items, "repair pass left chunks queued");
                Ok(out)
            }
            None => Ok(out),
        }
    }

    /// Repairs one chunk: answers the shard bytes written, or `None` if nothing could be done
    /// now (its home disks unreachable, or it is whole or gone already).
    async fn repair_chunk(&self, state: ChunkState) -> Result<Option<u64>> {
        let Some(record) = state.record else {
            return Ok(None);
        };
        let placement = state.placement;
        if placement.is_whole() {
            return Ok(None);
        }
        let total = record.scheme.total();
        let homes = self
            .inner
            .layout
            .place(&state.id, placement.epoch, placement.pool.as_deref(), total)
            .await?;
        let todo: Vec<usize> = (0..total)
            .filter(|&i| placement.missing & (1 << i) != 0 || placement.moved_to(i).is_some())
            .filter(|&i| homes[i].store.is_some())
            .collect();
        if todo.is_empty() {
            return Ok(None);
        }
        let c = ChunkRef {
            id: state.id,
            len: record.len,
        };
        let data = crate::fetch::fetch_chunk(&self.inner, c, record.scheme, placement.clone()).await?;
        let codec = self.inner.codec_for(record.scheme);
        let shards = tokio::task::spawn_blocking(move || codec.encode(&data))
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
        let mut restored = 0u32;
        let mut bytes = 0u64;
        for i in todo {
            let Some(disk) = &homes[i].store else { continue };
            let key = ShardKey {
                chunk: state.id,
                index: i as u8,
            };
            match disk.put(key, shards[i].clone()).await {
                Ok(()) => {
                    restored |= 1 << i;
                    bytes += shards[i].len() as u64;
                }
                Err(e) => {
                    tracing::warn!(chunk = %state.id, shard = i, disk = %homes[i].disk, error = %e, "repair could not write a shard home")
                }
            }
        }
        if restored == 0 {
            return Ok(None);
        }
        let cmd = Command::ShardsChanged {
            chunk: state.id,
            epoch: placement.epoch,
            restored,
            lost: 0,
        };
        if let cairn_meta::Response::Failed(e) = self.inner.meta.propose(cmd).await? {
            return Err(e.into());
        }
        metrics::counter!("cairn_repair_shards_restored_total").increment(u64::from(restored.count_ones()));
        metrics::counter!("cairn_repair_bytes_total").increment(bytes);
        tracing::info!(chunk = %state.id, shards = restored.count_ones(), "chunk repaired");
        // Whole only if every shard it lacked was written.
        let left = (placement.missing | placement.moved.iter().fold(0u32, |m, (i, _)| m | 1 << i)) & !restored;
        Ok((left == 0).then_some(bytes))
    }
}
