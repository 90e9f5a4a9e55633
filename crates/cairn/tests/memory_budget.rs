//! The memory budget through the library API: an upload that cannot get room waits, then fails
//! with `Unavailable` (a 503 to S3 clients) instead of allocating; room given back lets the
//! next one through; reads give their share back when their bytes are dropped.

use std::time::Duration;

use bytes::Bytes;
use cairn::StoreConfig;
use futures::{stream, StreamExt, TryStreamExt};

mod common;
use common::{commit, data, open_with_bucket, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_wait_for_room_then_fail_and_reads_give_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        // One upload's working set on one disk: a 4 MiB chunker buffer and a 4 MiB chunk with its shard.
        memory_budget: 12 << 20,
        memory_budget_wait: Duration::from_millis(200),
        ..StoreConfig::default()
    };
    let store = open_with_bucket(dir.path(), 1, config).await;

    // An upload of unknown length holds its working set while
    // its client is slow to send: here, the whole budget.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, std::io::Error>>();
    let slow = {
        let store = store.clone();
        tokio::spawn(async move { store.stage(rx, u64::MAX, true).await })
    };
    tx.unbounded_send(Ok(Bytes::from(vec![7u8; 100_000]))).unwrap();
    while store.memory_reserved() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(store.memory_reserved(), 12 << 20);

    // Another upload finds no room, waits, and is told to retry.
    let one = vec![Ok::<_, std::io::Error>(Bytes::from_static(b"hello"))];
    let refused = store.stage(stream::iter(one), u64::MAX, true).await;
    assert!(matches!(refused, Err(cairn::Error::Unavailable(_))), "{refused:?}");

    // The slow upload finishes; its room comes back and the next upload goes through.
    drop(tx);
    let staged = slow.await.unwrap().unwrap();
    assert_eq!(staged.size(), 100_000);
    assert_eq!(store.memory_reserved(), 0);
    let o = commit(&store, "k", staged).await;

    // A read holds its share while its bytes are alive, and gives it back when they drop.
    let mut reading = store.read(&o, 0..o.size);
    let first = reading.next().await.unwrap().unwrap();
    assert!(store.memory_reserved() > 0);
    let rest: Vec<Bytes> = reading.try_collect().await.unwrap();
    drop((first, rest));
    assert_eq!(store.memory_reserved(), 0);
    store.shutdown().await;
}

/// UploadPartCopy's working set (its upload and its read of the source) is taken in one
/// acquisition: with a budget that fits only one of them, a copy still goes through instead of
/// holding the upload's share while its read waits for room that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_never_waits_for_itself() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        memory_budget: 12 << 20,
        memory_budget_wait: Duration::from_millis(200),
        ..StoreConfig::default()
    };
    let store = open_with_bucket(dir.path(), 1, config).await;
    let body = data(6_000_000, 99);
    let src = put(&store, "src", &body).await;

    // More than a chunker buffer: the upload's share alone is the whole budget.
    let copied = store
        .stage_copy(cairn::STANDARD, &src, 1000..5_500_000, u64::MAX)
        .await
        .unwrap();
    assert_eq!(copied.size(), 5_499_000);
    assert_eq!(store.memory_reserved(), 0);
    let o = commit(&store, "dst", copied).await;
    let back: Vec<Bytes> = store.read(&o, 0..o.size).try_collect().await.unwrap();
    assert_eq!(back.concat(), &body[1000..5_500_000]);
    drop(back);
    assert_eq!(store.memory_reserved(), 0);
    // The same copy as a read fed to an upload holds the whole budget and waits for more.
    let read = store.read(&src, 1000..5_500_000);
    let stalled = store
        .stage_sized(cairn::STANDARD, read, u64::MAX, false, Some(5_499_000))
        .await;
    let e = stalled.expect_err("a read fed to an upload waits for the room the upload holds");
    assert!(e.to_string().contains("memory budget"), "{e}");
    store.shutdown().await;
}
