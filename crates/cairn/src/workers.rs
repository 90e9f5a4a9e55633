//! Background workers' status, as the admin API, `/metrics` and the CLI show it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::store::{now_millis, Inner};

/// What a background worker is doing and has done.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStatus {
    /// The worker's name: `upload-expiry`, `collector`, `orphan-sweep` or `compaction`.
    pub name: String,
    /// `running` during a pass, `waiting` between passes.
    pub state: String,
    /// Seconds between passes.
    pub every_secs: u64,
    /// Passes finished (with or without error).
    pub passes: u64,
    /// When the last pass finished (Unix milliseconds).
    pub last_pass_ms: Option<i64>,
    /// How long the last pass took, in seconds.
    pub last_pass_secs: f64,
    /// What the last pass did: uploads aborted, chunks collected, orphaned chunks deleted, or
    /// segments compacted.
    pub last_pass_items: u64,
    /// What all passes did, in the same unit.
    pub total_items: u64,
    /// Disk bytes the last pass gave back.
    pub last_pass_bytes: u64,
    /// Disk bytes all passes gave back.
    pub total_bytes: u64,
    /// Progress of the pass running now (or of the last one): work done...
    pub progress_done: u64,
    /// ...out of this much (its unit depends on the worker; 0 when not known yet).
    pub progress_total: u64,
    /// Disk bytes per second given back by the pass running now (or by the last one).
    pub rate_bytes_per_sec: f64,
    /// The last failed pass's error, until a pass succeeds.
    pub last_error: Option<String>,
}

/// What a pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PassOutcome {
    /// Items handled (see [`WorkerStatus::last_pass_items`]).
    pub items: u64,
    /// Disk bytes given back.
    pub bytes: u64,
}

struct Slot {
    status: WorkerStatus,
    started: Option<Instant>,
}

/// A worker's handle on its status.
#[derive(Clone)]
pub(crate) struct Worker(Arc<Mutex<Slot>>);

/// A status lock; a panic elsewhere while holding it leaves a readable status, not a poison.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    /// Registers worker `name` on the store, replacing an earlier worker of that name.
    pub(crate) fn register(inner: &Inner, name: &str, every: Duration) -> Self {
        let w = Worker(Arc::new(Mutex::new(Slot {
            status: WorkerStatus {
                name: name.into(),
                state: "waiting".into(),
                every_secs: every.as_secs(),
                ..WorkerStatus::default()
            },
            started: None,
        })));
        let mut all = lock(&inner.workers);
        all.retain(|o| lock(&o.0).status.name != name);
        all.push(w.clone());
        w
    }

    /// Marks a pass as begun.
    pub(crate) fn begin(&self) {
        let mut s = lock(&self.0);
        metrics::gauge!("cairn_worker_running", "worker" => s.status.name.clone()).set(1.0);
        s.started = Some(Instant::now());
        s.status.state = "running".into();
        s.status.progress_done = 0;
        s.status.progress_total = 0;
        s.status.rate_bytes_per_sec = 0.0;
    }

    /// Updates the running pass's progress and the bytes it has given back so far.
    pub(crate) fn progress(&self, done: u64, total: u64, bytes: u64) {
        let mut s = lock(&self.0);
        s.status.progress_done = done;
        s.status.progress_total = total;
        if total > 0 {
            metrics::gauge!("cairn_worker_progress_ratio", "worker" => s.status.name.clone())
                .set(done.min(total) as f64 / total as f64);
        }
        let secs = s.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        if secs > 0.0 {
            s.status.rate_bytes_per_sec = bytes as f64 / secs;
        }
    }

    /// Records the end of a pass.
    pub(crate) fn finish<E: std::fmt::Display>(&self, result: &Result<PassOutcome, E>) {
        let mut s = lock(&self.0);
        metrics::gauge!("cairn_worker_running", "worker" => s.status.name.clone()).set(0.0);
        let secs = s.started.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
        let st = &mut s.status;
        st.state = "waiting".into();
        st.passes += 1;
        st.last_pass_ms = Some(now_millis());
        st.last_pass_secs = secs;
        match result {
            Ok(o) => {
                st.last_pass_items = o.items;
                st.total_items += o.items;
                st.last_pass_bytes = o.bytes;
                st.total_bytes += o.bytes;
                if secs > 0.0 {
                    st.rate_bytes_per_sec = o.bytes as f64 / secs;
                }
                st.progress_done = st.progress_total.max(st.progress_done);
                st.last_error = None;
            }
            Err(e) => {
                st.last_pass_items = 0;
                st.last_pass_bytes = 0;
                st.last_error = Some(e.to_string());
            }
        }
    }

    pub(crate) fn status(&self) -> WorkerStatus {
        lock(&self.0).status.clone()
    }
}

impl crate::Store {
    /// The background workers started on this store and what they have done.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        lock(&self.inner.workers).iter().map(Worker::status).collect()
    }
}
