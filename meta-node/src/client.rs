//! [`LocalMetaClient`]: the metadata client of a process that runs the metadata node itself
//! (`cairn server`, an embedding application). Reads run the `cairn_meta::query` functions on
//! the blocking pool (RocksDB reads block); writes go through Raft.

use std::sync::Arc;

use cairn_meta::query::{self, ListPage, ListParams};
use cairn_meta::{
    BucketRecord, ChunkRecord, Command, CompletedUpload, GcInfo, GcMark, KeyRecord, KvRead, ManifestPage, MetaError,
    ObjectRecord, PagedManifest, PartExtent, PartRecord, Response, UploadRecord,
};
use cairn_meta_client::{ChunkState, InBucket, ListQuery, MetaClient, MetaClientError, Result};
use cairn_types::ChunkId;

use crate::MetaNode;

/// A [`MetaClient`] over a metadata node running in this process. Its reads are
/// linearizable ([`MetaNode::linearize`] first); on a node that is not the leader, reads and
/// writes fail with `NotLeader`, naming the leader when known.
#[derive(Clone)]
pub struct LocalMetaClient {
    node: MetaNode,
}

impl LocalMetaClient {
    /// A client of `node`.
    pub fn new(node: MetaNode) -> Self {
        Self { node }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn KvRead) -> std::result::Result<T, MetaError> + Send + 'static,
    ) -> Result<T> {
        self.node.linearize().await.map_err(unavailable)?;
        let reader = self.node.reader();
        tokio::task::spawn_blocking(move || f(&*reader))
            .await
            .map_err(|e| MetaClientError::Unavailable(format!("metadata read task: {e}")))?
            .map_err(MetaClientError::from)
    }
}

fn unavailable(e: crate::MetaUnavailable) -> MetaClientError {
    match e {
        crate::MetaUnavailable::NotLeader { leader } => MetaClientError::NotLeader { leader },
        e => MetaClientError::Unavailable(e.to_string()),
    }
}

fn chunk_state(kv: &dyn KvRead, id: ChunkId) -> std::result::Result<ChunkState, MetaError> {
    Ok(ChunkState {
        id,
        record: query::chunk(kv, &id)?,
        mark: query::gc_mark(kv, &id)?,
        placement: query::placement(kv, &id)?,
    })
}

fn in_bucket<T>(exists: bool, found: Option<T>) -> InBucket<T> {
    match (exists, found) {
        (false, _) => InBucket::NoBucket,
        (true, None) => InBucket::Absent,
        (true, Some(t)) => InBucket::Found(t),
    }
}

#[async_trait::async_trait]
impl MetaClient for LocalMetaClient {
    async fn propose(&self, cmd: Command) -> Result<Response> {
        self.node.propose(cmd).await.map_err(unavailable)
    }

    fn is_ready(&self) -> bool {
        self.node.is_leader()
    }

    async fn shutdown(&self) {
        self.node.shutdown().await;
    }

    async fn group_status(&self) -> Result<cairn_meta_client::GroupStatus> {
        Ok(self.node.status())
    }

    async fn bucket(&self, name: &str) -> Result<Option<BucketRecord>> {
        let n = name.to_string();
        self.read(move |kv| query::bucket(kv, &n)).await
    }

    async fn buckets(&self) -> Result<Vec<BucketRecord>> {
        self.read(|kv| query::buckets(kv)).await
    }

    async fn object(&self, bucket: &str, key: &str) -> Result<InBucket<ObjectRecord>> {
        let (b, k) = (bucket.to_string(), key.to_string());
        self.read(move |kv| Ok(in_bucket(query::bucket(kv, &b)?.is_some(), query::object(kv, &b, &k)?)))
            .await
    }

