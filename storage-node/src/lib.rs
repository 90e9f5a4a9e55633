//! The storage role: the disks of this node, each a [`SegmentStore`] in its own directory,
//! and the node's identity.
//!
//! Owns: the directory layout of a node's data directory (`node-id`, `LOCK`, `disks/NN`), the
//! check that it is reopened with the disk count it was created with (placement depends on
//! it), and the lock that keeps a second process off it. `cairn storage-node` serves the disks
//! over gRPC with `cairn_shard_client::ShardService`.
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

/// This node's id: read from `dir/node-id`, or made (a random UUID) and written durably on the
/// first start, so that a restarted node is the same node. Blocking.
pub fn node_identity(dir: &Path) -> std::io::Result<String> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) => {
            let id = id.trim().to_string();
            if uuid::Uuid::parse_str(&id).is_err() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} does not hold a node id", path.display()),
                ));
            }
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            let id = uuid::Uuid::new_v4().to_string();
            let tmp = dir.join("node-id.tmp");
            {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                writeln!(f, "{id}")?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// Holds a data directory for this process: a second process asking for it is refused.
/// Released when dropped.
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code)] std::fs::File);

/// Locks `dir` (creating it), or fails if another process holds it.
pub fn lock_dir(dir: &Path) -> std::io::Result<DirLock> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    // SAFETY: flock on a descriptor this function owns; no memory is shared.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!("{} is in use by another process", dir.display()),
        ));
    }
    Ok(DirLock(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_keeps_its_identity_and_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let id = node_identity(dir.path()).unwrap();
        assert_eq!(node_identity(dir.path()).unwrap(), id);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(node_identity(other.path()).unwrap(), id);
        std::fs::write(dir.path().join("node-id"), "garbage\n").unwrap();
        assert!(node_identity(dir.path()).is_err());

        let held = lock_dir(dir.path()).unwrap();
        assert!(lock_dir(dir.path()).is_err());
        drop(held);
        assert!(lock_dir(dir.path()).is_ok());
    }
}
