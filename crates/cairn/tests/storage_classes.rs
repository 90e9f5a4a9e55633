//! Storage classes through the library API: each class's chunks have its redundancy on disk,
//! deduplication stays within a class, an unknown class is refused, and a class the disks
//! cannot honour is written with what they can hold (and said so).

use cairn::{Error, ObjectAttrs, StoreConfig, REDUCED_REDUNDANCY, STANDARD};

mod common;
use common::{commit, data, frames, open_with_bucket, put, read};

async fn put_in(store: &cairn::Store, class: &str, key: &str, body: &[u8]) -> cairn::Object {
    let staged = store
        .stage_sized(class, frames(body), u64::MAX, true, None)
        .await
        .unwrap();
    assert_eq!(staged.storage_class(), class);
    commit(store, key, staged).await
}

async fn live(store: &cairn::Store) -> f64 {
    store.stats().await.unwrap().live_bytes as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_class_is_stored_with_its_redundancy() {
    let dir = tempfile::tempdir().unwrap();
    let body = data(12 << 20, 41);
    let len = body.len() as f64;
    {
        let store = open_with_bucket(dir.path(), 6, StoreConfig::default()).await;
        let classes: Vec<String> = store.storage_classes().into_iter().map(|(n, _)| n).collect();
        assert_eq!(classes, [STANDARD, REDUCED_REDUNDANCY]);
        assert!(store.placement_warnings().await.is_empty());

        let o = put(&store, "std", &body).await;
        assert_eq!(o.storage_class, STANDARD);
        let after_std = live(&store).await;
        assert!((after_std / len - 1.5).abs() < 0.05, "RS 4+2: {after_std} for {len}");

        // The same bytes as two replicas: stored again (a STANDARD chunk is not shared with a
        // class of other redundancy), twice their size.
        let o = put_in(&store, REDUCED_REDUNDANCY, "rrs", &body).await;
        assert_eq!(o.storage_class, REDUCED_REDUNDANCY);
        let rrs = live(&store).await - after_std;
        assert!((rrs / len - 2.0).abs() < 0.05, "2 replicas: {rrs} for {len}");
        // Within the class, deduplicated.
        let before = live(&store).await;
        put_in(&store, REDUCED_REDUNDANCY, "rrs-again", &body).await;
        assert_eq!(live(&store).await, before);

        // A multipart upload keeps its class for its parts and its object.
        let bucket = store.bucket_guard("bkt").await.unwrap();
        let up = store
            .create_upload(&bucket, "mp", ObjectAttrs::default(), None, "me", REDUCED_REDUNDANCY)
            .await
            .unwrap();
        assert_eq!(up.storage_class, REDUCED_REDUNDANCY);
        let part = data(3 << 20, 43);
        let staged = store
            .stage_sized(&up.storage_class, frames(&part), u64::MAX, false, None)
            .await
            .unwrap();
        let p = store
            .commit_part("bkt", "mp", &up.upload_id, 1, staged, Default::default())
            .await
            .unwrap();
        let o = store
            .complete_upload("bkt", "mp", &up.upload_id, vec![(1, p.etag)], Default::default())
            .await
            .unwrap();
        assert_eq!(o.storage_class, REDUCED_REDUNDANCY);

        // An unknown class is refused, for objects and uploads.
        let refused = store.stage_sized("GLACIER", frames(b"x"), u64::MAX, true, None).await;
        assert!(matches!(refused, Err(Error::InvalidStorageClass(c)) if c == "GLACIER"));
        let refused = store
            .create_upload(&bucket, "mp2", ObjectAttrs::default(), None, "me", "standard")
            .await;
        assert!(matches!(refused, Err(Error::InvalidStorageClass(_))));
        store.shutdown().await;
    }
    // Two replicas survive the loss of either disk holding them: lose one whole disk (each
    // chunk of the class has a copy on it or not), and everything reads back.
    for f in std::fs::read_dir(dir.path().join("disks").join("00")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let store = cairn_local::open(dir.path(), 6, StoreConfig::default()).await.unwrap();
    for key in ["std", "rrs", "rrs-again"] {
        let o = store.object("bkt", key).await.unwrap();
        assert_eq!(read(&store, &o, 0..u64::MAX).await, body, "{key}");
    }
    let o = store.object("bkt", "mp").await.unwrap();
    assert_eq!(read(&store, &o, 0..u64::MAX).await, data(3 << 20, 43));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_the_disks_cannot_hold_is_written_with_fewer_shards() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_bucket(dir.path(), 1, StoreConfig::default()).await;
    let warnings = store.placement_warnings().await;
    assert!(
        warnings.len() == 1 && warnings[0].contains(REDUCED_REDUNDANCY) && warnings[0].contains("1+0"),
        "{warnings:?}"
    );
    let body = data(2 << 20, 45);
    let o = put_in(&store, REDUCED_REDUNDANCY, "rrs", &body).await;
    assert_eq!(o.storage_class, REDUCED_REDUNDANCY);
    // One disk: one copy, and no second id for the same bytes (1+0 is the store's own scheme).
    let before = live(&store).await;
    assert!((before / body.len() as f64 - 1.0).abs() < 0.05, "{before}");
    put(&store, "std", &body).await;
    assert_eq!(live(&store).await, before);
    assert_eq!(read(&store, &o, 0..u64::MAX).await, body);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_placed_in_a_pool_cannot_be_written_to_a_fixed_list_of_disks() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::default();
    config.storage_classes.insert(
        "COLD".into(),
        cairn::StorageClass {
            scheme: cairn::ErasureScheme::new(1, 1).unwrap(),
            pool: Some("archive".into()),
        },
    );
    let store = open_with_bucket(dir.path(), 3, config).await;
    let warnings = store.placement_warnings().await;
    assert!(
        warnings.len() == 1 && warnings[0].contains("COLD") && warnings[0].contains("no pools"),
        "{warnings:?}"
    );
    // Refused as unavailable before a byte of the body is read: the stream would fail.
    let body = futures::stream::iter([Err::<bytes::Bytes, _>("the body was read")]);
    let refused = store.stage_sized("COLD", body, u64::MAX, true, None).await;
    assert!(
        matches!(&refused, Err(Error::Unavailable(m)) if m.contains("pool archive")),
        "{refused:?}"
    );
    store.shutdown().await;
}
