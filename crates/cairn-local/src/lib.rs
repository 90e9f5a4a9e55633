//! Cairn in one process: the metadata node (Raft over RocksDB), the disks and the data path,
//! opened together on one data directory. `cairn server` and Rust applications embedding
//! Cairn open their store here; everything else is [`cairn::Store`]'s API.
//!
//! Owns: the directory layout of a single-node store (`meta/`, `disks/NN`) and the order
//! it is opened in.
//!
//! Must not depend on: HTTP, S3.

use std::path::Path;
use std::sync::Arc;

use cairn::{ErasureScheme, Error, Result, Store, StoreConfig};
use cairn_meta_client::MetaClient;
use cairn_shard_store::{SegmentStoreOptions, ShardStore};

/// Opens (creating on first start) a single-node store in `dir` with `disks` disk
/// directories: metadata in `dir/meta`, shards in `dir/disks/NN`. The erasure scheme follows
/// from the disk count ([`ErasureScheme::for_disks`]). The metadata is opened first: its
/// RocksDB lock keeps a second process off the whole data directory before any disk runs
/// torn-tail recovery on segments still being written.
pub async fn open(dir: &Path, disks: usize, config: StoreConfig) -> Result<Store> {
    let scheme = ErasureScheme::for_disks(disks).map_err(|e| Error::Storage(e.to_string()))?;
    let meta = cairn_meta_node::MetaNode::open_single(&dir.join("meta"))
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    match open_disks(dir, disks, &config).await {
        Ok(stores) => {
            // The Raft state on the process's metrics; the task ends with the node.
            meta.publish_metrics();
            Ok(Store::from_parts(
                cairn_meta_node::local_client(meta),
                stores,
                scheme,
                config,
            ))
        }
        Err(e) => {
            meta.shutdown().await;
            Err(e)
        }
    }
}

pub use cairn_storage_node::DirLock;

fn lock_dir(dir: &Path) -> Result<DirLock> {
    cairn_storage_node::lock_dir(dir).map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))
}

/// Opens the `disks` disks under `dir/disks` and a store over them whose metadata is reached
/// through `meta` (a gateway process: a meta-node elsewhere, over gRPC). The directory is
/// locked first, so that no second process runs recovery on segments this one appends to;
/// keep the returned lock as long as the store.
pub async fn open_with_meta(
    dir: &Path,
    disks: usize,
    config: StoreConfig,
    meta: Arc<dyn MetaClient>,
) -> Result<(Store, DirLock)> {
    let scheme = ErasureScheme::for_disks(disks).map_err(|e| Error::Storage(e.to_string()))?;
    let lock = lock_dir(dir)?;
    let stores = open_disks(dir, disks, &config).await?;
    Ok((Store::from_parts(meta, stores, scheme, config), lock))
}

async fn open_disks(dir: &Path, disks: usize, config: &StoreConfig) -> Result<Vec<Arc<dyn ShardStore>>> {
    let d = dir.to_path_buf();
    let opts = SegmentStoreOptions {
        segment_bytes: config.segment_bytes,
        ..Default::default()
    };
    tokio::task::spawn_blocking(move || cairn_storage_node::open_disks(&d, disks, &opts))
        .await
        .map_err(|e| Error::Storage(e.to_string()))?
        .map_err(|e| Error::Storage(e.to_string()))
}

/// A store placing shards by the cluster map in the metadata (`layout`: a
/// [`cairn::RingLayout`]), writing new chunks with `scheme`, its metadata reached through
/// `meta`. `dir` (the gateway's own directory: its credentials) is locked; keep the returned
/// lock as long as the store.
pub fn open_cluster(
    dir: &Path,
    layout: Arc<dyn cairn::Layout>,
    scheme: ErasureScheme,
    config: StoreConfig,
    meta: Arc<dyn MetaClient>,
) -> Result<(Store, DirLock)> {
    let lock = lock_dir(dir)?;
    Ok((Store::with_layout(meta, layout, scheme, config), lock))
}

/// A store over `disks` reached elsewhere (a gateway: the disks of storage nodes, over gRPC)
/// and metadata reached through `meta`. `dir` (the gateway's own directory: its credentials)
/// is locked; keep the returned lock as long as the store. The erasure scheme follows from
/// the number of disks.
pub fn open_remote(
    dir: &Path,
    disks: Vec<Arc<dyn ShardStore>>,
    config: StoreConfig,
    meta: Arc<dyn MetaClient>,
) -> Result<(Store, DirLock)> {
    let scheme = ErasureScheme::for_disks(disks.len()).map_err(|e| Error::Storage(e.to_string()))?;
    let lock = lock_dir(dir)?;
    Ok((Store::from_parts(meta, disks, scheme, config), lock))
}
