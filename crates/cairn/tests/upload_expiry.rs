//! Expiry of abandoned multipart uploads through the library API: an upload older than the
//! age is aborted (its parts released), a younger one is left alone.

use std::time::Duration;

use cairn::{ObjectAttrs, StoreConfig};

mod common;
use common::{data, frames, open_with_bucket};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_older_than_the_age_are_aborted_and_younger_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_bucket(dir.path(), 1, StoreConfig::default()).await;
    let bucket = store.bucket_guard("bkt").await.unwrap();
    let old = store
        .create_upload(&bucket, "old", ObjectAttrs::default(), None, "me", cairn::STANDARD)
        .await
        .unwrap();
    let staged = store.stage(frames(&data(1 << 20, 5)), u64::MAX, false).await.unwrap();
    store
        .commit_part("bkt", "old", &old.upload_id, 1, staged, Default::default())
        .await
        .unwrap();
    // The second upload must begin at a later millisecond than the first.
    let ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    while ms() <= old.initiated {
        tokio::task::yield_now().await;
    }
    let young = store
        .create_upload(&bucket, "young", ObjectAttrs::default(), None, "me", cairn::STANDARD)
        .await
        .unwrap();
    assert!(young.initiated > old.initiated);
    let hour = Duration::from_secs(3600);
    // Half an hour after the first upload began, nothing is old enough.
    let aborted = store.expire_uploads(hour, old.initiated + 1_800_000).await.unwrap();
    assert_eq!(aborted, 0);
    assert!(store.upload("bkt", "old", &old.upload_id).await.is_ok());
    // An hour after the second began, only the first is older than an hour.
    let aborted = store.expire_uploads(hour, young.initiated + 3_600_000).await.unwrap();
    assert_eq!(aborted, 1);
    assert!(matches!(
        store.upload("bkt", "old", &old.upload_id).await,
        Err(cairn::Error::NoSuchUpload)
    ));
    assert!(store.upload("bkt", "young", &young.upload_id).await.is_ok());
    let aborted = store.expire_uploads(hour, young.initiated + 7_200_000).await.unwrap();
    assert_eq!(aborted, 1);
    assert!(store.uploads("bkt", "", "", "", 10).await.unwrap().is_empty());
    // The bucket holds nothing any more, so it can be deleted.
    store.delete_bucket("bkt").await.unwrap();
}
