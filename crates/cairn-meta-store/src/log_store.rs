use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use cairn_meta::{decode, encode};

use crate::TypeConfig;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use crate::db::{MetaDb, CF_LOG, CF_RAFT};
use crate::{blocking, io_err};

const KEY_VOTE: &[u8] = b"vote";
const KEY_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_ADMITTED: &[u8] = b"admitted";

/// The Raft log in RocksDB: entries keyed by big-endian index, plus vote, committed and
/// last-purged ids. Every write that openraft needs durable is fsynced.
#[derive(Clone)]
pub struct LogStore {
    db: MetaDb,
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

impl LogStore {
    pub(crate) fn new(db: MetaDb) -> Self {
        Self { db }
    }

    async fn get_raft<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: &'static [u8],
    ) -> io::Result<Option<T>> {
        let db = self.db.clone();
        blocking(move || {
            let cf = db.cf_handle(CF_RAFT).expect("raft cf");
            match db.get_cf(&cf, key).map_err(io_err)? {
                None => Ok(None),
                Some(v) => decode(&v).map(Some).map_err(io_err),
            }
        })
        .await
    }

    async fn put_raft<T: serde::Serialize>(&self, key: &'static [u8], value: &T, sync: bool) -> io::Result<()> {
        let db = self.db.clone();
        let bytes = encode(value);
        blocking(move || {
            let cf = db.cf_handle(CF_RAFT).expect("raft cf");
            let mut b = WriteBatch::default();
            b.put_cf(&cf, key, bytes);
            let opts = if sync { synced() } else { WriteOptions::default() };
            db.write_opt(b, &opts).map_err(io_err)
        })
        .await
    }
}

/// Admission of a member: a meta-node answers its group's Raft calls only once it was
/// admitted (when the group was formed, or when it was added). A member whose data directory
/// was lost comes back with nothing — no vote, no log — and must not vote or acknowledge
/// entries as if it still held what it had promised; it stays out until removed and added
/// again.
impl LogStore {
    /// Whether this store belongs to a group: admitted, or holding a vote (a store from
    /// before admission was recorded). Blocking.
    pub fn is_admitted(&self) -> io::Result<bool> {
        let cf = self.db.cf_handle(CF_RAFT).expect("raft cf");
        Ok(self.db.get_cf(&cf, KEY_ADMITTED).map_err(io_err)?.is_some()
            || self.db.get_cf(&cf, KEY_VOTE).map_err(io_err)?.is_some())
    }

    /// Records (durably) that this store was admitted to a group. Blocking.
    pub fn admit(&self) -> io::Result<()> {
        let cf = self.db.cf_handle(CF_RAFT).expect("raft cf");
        self.db.put_cf_opt(&cf, KEY_ADMITTED, [1u8], &synced()).map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<EntryOf<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end: Bound<u64> = range.end_bound().cloned();
        let db = self.db.clone();
        blocking(move || {
            let cf = db.cf_handle(CF_LOG).expect("log cf");
            let mut out = Vec::new();
            let from = start.to_be_bytes();
            for item in db.iterator_cf(&cf, IteratorMode::From(&from, Direction::Forward)) {
                let (k, v) = item.map_err(io_err)?;
                let idx = u64::from_be_bytes(k[..8].try_into().map_err(io_err)?);
                if !(Bound::Included(start), end).contains(&idx) {
                    break;
                }
                out.push(decode::<EntryOf<TypeConfig>>(&v).map_err(io_err)?);
            }
            Ok(out)
        })
        .await
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<TypeConfig>>> {
        self.get_raft(KEY_VOTE).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let db = self.db.clone();
        let last = blocking(move || {
            let cf = db.cf_handle(CF_LOG).expect("log cf");
            match db.iterator_cf(&cf, IteratorMode::End).next() {
                None => Ok(None),
                Some(item) => {
                    let (_, v) = item.map_err(io_err)?;
                    let e: EntryOf<TypeConfig> = decode(&v).map_err(io_err)?;
                    Ok(Some(e.log_id()))
                }
            }
        })
        .await?;
        let last_purged_log_id: Option<LogIdOf<TypeConfig>> = self.get_raft(KEY_PURGED).await?;
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> io::Result<()> {
        self.put_raft(KEY_VOTE, vote, true).await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<TypeConfig>>) -> io::Result<()> {
        // Not fsynced: losing it only means replaying a little more at start-up.
        self.put_raft(KEY_COMMITTED, &committed, false).await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogIdOf<TypeConfig>>> {
        Ok(self
            .get_raft::<Option<LogIdOf<TypeConfig>>>(KEY_COMMITTED)
            .await?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries.into_iter().map(|e| (e.index(), encode(&e))).collect();
        let db = self.db.clone();
        let res = blocking(move || {
            let cf = db.cf_handle(CF_LOG).expect("log cf");
            let mut b = WriteBatch::default();
            for (idx, bytes) in encoded {
                b.put_cf(&cf, idx.to_be_bytes(), bytes);
            }
            db.write_opt(b, &synced()).map_err(io_err)
        })
        .await;
        match res {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<TypeConfig>>) -> io::Result<()> {
        let from = last_log_id.map_or(0, |l| l.index() + 1);
        let db = self.db.clone();
        blocking(move || {
            let cf = db.cf_handle(CF_LOG).expect("log cf");
            let mut b = WriteBatch::default();
            b.delete_range_cf(&cf, from.to_be_bytes(), u64::MAX.to_be_bytes());
            b.delete_cf(&cf, u64::MAX.to_be_bytes());
            db.write_opt(b, &synced()).map_err(io_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> io::Result<()> {
        let upto = log_id.index() + 1;
        let db = self.db.clone();
        let purged = encode(&log_id);
        blocking(move || {
            let log = db.cf_handle(CF_LOG).expect("log cf");
            let raft = db.cf_handle(CF_RAFT).expect("raft cf");
            let mut b = WriteBatch::default();
            b.put_cf(&raft, KEY_PURGED, purged);
            b.delete_range_cf(&log, 0u64.to_be_bytes(), upto.to_be_bytes());
            db.write_opt(b, &synced()).map_err(io_err)
        })
        .await
    }
}
