//! Space reclamation through the library API: what is overwritten, deleted, aborted or staged
//! and dropped goes; what is referenced, or staged and not yet committed, stays; uploads racing
//! the collector never fail and never commit a chunk whose shards it deleted.

use std::time::Duration;

use cairn::{CompactOptions, ObjectAttrs, ReclaimConfig, Store, StoreConfig};

mod common;
use common::{commit, data, frames, open_with_bucket, put, read};

fn config() -> StoreConfig {
    StoreConfig {
        segment_bytes: 1 << 20,
        ..StoreConfig::default()
    }
}

fn reclaim(grace: Duration, every: Duration) -> ReclaimConfig {
    ReclaimConfig {
        grace,
        every,
        upload_expiry: None,
        // Low, so that the disks end close to the live data.
        compaction: CompactOptions {
            min_dead_ratio: 0.05,
            max_bytes_per_sec: 0,
        },
    }
}

/// Runs every reclamation worker once more and waits for it.
async fn run(store: &Store) {
    let n = store.request_reclaim().unwrap();
    store.wait_reclaim(n).await;
}

async fn read_back(store: &Store, key: &str, want: &[u8]) {
    let o = store.object("bkt", key).await.unwrap();
    assert_eq!(read(store, &o, 0..o.size).await, want, "{key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreferenced_data_goes_and_live_data_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_bucket(dir.path(), 3, config()).await;
    let _task = store.spawn_reclaimer(reclaim(Duration::ZERO, Duration::from_secs(3600)));
    let keep = data(3 << 20, 11);
    put(&store, "keep", &keep).await;
    put(&store, "overwritten", &data(3 << 20, 13)).await;
    let newer = data(2 << 20, 15);
    put(&store, "overwritten", &newer).await;
    put(&store, "deleted", &data(3 << 20, 17)).await;
    store.delete_objects("bkt", vec!["deleted".into()]).await.unwrap();
    // A multipart upload aborted, and an upload staged then dropped (a client gone).
    let bucket = store.bucket_guard("bkt").await.unwrap();
    let up = store
        .create_upload(&bucket, "aborted", ObjectAttrs::default(), None, "me", cairn::STANDARD)
        .await
        .unwrap();
    let part = store.stage(frames(&data(3 << 20, 19)), u64::MAX, false).await.unwrap();
    store
        .commit_part("bkt", "aborted", &up.upload_id, 1, part, Default::default())
        .await
        .unwrap();
    store.abort_upload("bkt", "aborted", &up.upload_id).await.unwrap();
    drop(store.stage(frames(&data(3 << 20, 21)), u64::MAX, false).await.unwrap());
    // Staged and not yet committed: must survive every pass.
    let pending_body = data(3 << 20, 23);
    let pending = store.stage(frames(&pending_body), u64::MAX, false).await.unwrap();

    let before = store.stats().await.unwrap();
    run(&store).await;
    run(&store).await;
    let after = store.stats().await.unwrap();
    commit(&store, "pending", pending).await;
    read_back(&store, "keep", &keep).await;
    read_back(&store, "overwritten", &newer).await;
    read_back(&store, "pending", &pending_body).await;
    // Live: 3 + 2 + 3 MiB, erasure 2+1: 12 MiB of shards; everything else went.
    let live = (8u64 << 20) * 3 / 2;
    assert!(after.live_bytes <= live + (64 << 10), "{after:?}");
    assert!(after.disk_bytes <= live + live / 10, "{after:?} (before {before:?})");
    assert!(before.disk_bytes > 2 * after.disk_bytes, "{before:?} -> {after:?}");
    let workers = store.workers();
    let get = |n: &str| workers.iter().find(|w| w.name == n).unwrap().clone();
    assert!(get("collector").total_items > 0, "{workers:?}");
    assert!(get("orphan-sweep").total_items > 0, "{workers:?}");
    assert!(get("compaction").total_bytes > 0, "{workers:?}");
    assert!(workers.iter().all(|w| w.last_error.is_none()), "{workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_goes_before_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_bucket(dir.path(), 1, config()).await;
    let _task = store.spawn_reclaimer(reclaim(Duration::from_secs(3600), Duration::from_secs(3600)));
    let body = data(2 << 20, 8);
    put(&store, "x", &body).await;
    store.delete_objects("bkt", vec!["x".into()]).await.unwrap();
    run(&store).await;
    run(&store).await;
    let status = store.reclaim_status().await.unwrap();
    assert!(status.pending_chunks > 0, "{status:?}");
    assert!(
        store.stats().await.unwrap().live_bytes >= 2 << 20,
        "{:?}",
        store.stats().await.unwrap()
    );
    // Uploaded again, the chunks are referenced again without being written.
    put(&store, "x", &body).await;
    read_back(&store, "x", &body).await;
}

/// Uploads of the same content, deletes and collection passes, all at once and over and
/// over: every upload is acknowledged, and every acknowledged object reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_racing_the_collector_never_fail_nor_lose_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_bucket(dir.path(), 3, config()).await;
    let _task = store.spawn_reclaimer(reclaim(Duration::ZERO, Duration::from_millis(1)));
    let bodies: Vec<Vec<u8>> = (0..3).map(|s| data(1 << 20, 101 + 2 * s)).collect();
    let mut writers = Vec::new();
    for w in 0..3usize {
        let (store, bodies) = (store.clone(), bodies.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..40usize {
                let key = format!("w{w}");
                let body = &bodies[(w + i) % bodies.len()];
                put(&store, &key, body).await;
                read_back(&store, &key, body).await;
                if i % 3 == 0 {
                    store.delete_objects("bkt", vec![key]).await.unwrap();
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    run(&store).await;
    for w in 0..3usize {
        if let Ok(o) = store.object("bkt", &format!("w{w}")).await {
            let want = &bodies[(w + 39) % bodies.len()];
            assert_eq!(&read(&store, &o, 0..o.size).await, want);
        }
    }
    let status = store.reclaim_status().await.unwrap();
    assert!(status.passes_done > 0, "no collection pass ran: {status:?}");
}
