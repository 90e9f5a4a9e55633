//! Helpers shared by the data-path integration tests: seeded content, a store with bucket
//! `bkt`, and put/commit/read shorthands. (Each test file uses a part of them.)
#![allow(dead_code)]

use bytes::Bytes;
use cairn::{Object, ObjectAttrs, PutConditions, Staged, Store, StoreConfig};
use futures::{stream, Stream, TryStreamExt};

/// `len` pseudo-random bytes from `seed` (xorshift), the same on every run. Seeds `2n` and
/// `2n + 1` give the same bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `body` in uneven frames, as a network delivers it.
pub fn frames(body: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let frames: Vec<Result<Bytes, std::io::Error>> =
        body.chunks(70_001).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(frames)
}

/// Opens a store on `dir` with `disks` disks and creates bucket `bkt`, owned by `me`.
pub async fn open_with_bucket(dir: &std::path::Path, disks: usize, config: StoreConfig) -> Store {
    let store = cairn_local::open(dir, disks, config).await.unwrap();
    store
        .create_bucket(&cairn::BucketName::new("bkt").unwrap(), "me")
        .await
        .unwrap();
    store
}

/// Commits staged data as `bkt/key`.
pub async fn commit(store: &Store, key: &str, staged: Staged) -> Object {
    let bucket = store.bucket_guard("bkt").await.unwrap();
    store
        .commit_object(
            &bucket,
            key,
            staged,
            ObjectAttrs::default(),
            Default::default(),
            "me",
            PutConditions::default(),
        )
        .await
        .unwrap()
}

/// Stages and commits `body` as `bkt/key`.
pub async fn put(store: &Store, key: &str, body: &[u8]) -> Object {
    let staged = store.stage(frames(body), u64::MAX, true).await.unwrap();
    commit(store, key, staged).await
}

/// Bytes `range` of `o`.
pub async fn read(store: &Store, o: &Object, range: std::ops::Range<u64>) -> Vec<u8> {
    let parts: Vec<Bytes> = store.read(o, range).try_collect().await.unwrap();
    parts.concat()
}
