//! Objects whose manifests are stored apart from their records (many chunks, many parts):
//! reads of any range walk the pages lazily, copies share them, a replaced version stays
//! readable for reads already under way, and all of it survives a restart.

use cairn::{ChunkerParams, ObjectAttrs, PutConditions, StoreConfig};

mod common;
use common::{data, frames, open_with_bucket, put, read};

/// Small chunks, so a few MiB make thousands of them (several manifest pages).
fn config() -> StoreConfig {
    StoreConfig {
        chunker: ChunkerParams {
            version: 0,
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
        },
        min_part_size: 1,
        ..StoreConfig::default()
    }
}

/// Seeded ranges over `len` bytes, including both ends and empty ones.
fn ranges(len: u64, seed: u64) -> Vec<std::ops::Range<u64>> {
    let mut x = seed | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut out = vec![0..len, 0..1, len - 1..len, len / 2..len / 2];
    for _ in 0..24 {
        let a = next(len);
        let b = a + next(len - a + 1);
        out.push(a..b);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paged_object_reads_back_any_range_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let body = data(12 << 20, 11);
    let store = open_with_bucket(dir.path(), 1, config()).await;
    let o = put(&store, "big", &body).await;
    let Some(pages) = o.manifest_pages() else {
        panic!("a manifest of thousands of chunks stays in the record: {o:?}")
    };
    assert!(pages >= 3, "{pages}");
    let head = store.object("bkt", "big").await.unwrap();
    assert_eq!(head, o);
    for r in ranges(body.len() as u64, 5) {
        assert_eq!(
            read(&store, &head, r.clone()).await,
            &body[r.start as usize..r.end as usize],
            "{r:?}"
        );
    }
    store.shutdown().await;
    drop(store);

    let store = cairn_local::open(dir.path(), 1, config()).await.unwrap();
    let head = store.object("bkt", "big").await.unwrap();
    assert_eq!(read(&store, &head, 0..body.len() as u64).await, body);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_share_pages_and_a_replaced_version_stays_readable_for_reads_under_way() {
    let dir = tempfile::tempdir().unwrap();
    let body = data(6 << 20, 12);
    let store = open_with_bucket(dir.path(), 1, config()).await;
    let src = put(&store, "src", &body).await;
    let guard = store.bucket_guard("bkt").await.unwrap();
    let before = store.stats().await.unwrap().live_bytes;
    let copy = store
        .copy_object("bkt", "src", &src, &guard, "dst", None, "me")
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().live_bytes, before, "a copy writes no data");
    assert!(copy.manifest_pages().is_some());
    assert_eq!((copy.size, &copy.etag), (src.size, &src.etag));

    // A GET that read the source's record, then the source is overwritten: the GET still
    // streams the version it started with.
    let old = store.object("bkt", "src").await.unwrap();
    put(&store, "src", b"small now").await;
    assert_eq!(read(&store, &old, 0..body.len() as u64).await, body);
    assert_eq!(read(&store, &copy, 0..body.len() as u64).await, body);
    let dst = store.object("bkt", "dst").await.unwrap();
    assert_eq!(read(&store, &dst, 1000..2_000_000).await, &body[1000..2_000_000]);

    // A copy from a version that is no longer current changes nothing.
    let stale = store.copy_object("bkt", "src", &src, &guard, "dst2", None, "me").await;
    assert!(matches!(stale, Err(cairn::Error::SourceChanged)), "{stale:?}");
    assert!(matches!(
        store.object("bkt", "dst2").await,
        Err(cairn::Error::NoSuchKey)
    ));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_object_of_many_parts_finds_each_part() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_bucket(dir.path(), 1, config()).await;
    let guard = store.bucket_guard("bkt").await.unwrap();
    let up = store
        .create_upload(&guard, "mp", ObjectAttrs::default(), None, "me", cairn::STANDARD)
        .await
        .unwrap();
    let mut whole = Vec::new();
    let mut listed = Vec::new();
    for n in 1..=40u32 {
        let part = data(20_000 + n as usize * 100, u64::from(n));
        let staged = store.stage(frames(&part), u64::MAX, false).await.unwrap();
        let rec = store
            .commit_part("bkt", "mp", &up.upload_id, n, staged, Default::default())
            .await
            .unwrap();
        listed.push((n, rec.etag));
        whole.extend_from_slice(&part);
    }
    let o = store
        .complete_upload("bkt", "mp", &up.upload_id, listed, PutConditions::default())
        .await
        .unwrap();
    assert_eq!(o.part_count(), 40);
    assert!(o.manifest_pages().is_some());
    let e = store.part_extent(&o, 17).await.unwrap().unwrap();
    let expect_offset: u64 = (1..17).map(|n| 20_000 + n * 100).sum();
    assert_eq!((e.offset, e.size), (expect_offset, 20_000 + 1700));
    assert_eq!(
        read(&store, &o, e.offset..e.offset + e.size).await,
        &whole[e.offset as usize..(e.offset + e.size) as usize]
    );
    assert_eq!(store.part_extent(&o, 41).await.unwrap(), None);
    assert_eq!(read(&store, &o, 0..o.size).await, whole);
    store.shutdown().await;
}
