//! Cairn in one process: the metadata node (Raft over RocksDB), the disks and the data path,
//! opened together on one data directory. `cairn server` and Rust applications embedding
//! Cairn open their store here; everything else is [`cairn::Store`]'s API.
//!
//! Owns: the directory layout of a single-node store (`meta/`, `disks/NN`) and the order
//! it is opened in.
//!
//! Must not depend on: HTTP, S3.

use std::path::Path;

use cairn::{ErasureScheme, Error, Result, Store, StoreConfig};
use cairn_shard_store::SegmentStoreOptions;

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
    let d = dir.to_path_buf();
    let opts = SegmentStoreOptions {
        segment_bytes: config.segment_bytes,
        ..Default::default()
    };
    let opened = tokio::task::spawn_blocking(move || cairn_storage_node::open_disks(&d, disks, &opts))
        .await
        .map_err(|e| Error::Storage(e.to_string()))
        .and_then(|r| r.map_err(|e| Error::Storage(e.to_string())));
    match opened {
        Ok(stores) => Ok(Store::from_parts(
            cairn_meta_node::local_client(meta),
            stores,
            scheme,
            config,
        )),
        Err(e) => {
            meta.shutdown().await;
            Err(e)
        }
    }
}
