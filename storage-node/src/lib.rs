//! The storage role: the disks of this node, each a [`SegmentStore`] in its own directory.
//!
//! Owns: the directory layout of a node's disks and the check that a data directory is
//! reopened with the disk count it was created with (placement depends on it).
//!
//! Must not depend on: Raft, S3, HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_shard_store::{SegmentStore, SegmentStoreOptions, ShardStore};

/// Errors opening a node's disks.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A disk failed to open.
    #[error("opening disk {path}: {source}")]
    Io {
        /// The disk's directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The data directory was created with another disk count.
    #[error("{dir} was created with {found} disks but {asked} were asked for; start with --disks {found}")]
    DiskCountChanged {
        /// Data directory.
        dir: PathBuf,
        /// Disks it holds.
        found: usize,
        /// Disks asked for.
        asked: usize,
    },
}

/// Opens (creating on first start) `count` disks under `dir/disks/NN`, each with `opts`.
/// Blocking.
pub fn open_disks(dir: &Path, count: usize, opts: &SegmentStoreOptions) -> Result<Vec<Arc<dyn ShardStore>>, OpenError> {
    let root = dir.join("disks");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OpenError::Io { path, source }
    };
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let found = std::fs::read_dir(&root)
        .map_err(io(&root))?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    if found != 0 && found != count {
        return Err(OpenError::DiskCountChanged {
            dir: dir.to_path_buf(),
            found,
            asked: count,
        });
    }
    (0..count)
        .map(|i| {
            let path = root.join(format!("{i:02}"));
            SegmentStore::open(&path, opts.clone())
                .map(|s| Arc::new(s) as Arc<dyn ShardStore>)
                .map_err(io(&path))
        })
        .collect()
}
