//! The data path through the library API, on real disks and a real Raft group: round trips,
//! deduplication, restart recovery, and reads that survive lost and corrupted shards.

use bytes::Bytes;
use cairn::{BucketName, ListRequest, ObjectAttrs, PutConditions, Store, StoreConfig};
use futures::{stream, TryStreamExt};

mod common;
use common::{commit, data, frames, open_with_bucket, put, read};

async fn get(store: &Store, key: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let o = store.object("bkt", key).await.unwrap();
    read(store, &o, range).await
}

fn segment_files(dir: &std::path::Path, disk: usize) -> Vec<std::path::PathBuf> {
    let d = dir.join("disks").join(format!("{disk:02}"));
    std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_restart_and_two_lost_disks_of_six() {
    let dir = tempfile::tempdir().unwrap();
    let big = data(20 << 20, 1);
    let small = b"small objects live inline".to_vec();
    {
        let store = cairn_local::open(dir.path(), 6, StoreConfig::default()).await.unwrap();
        assert_eq!((store.scheme().data, store.scheme().parity), (4, 2));
        store
            .create_bucket(&BucketName::new("bkt").unwrap(), "me")
            .await
            .unwrap();
        put(&store, "big", &big).await;
        put(&store, "small", &small).await;
        // Same content again: nothing new is stored.
        let before = store.stats().await.unwrap().live_bytes;
        put(&store, "big-again", &big).await;
        assert_eq!(store.stats().await.unwrap().live_bytes, before);
        store.shutdown().await;
    }
    // Lose disk 0 entirely and corrupt every record of disk 3.
    for f in segment_files(dir.path(), 0) {
        std::fs::remove_file(f).unwrap();
    }
    for f in segment_files(dir.path(), 3) {
        let mut b = std::fs::read(&f).unwrap();
        for i in (100..b.len()).step_by(4096) {
            b[i] ^= 0x5A;
        }
        std::fs::write(&f, b).unwrap();
    }
    let store = cairn_local::open(dir.path(), 6, StoreConfig::default()).await.unwrap();
    assert_eq!(get(&store, "big", 0..u64::MAX).await, big);
    assert_eq!(get(&store, "big-again", 0..u64::MAX).await, big);
    assert_eq!(get(&store, "small", 0..u64::MAX).await, small);
    // Ranges that cross chunk boundaries.
    let r = 3_000_000u64..9_123_457;
    assert_eq!(
        get(&store, "big", r.clone()).await,
        &big[r.start as usize..r.end as usize]
    );
    let page = store
        .list_objects(
            "bkt",
            ListRequest {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let keys: Vec<_> = page.objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["big", "big-again", "small"]);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_lost_shards_of_six_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let big = data(3 << 20, 2);
    {
        let store = open_with_bucket(dir.path(), 6, StoreConfig::default()).await;
        put(&store, "big", &big).await;
        store.shutdown().await;
    }
    for disk in [0, 1, 2] {
        for f in segment_files(dir.path(), disk) {
            std::fs::remove_file(f).unwrap();
        }
    }
    let store = cairn_local::open(dir.path(), 6, StoreConfig::default()).await.unwrap();
    let o = store.object("bkt", "big").await.unwrap();
    let r: Result<Vec<Bytes>, _> = store.read(&o, 0..u64::MAX).try_collect().await;
    assert!(
        matches!(r, Err(cairn::Error::Storage(_))),
        "reading with 3 of 6 shards lost must fail, not return garbage"
    );
    // Copying from it (UploadPartCopy) fails as the store's fault, not as a broken client body.
    let copied = store.stage_copy(cairn::STANDARD, &o, 0..o.size, u64::MAX).await;
    assert!(matches!(copied, Err(cairn::Error::Storage(_))), "{copied:?}");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_count_cannot_change_under_existing_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = cairn_local::open(dir.path(), 3, StoreConfig::default()).await.unwrap();
        store.shutdown().await;
    }
    assert!(cairn_local::open(dir.path(), 6, StoreConfig::default()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opener_is_refused_before_touching_disks() {
    let dir = tempfile::tempdir().unwrap();
    let first = cairn_local::open(dir.path(), 1, StoreConfig::default()).await.unwrap();
    assert!(cairn_local::open(dir.path(), 1, StoreConfig::default()).await.is_err());
    first.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_recreated_during_an_upload_never_receives_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = cairn_local::open(dir.path(), 1, StoreConfig::default()).await.unwrap();
    let name = BucketName::new("shared").unwrap();
    store.create_bucket(&name, "alice").await.unwrap();
    // Alice's upload checks the bucket, then streams for a while...
    let guard = store.bucket_guard("shared").await.unwrap();
    let body = data(300_000, 7);
    let frames = vec![Ok::<_, std::io::Error>(Bytes::from(body.clone()))];
    let staged = store.stage(stream::iter(frames), u64::MAX, true).await.unwrap();
    // ...meanwhile the bucket is deleted and Bob takes the name.
    store.delete_bucket("shared").await.unwrap();
    store.create_bucket(&name, "bob").await.unwrap();
    let commit = store
        .commit_object(
            &guard,
            "alice-data",
            staged,
            ObjectAttrs::default(),
            Default::default(),
            "alice",
            PutConditions::default(),
        )
        .await;
    assert!(matches!(commit, Err(cairn::Error::NoSuchBucket)), "{commit:?}");
    let upload = store
        .create_upload(
            &guard,
            "alice-mp",
            ObjectAttrs::default(),
            None,
            "alice",
            cairn::STANDARD,
        )
        .await;
    assert!(matches!(upload, Err(cairn::Error::NoSuchBucket)), "{upload:?}");
    let listed = store
        .list_objects(
            "shared",
            ListRequest {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(listed.objects.is_empty(), "Bob's bucket received Alice's object");
    assert!(store.uploads("shared", "", "", "", 10).await.unwrap().is_empty());
    // A guard taken now writes into Bob's bucket as usual.
    let fresh = store.bucket_guard("shared").await.unwrap();
    assert_eq!(fresh.owner(), "bob");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etag_is_the_md5_of_the_whole_body_however_many_chunks() {
    use md5::{Digest, Md5};
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_bucket(dir.path(), 1, StoreConfig::default()).await;
    // Empty, inline, one chunk, and many chunks computed in parallel by their tasks.
    for len in [0usize, 100, 300 << 10, 13 << 20] {
        let body = data(len, len as u64 + 1);
        let staged = store.stage(frames(&body), u64::MAX, true).await.unwrap();
        assert_eq!(staged.md5()[..], Md5::digest(&body)[..], "{len} bytes");
        let o = commit(&store, &format!("k{len}"), staged).await;
        assert_eq!(read(&store, &o, 0..len as u64).await, body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_repeated_within_one_upload_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_bucket(dir.path(), 1, StoreConfig::default()).await;
    let on_disk = || -> u64 {
        segment_files(dir.path(), 0)
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    };
    let before = on_disk();
    // 16 MiB of zeros: four identical maximum-size (4 MiB) chunks.
    let zeros = vec![0u8; 16 << 20];
    let o = put(&store, "zeros", &zeros).await;
    let grew = on_disk() - before;
    assert!(grew < 5 << 20, "16 MiB of zeros took {grew} bytes on disk");
    assert_eq!(read(&store, &o, 0..zeros.len() as u64).await, zeros);
}
