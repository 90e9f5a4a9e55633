//! Reads return only bytes that passed the chunk's BLAKE3 check, and rebuild around bad disks:
//! shards rewritten with wrong bytes under a valid checksum (what a faulty node or a bug would
//! leave) are found by trying other subsets of shards, and never served even when too many are
//! wrong to rebuild; a disk that stops answering costs a read the hedging delay, not a hang.
//! Six real segment stores (RS 4+2) under a real one-member Raft group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn::{BucketName, ErasureScheme, Store, StoreConfig};
use cairn_shard_store::{
    CompactOptions, CompactProgress, CompactionReport, DiskHealth, SegmentStore, SegmentStoreOptions, ShardKey,
    ShardStore, ShardStoreError,
};
use futures::TryStreamExt;

mod common;
use common::{data, put};

/// A real disk that can be made to stop answering reads, as a node stopped with SIGSTOP would.
struct Stoppable {
    disk: SegmentStore,
    stopped: AtomicBool,
}

#[async_trait::async_trait]
impl ShardStore for Stoppable {
    async fn put(&self, key: ShardKey, data: Bytes) -> Result<(), ShardStoreError> {
        self.disk.put(key, data).await
    }
    async fn get(&self, key: ShardKey) -> Result<Option<Bytes>, ShardStoreError> {
        if self.stopped.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.disk.get(key).await
    }
    async fn delete(&self, key: ShardKey) -> Result<bool, ShardStoreError> {
        self.disk.delete(key).await
    }
    async fn stat(&self, key: ShardKey) -> Result<Option<u32>, ShardStoreError> {
        self.disk.stat(key).await
    }
    async fn list(&self, after: Option<ShardKey>, limit: usize) -> Result<Vec<(ShardKey, u32)>, ShardStoreError> {
        self.disk.list(after, limit).await
    }
    async fn damaged(&self) -> Result<Vec<ShardKey>, ShardStoreError> {
        ShardStore::damaged(&self.disk).await
    }
    async fn health(&self) -> Result<DiskHealth, ShardStoreError> {
        self.disk.health().await
    }
    async fn compact(&self, o: &CompactOptions, p: &CompactProgress) -> Result<CompactionReport, ShardStoreError> {
        self.disk.compact(o, p).await
    }
}

async fn store(dir: &std::path::Path, config: StoreConfig) -> (Store, Vec<Arc<Stoppable>>) {
    let node = cairn_meta_node::MetaNode::open_single(&dir.join("meta")).await.unwrap();
    let disks: Vec<Arc<Stoppable>> = (0..6)
        .map(|i| {
            Arc::new(Stoppable {
                disk: SegmentStore::open(dir.join(format!("disk{i}")), SegmentStoreOptions::default()).unwrap(),
                stopped: AtomicBool::new(false),
            })
        })
        .collect();
    let store = Store::from_parts(
        cairn_meta_node::local_client(node),
        disks.iter().map(|d| d.clone() as Arc<dyn ShardStore>).collect(),
        ErasureScheme::new(4, 2).unwrap(),
        config,
    );
    store
        .create_bucket(&BucketName::new("bkt").unwrap(), "me")
        .await
        .unwrap();
    (store, disks)
}

/// Rewrites shard `index` of every chunk, wherever it is, with other bytes of the same length
/// (stored with a valid checksum: only the chunk's BLAKE3 can tell).
async fn rewrite_wrong(disks: &[Arc<Stoppable>], index: u8) -> usize {
    let mut n = 0;
    for d in disks {
        for (key, len) in d.list(None, cairn_shard_store::MAX_LIST).await.unwrap() {
            if key.index == index {
                let wrong = Bytes::from(data(len as usize, 1000 + u64::from(index) * 2));
                d.put(key, wrong).await.unwrap();
                n += 1;
            }
        }
    }
    n
}

async fn read_all(store: &Store, key: &str) -> Result<Vec<u8>, cairn::Error> {
    let o = store.object("bkt", key).await.unwrap();
    let chunks: Vec<Bytes> = store.read(&o, 0..o.size).try_collect().await?;
    Ok(chunks.concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_under_a_valid_checksum_are_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let (store, disks) = store(dir.path(), StoreConfig::default()).await;
    let body = data(3 << 20, 5);
    put(&store, "obj", &body).await;

    // One data shard of every chunk wrong: the first decode fails its check, another subset
    // of shards gives the chunk.
    assert!(rewrite_wrong(&disks, 0).await >= 2, "the object has several chunks");
    assert!(read_all(&store, "obj").await.unwrap() == body);
    // Two wrong (as many as there is parity): exactly one subset of four is right.
    rewrite_wrong(&disks, 3).await;
    assert!(read_all(&store, "obj").await.unwrap() == body);
    // Three wrong: nothing can be rebuilt, and nothing wrong is served.
    rewrite_wrong(&disks, 5).await;
    match read_all(&store, "obj").await {
        Err(cairn::Error::Storage(_)) => {}
        Err(e) => panic!("expected a storage error, got {e}"),
        Ok(got) => panic!(
            "served {} bytes of a chunk that cannot be rebuilt (right: {})",
            got.len(),
            got == body
        ),
    }
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_stops_answering_costs_the_hedging_delay_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        hedge_after: Duration::from_millis(20),
        ..StoreConfig::default()
    };
    let (store, disks) = store(dir.path(), config).await;
    let body = data(6 << 20, 7);
    put(&store, "obj", &body).await;
    // Each disk in turn stops answering (never returns, like a stopped process): every chunk
    // still reads, from the first four shards that arrive. The timeout only turns a hang into
    // a failure; it measures nothing.
    for d in &disks {
        d.stopped.store(true, Ordering::SeqCst);
        let got = tokio::time::timeout(Duration::from_secs(60), read_all(&store, "obj"))
            .await
            .expect("a read waited on a disk that does not answer");
        assert!(got.unwrap() == body);
        d.stopped.store(false, Ordering::SeqCst);
    }
    store.shutdown().await;
}