    async fn list_objects(&self, bucket: &str, q: &ListQuery) -> Result<Option<ListPage>> {
        let (b, q) = (bucket.to_string(), q.clone());
        self.read(move |kv| {
            if query::bucket(kv, &b)?.is_none() {
                return Ok(None);
            }
            let params = ListParams {
                prefix: &q.prefix,
                delimiter: q.delimiter.as_deref(),
                after: q.after.as_deref(),
                max_keys: q.max_keys,
            };
            query::list_objects(kv, &b, &params).map(Some)
        })
        .await
    }

    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<InBucket<UploadRecord>> {
        let (b, k, u) = (bucket.to_string(), key.to_string(), upload_id.to_string());
        self.read(move |kv| {
            Ok(in_bucket(
                query::bucket(kv, &b)?.is_some(),
                query::upload(kv, &b, &k, &u)?,
            ))
        })
        .await
    }

    async fn uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: usize,
    ) -> Result<Vec<UploadRecord>> {
        let (b, p, km, um) = (
            bucket.to_string(),
            prefix.to_string(),
            key_marker.to_string(),
            upload_id_marker.to_string(),
        );
        self.read(move |kv| query::uploads(kv, &b, &p, &km, &um, limit)).await
    }

    async fn parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<PartRecord>> {
        let u = upload_id.to_string();
        self.read(move |kv| query::parts(kv, &u, after, limit)).await
    }

    async fn part_extent(&self, version: &str, number: u32) -> Result<Option<PartExtent>> {
        let v = version.to_string();
        self.read(move |kv| query::part_extent(kv, &v, number)).await
    }

    async fn manifest_pages(&self, version: &str, offset: u64, limit: usize) -> Result<Vec<ManifestPage>> {
        let v = version.to_string();
        self.read(move |kv| query::manifest_pages(kv, &v, offset, limit)).await
    }

    async fn access_key(&self, access_key: &str) -> Result<Option<KeyRecord>> {
        let a = access_key.to_string();
        self.read(move |kv| query::access_key(kv, &a)).await
    }

    async fn access_keys(&self) -> Result<Vec<KeyRecord>> {
        self.read(|kv| query::access_keys(kv)).await
    }

    async fn storage_nodes(&self) -> Result<Vec<cairn_meta::StorageNodeRecord>> {
        self.read(|kv| query::storage_nodes(kv)).await
    }

    async fn access_version(&self) -> Result<u64> {
        self.read(|kv| query::access_version(kv)).await
    }

    async fn chunks(&self, ids: Vec<ChunkId>) -> Result<Vec<ChunkState>> {
        self.read(move |kv| ids.into_iter().map(|id| chunk_state(kv, id)).collect())
            .await
    }

    async fn cluster_map(&self, epoch: Option<u64>) -> Result<Option<cairn_meta::ClusterMapRecord>> {
        self.read(move |kv| query::cluster_map(kv, epoch)).await
    }

    async fn repair_queue(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<ChunkState>> {
        self.read(move |kv| {
            query::repair_queue(kv, after.as_ref(), limit)?
                .into_iter()
                .map(|id| chunk_state(kv, id))
                .collect()
        })
        .await
    }

    async fn chunk_page(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<(ChunkId, ChunkRecord)>> {
        self.read(move |kv| query::chunks(kv, after.as_ref(), limit)).await
    }

    async fn gc_info(&self) -> Result<GcInfo> {
        self.read(|kv| query::gc_info(kv)).await
    }

    async fn gc_marks(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<(ChunkId, GcMark)>> {
        self.read(move |kv| query::gc_marks(kv, after.as_ref(), limit)).await
    }

    async fn retired(&self, after: &str, limit: usize) -> Result<Vec<(String, PagedManifest)>> {
        let a = after.to_string();
        self.read(move |kv| query::retired(kv, &a, limit)).await
    }

    async fn completed_uploads(&self, after: &str, limit: usize) -> Result<Vec<(String, CompletedUpload)>> {
        let a = after.to_string();
        self.read(move |kv| query::completed_uploads(kv, &a, limit)).await
    }
}

/// The client as the data path holds it.
pub fn shared(node: MetaNode) -> Arc<dyn MetaClient> {
    Arc::new(LocalMetaClient::new(node))
}
