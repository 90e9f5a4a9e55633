//! Bucket records and access keys cached for authorising requests (`Store::bucket_for_access`,
//! `Store::key`): a change made through the same store is seen at once; one made through
//! another store over the same metadata (another gateway) within `ACCESS_CACHE_BOUND`, by the
//! access version check; a write never goes by the cache.

use std::time::{Duration, Instant};

use cairn::{BucketName, Error, StoreConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_changes_are_seen_at_once_here_and_within_the_bound_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let node = cairn_meta_node::MetaNode::open_single(&dir.path().join("meta"))
        .await
        .unwrap();
    let meta = cairn_meta_node::local_client(node);
    let (a, _lock_a) = cairn_local::open_with_meta(&dir.path().join("a"), 1, StoreConfig::default(), meta.clone())
        .await
        .unwrap();
    let (b, _lock_b) = cairn_local::open_with_meta(&dir.path().join("b"), 1, StoreConfig::default(), meta)
        .await
        .unwrap();
    let name = BucketName::new("shared").unwrap();

    // Absence is cached, and forgotten when this store creates the bucket.
    assert!(matches!(a.bucket_for_access("shared").await, Err(Error::NoSuchBucket)));
    a.create_bucket(&name, "alice").await.unwrap();
    assert_eq!(a.bucket_for_access("shared").await.unwrap().owner, "alice");

    // Re-created under another owner through the other store: `a` may answer the old owner
    // for at most the bound; a write through `a` goes to the bucket as it is now.
    b.delete_bucket("shared").await.unwrap();
    b.create_bucket(&name, "bob").await.unwrap();
    assert_eq!(b.bucket_for_access("shared").await.unwrap().owner, "bob");
    assert_eq!(a.bucket_guard("shared").await.unwrap().owner(), "bob");
    let changed = Instant::now();
    loop {
        let seen = a.bucket_for_access("shared").await.unwrap();
        if seen.owner == "bob" {
            break;
        }
        assert!(
            changed.elapsed() < cairn::ACCESS_CACHE_BOUND + Duration::from_secs(5),
            "the old owner is still seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Deleted through this store: gone at once.
    a.delete_bucket("shared").await.unwrap();
    assert!(matches!(a.bucket_for_access("shared").await, Err(Error::NoSuchBucket)));

    // Access keys the same way: created through `b`, used through `a` within the bound;
    // deleted through `b`, refused by `a` within the bound; gone at once where deleted.
    assert!(a.key("AKSHARED").await.unwrap().is_none());
    b.create_key(cairn::AccessKey {
        access_key: "AKSHARED".into(),
        secret_key: "secret".into(),
        name: "shared".into(),
        created: 1,
    })
    .await
    .unwrap();
    within_bound(|| async { a.key("AKSHARED").await.unwrap().is_some() }).await;
    b.delete_key("AKSHARED").await.unwrap();
    assert!(b.key("AKSHARED").await.unwrap().is_none());
    within_bound(|| async { a.key("AKSHARED").await.unwrap().is_none() }).await;
    a.shutdown().await;
}

/// Waits until `seen` holds, failing if that takes longer than the cache's bound (plus room
/// for a loaded machine's scheduling).
async fn within_bound<F, Fut>(seen: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let changed = Instant::now();
    while !seen().await {
        assert!(
            changed.elapsed() < cairn::ACCESS_CACHE_BOUND + Duration::from_secs(5),
            "the change is still not seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
