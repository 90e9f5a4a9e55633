use std::path::Path;
use std::sync::Arc;

use cairn_meta::{KvError, KvPairs, KvRead};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, DB};

use crate::{io_err, LogStore, StateMachine};

pub(crate) const CF_LOG: &str = "log";
pub(crate) const CF_RAFT: &str = "raft";
pub(crate) const CF_STATE: &str = "state";
pub(crate) const CF_SM_META: &str = "sm_meta";

/// The directory of snapshot files, inside the database's directory (RocksDB ignores it).
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Most memory the memtables of all column families hold together.
pub const DB_WRITE_BUFFER_BYTES: usize = 64 << 20;

/// The RocksDB instance holding the log, the state machine and snapshots.
pub type MetaDb = Arc<DB>;

/// Opens (or creates) the metadata database in `path` and returns its log store, state machine
/// and a reader of the state. Blocking: call from a blocking context or at start-up.
pub fn open(path: impl AsRef<Path>) -> std::io::Result<(LogStore, StateMachine, StateReader)> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    opts.set_keep_log_file_num(4);
    // One budget for the memtables of every column family: without it each may grow to two
    // 64 MiB write buffers, and installing a large snapshot or a burst of writes holds up to
    // 512 MiB of memtables.
    opts.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
    let db = Arc::new(open_waiting(&opts, path.as_ref())?);
    let sm = StateMachine::load(db.clone(), path.as_ref().join(SNAPSHOT_DIR))?;
    Ok((LogStore::new(db.clone()), sm, StateReader { db }))
}

/// How long [`open`] waits for an instance of the database this process is closing.
const REOPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the database; while RocksDB says this very process holds its lock (an instance just
/// shut down whose last handle a finishing background task still drops, as when a node is
/// restarted in-process), waits for it, at most [`REOPEN_WAIT`]. Another process holding the
/// lock fails at once.
fn open_waiting(opts: &Options, path: &Path) -> std::io::Result<DB> {
    let deadline = std::time::Instant::now() + REOPEN_WAIT;
    loop {
        let cfs = [CF_LOG, CF_RAFT, CF_STATE, CF_SM_META]
            .into_iter()
            .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        match DB::open_cf_descriptors(opts, path, cfs) {
            Ok(db) => return Ok(db),
            Err(e) if e.as_ref().contains("lock hold by current process") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(io_err(e)),
        }
    }
}

/// Reads of the replicated state, straight from the state machine's column family. Blocking:
/// wrap calls in `spawn_blocking`.
#[derive(Clone)]
pub struct StateReader {
    pub(crate) db: MetaDb,
}

impl KvRead for StateReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let cf = self.db.cf_handle(CF_STATE).expect("state column family");
        self.db.get_cf(&cf, key).map_err(|e| KvError(e.to_string()))
    }

    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> Result<KvPairs, KvError> {
        let cf = self.db.cf_handle(CF_STATE).expect("state column family");
        let mut out = Vec::new();
        if from >= to || limit == 0 {
            return Ok(out);
        }
        for item in self.db.iterator_cf(&cf, IteratorMode::From(from, Direction::Forward)) {
            let (k, v) = item.map_err(|e| KvError(e.to_string()))?;
            if &*k >= to {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }
}
