//! Expiry of abandoned multipart uploads: an upload initiated longer ago than the configured
//! age is aborted, which releases its parts' chunk references (their shards become garbage for
//! the collector). Clients that crash, or never complete nor abort, otherwise hold their parts'
//! space for ever. AWS leaves this to a lifecycle rule (AbortIncompleteMultipartUpload); here a
//! store-wide age applies to every bucket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::store::now_millis;
use crate::{Error, Result, Store};

/// What a background worker is doing and has done, as the admin API shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStatus {
    /// The worker's name (`upload-expiry`).
    pub name: String,
    /// `running` during a pass, `waiting` between passes.
    pub state: String,
    /// Seconds between passes.
    pub every_secs: u64,
    /// Passes finished (with or without error).
    pub passes: u64,
    /// When the last pass finished (Unix milliseconds).
    pub last_pass_ms: Option<i64>,
    /// What the last pass did (for upload expiry: uploads aborted).
    pub last_pass_items: u64,
    /// What all passes did.
    pub total_items: u64,
    /// The last failed pass's error, until a pass succeeds.
    pub last_error: Option<String>,
}

/// A status lock; a panic elsewhere while holding it leaves a readable status, not a poison.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn update(status: &Mutex<WorkerStatus>, f: impl FnOnce(&mut WorkerStatus)) {
    f(&mut lock(status));
}

/// Uploads listed per metadata query during a pass.
const PAGE: usize = 1000;

impl Store {
    /// One pass: aborts every upload initiated before `now_ms - max_age` (Unix milliseconds),
    /// bucket by bucket. Returns how many it aborted. An upload completed or aborted by its
    /// client meanwhile is skipped.
    pub async fn expire_uploads(&self, max_age: Duration, now_ms: i64) -> Result<u64> {
        let cutoff = now_ms.saturating_sub(max_age.as_millis().min(i64::MAX as u128) as i64);
        let mut aborted = 0;
        for bucket in self.buckets().await? {
            let (mut key_marker, mut id_marker) = (String::new(), String::new());
            loop {
                let page = self.uploads(&bucket.name, "", &key_marker, &id_marker, PAGE).await?;
                for u in page.iter().filter(|u| u.initiated < cutoff) {
                    match self.abort_upload(&u.bucket, &u.key, &u.upload_id).await {
                        Ok(()) => {
                            aborted += 1;
                            metrics::counter!("cairn_uploads_expired_total").increment(1);
                            tracing::info!(bucket = %u.bucket, upload = %u.upload_id, "expired an abandoned multipart upload");
                        }
                        Err(Error::NoSuchUpload | Error::NoSuchBucket) => {}
                        Err(e) => return Err(e),
                    }
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => {
                        key_marker = last.key.clone();
                        id_marker = last.upload_id.clone();
                    }
                    _ => break,
                }
            }
        }
        Ok(aborted)
    }

    /// Runs [`Store::expire_uploads`] in the background, every quarter of `max_age` (between
    /// 1 s and 1 h), until the returned task is aborted. A failed pass is logged and counted
    /// (`cairn_upload_expiry_errors_total`); the next one runs on schedule.
    /// Its status is listed by [`Store::workers`].
    pub fn spawn_upload_expiry(&self, max_age: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        let every = (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        let status = Arc::new(Mutex::new(WorkerStatus {
            name: "upload-expiry".into(),
            state: "waiting".into(),
            every_secs: every.as_secs(),
            ..WorkerStatus::default()
        }));
        lock(&self.inner.workers).push(status.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                update(&status, |s| s.state = "running".into());
                let result = store.expire_uploads(max_age, now_millis()).await;
                update(&status, |s| {
                    s.state = "waiting".into();
                    s.passes += 1;
                    s.last_pass_ms = Some(now_millis());
                    match &result {
                        Ok(n) => {
                            s.last_pass_items = *n;
                            s.total_items += n;
                            s.last_error = None;
                        }
                        Err(e) => {
                            s.last_pass_items = 0;
                            s.last_error = Some(e.to_string());
                        }
                    }
                });
                if let Err(e) = result {
                    metrics::counter!("cairn_upload_expiry_errors_total").increment(1);
                    tracing::warn!(error = %e, "multipart upload expiry pass failed");
                }
            }
        })
    }

    /// The background workers started on this store and what they have done.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        lock(&self.inner.workers).iter().map(|w| lock(w).clone()).collect()
    }
}
