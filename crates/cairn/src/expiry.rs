//! Expiry of abandoned multipart uploads: an upload initiated longer ago than the configured
//! age is aborted, which releases its parts' chunk references (their shards become garbage for
//! the collector). Clients that crash, or never complete nor abort, otherwise hold their parts'
//! space for ever. AWS leaves this to a lifecycle rule (AbortIncompleteMultipartUpload); here a
//! store-wide age applies to every bucket.

use std::time::Duration;

use crate::{Error, Result, Store};

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
}
