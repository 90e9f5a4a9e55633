use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use cairn_meta::{apply, decode, encode, Command, MetaError, Overlay, Response};

use crate::TypeConfig;
use futures::{Stream, StreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StoredMembership};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::db::{MetaDb, StateReader, CF_SM_META, CF_STATE};
use crate::snapshot::{unique, RecordWriter, SnapshotFile};
use crate::{blocking, io_err};

pub(crate) const KEY_APPLIED: &[u8] = b"applied";
/// Where a snapshot was kept inline before snapshots were files (removed on open).
const KEY_SNAPSHOT_INLINE: &[u8] = b"snapshot";
/// The record of the current snapshot file ([`StoredSnapshot`]).
const KEY_SNAPSHOT_FILE: &[u8] = b"snapshot-file";

/// Pending state writes, in key order (`None` deletes).
type Writes = std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>;

type Applied = (Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>);

/// The state machine: [`cairn_meta::apply`] over the `state` column family. The last-applied
/// log id and membership are written in the same batch as the state they describe.
/// Snapshots are files in `snapshots/` next to the database, built from a RocksDB snapshot
/// and installed by SST ingestion (see [`crate::snapshot`]).
pub struct StateMachine {
    db: MetaDb,
    applied: Applied,
    pub(crate) snapshots: Snapshots,
}

impl StateMachine {
    /// Loads the applied state of `db`, keeping snapshots in `snapshot_dir`, and finishes a
    /// snapshot install a crash interrupted. Blocking.
    pub(crate) fn load(db: MetaDb, snapshot_dir: PathBuf) -> io::Result<Self> {
        let cf = db.cf_handle(CF_SM_META).expect("sm_meta cf");
        let applied = match db.get_cf(&cf, KEY_APPLIED).map_err(io_err)? {
            Some(v) => decode(&v).map_err(io_err)?,
            None => (None, StoredMembership::default()),
        };
        let snapshots = Snapshots::open(db.clone(), snapshot_dir)?;
        let applied = snapshots.resume_install(applied)?;
        Ok(Self { db, applied, snapshots })
    }
}

/// Applies a batch of entries in memory and returns the writes and one response per entry.
fn apply_batch(
    reader: &StateReader,
    entries: &[EntryPayload<Command, u64, openraft::impls::BasicNode>],
    log_ids: &[LogIdOf<TypeConfig>],
    applied: &mut Applied,
) -> io::Result<(Writes, Vec<Response>)> {
    let mut batch = Overlay::new(reader);
    let mut responses = Vec::with_capacity(entries.len());
    for (payload, log_id) in entries.iter().zip(log_ids) {
        applied.0 = Some(*log_id);
        let resp = match payload {
            EntryPayload::Blank => Response::Done,
            EntryPayload::Membership(m) => {
                applied.1 = StoredMembership::new(Some(*log_id), m.clone());
                Response::Done
            }
            EntryPayload::Normal(cmd) => {
                let mut one = Overlay::new(&batch);
                match apply(&mut one, cmd) {
                    Ok(r) => {
                        let w = one.into_writes();
                        batch.merge(w);
                        r
                    }
                    // A store failure is not the command's fault and not deterministic: stop
                    // rather than answer differently from another replica.
                    Err(MetaError::Store(e)) => return Err(io_err(e)),
                    Err(e) => Response::Failed(e),
                }
            }
        };
        responses.push(resp);
    }
    Ok((batch.into_writes(), responses))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<Applied> {
        Ok(self.applied.clone())
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut payloads = Vec::new();
        let mut log_ids = Vec::new();
        let mut responders = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            log_ids.push(entry.log_id());
            payloads.push(entry.payload);
            responders.push(responder);
        }
        if payloads.is_empty() {
            return Ok(());
        }
        let db = self.db.clone();
        let mut applied = self.applied.clone();
        let (applied, responses) = blocking(move || {
            let reader = StateReader { db: db.clone() };
            let (writes, responses) = apply_batch(&reader, &payloads, &log_ids, &mut applied)?;
            let state = db.cf_handle(CF_STATE).expect("state cf");
            let meta = db.cf_handle(CF_SM_META).expect("sm_meta cf");
            let mut b = WriteBatch::default();
            for (k, v) in writes {
                match v {
                    Some(v) => b.put_cf(&state, k, v),
                    None => b.delete_cf(&state, k),
                }
            }
            b.put_cf(&meta, KEY_APPLIED, encode(&applied));
            // Not synced on its own: the log entries are, and a lost batch is replayed.
            db.write_opt(b, &WriteOptions::default()).map_err(io_err)?;
            Ok((applied, responses))
        })
        .await?;
        self.applied = applied;
        for (responder, resp) in responders.into_iter().zip(responses) {
            if let Some(r) = responder {
                r.send(resp);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            snapshots: self.snapshots.clone(),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<TypeConfig>, snapshot: SnapshotFile) -> io::Result<()> {
        let snapshots = self.snapshots.clone();
        let meta = meta.clone();
        let started = std::time::Instant::now();
        let applied = blocking(move || {
            snapshot.verify()?;
            let local = snapshots.local_copy(&snapshot)?;
            let (meta, file) = snapshots.adopt(&local, &meta, true)?;
            snapshots.load_state(&meta, &file)
        })
        .await?;
        let took = started.elapsed();
        metrics::counter!("cairn_raft_snapshots_installed_total").increment(1);
        metrics::gauge!("cairn_raft_snapshot_install_seconds").set(took.as_secs_f64());
        tracing::info!(index = ?applied.0, took_ms = took.as_millis() as u64, "snapshot installed");
        self.applied = applied;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>> {
        let snapshots = self.snapshots.clone();
        blocking(move || {
            Ok(snapshots
                .current()?
                .map(|(meta, file)| openraft::storage::Snapshot { meta, snapshot: file }))
        })
        .await
    }
}

/// Builds a snapshot file from a consistent RocksDB snapshot of the state and its applied id.
pub struct SnapshotBuilder {
    snapshots: Snapshots,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<TypeConfig, SnapshotFile>> {
        let snapshots = self.snapshots.clone();
        blocking(move || {
            let (meta, file) = snapshots.build()?;
            Ok(openraft::storage::Snapshot { meta, snapshot: file })
        })
        .await
    }
}

/// The snapshot directory and the record of the current snapshot (`sm_meta`), shared by the
/// state machine and its snapshot builders. Blocking.
#[derive(Clone)]
pub(crate) struct Snapshots {
    db: MetaDb,
    dir: PathBuf,
    /// Serialises changes of the current-snapshot record and the removal of older files.
    lock: Arc<Mutex<()>>,
}

/// The record of the current snapshot: its id and membership, and its file in the directory.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMetaOf<TypeConfig>,
    file: String,
}

impl Snapshots {
    /// The snapshots of `db`, kept in `dir`: removes what an interrupted build or transfer
    /// left, and the record of a snapshot from before snapshots were files (rebuilt on
    /// demand from the state, which is persistent).
    pub(crate) fn open(db: MetaDb, dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let sm_meta = db.cf_handle(CF_SM_META).expect("sm_meta cf");
        if db.get_cf(&sm_meta, KEY_SNAPSHOT_INLINE).map_err(io_err)?.is_some() {
            db.delete_cf(&sm_meta, KEY_SNAPSHOT_INLINE).map_err(io_err)?;
        }
        let snapshots = Self {
            db,
            dir,
            lock: Arc::new(Mutex::new(())),
        };
        let current = snapshots.current_record()?.map(|s| s.file);
        snapshots.remove_others(current.as_deref(), true)?;
        Ok(snapshots)
    }

    fn current_record(&self) -> io::Result<Option<StoredSnapshot>> {
        let sm_meta = self.db.cf_handle(CF_SM_META).expect("sm_meta cf");
        match self.db.get_cf(&sm_meta, KEY_SNAPSHOT_FILE).map_err(io_err)? {
            Some(v) => decode(&v).map(Some).map_err(io_err),
            None => Ok(None),
        }
    }

    /// The current snapshot, opened.
    pub(crate) fn current(&self) -> io::Result<Option<(SnapshotMetaOf<TypeConfig>, SnapshotFile)>> {
        let _held = self.lock.lock();
        let Some(s) = self.current_record()? else {
            return Ok(None);
        };
        Ok(Some((s.meta, SnapshotFile::open(&self.dir.join(&s.file))?)))
    }

    /// Removes every snapshot file of the directory but `keep`, and with `temporary` also
    /// the temporary files of builds and transfers (only at open: none runs then).
    fn remove_others(&self, keep: Option<&str>, temporary: bool) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let removable = name.ends_with(".snap") || temporary;
            if removable && Some(name.as_ref()) != keep {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// Writes a snapshot of the state as it is now (a RocksDB snapshot: applies go on) and
    /// makes it the current one unless a newer one was recorded meanwhile.
    pub(crate) fn build(&self) -> io::Result<(SnapshotMetaOf<TypeConfig>, SnapshotFile)> {
        let started = std::time::Instant::now();
        let snap = self.db.snapshot();
        let state = self.db.cf_handle(CF_STATE).expect("state cf");
        let sm_meta = self.db.cf_handle(CF_SM_META).expect("sm_meta cf");
        let applied: Applied = match snap.get_cf(&sm_meta, KEY_APPLIED).map_err(io_err)? {
            Some(v) => decode(&v).map_err(io_err)?,
            None => (None, StoredMembership::default()),
        };
        let building = self.dir.join(format!("building-{}.tmp", unique()));
        let written = (|| {
            let mut w = RecordWriter::create(&building)?;
            for item in snap.iterator_cf(&state, IteratorMode::Start) {
                let (k, v) = item.map_err(io_err)?;
                w.push(&k, &v)?;
            }
            w.finish()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&building);
            return Err(e);
        }
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: applied.0,
            last_membership: applied.1,
        };
        let (meta, file) = self.adopt(&building, &meta, false)?;
        let bytes = file.len()?;
        let took = started.elapsed();
        metrics::counter!("cairn_raft_snapshots_built_total").increment(1);
        metrics::gauge!("cairn_raft_snapshot_build_seconds").set(took.as_secs_f64());
        metrics::gauge!("cairn_raft_snapshot_bytes").set(bytes as f64);
        tracing::info!(index = ?meta.last_log_id, bytes, took_ms = took.as_millis() as u64, "snapshot built");
        Ok((meta, file))
    }

    fn final_name(&self, meta: &SnapshotMetaOf<TypeConfig>) -> String {
        format!(
            "snap-{}-{}.snap",
            meta.last_log_id.as_ref().map_or(0, |l| l.index),
            unique()
        )
    }

    /// The snapshot file as a file of the directory: itself if it is there already (received
    /// by this node), else a copy (temporary until adopted).
    pub(crate) fn local_copy(&self, snapshot: &SnapshotFile) -> io::Result<PathBuf> {
        if snapshot.path().parent() == Some(self.dir.as_path()) {
            return Ok(snapshot.path().to_path_buf());
        }
        let tmp = self.dir.join(format!("copy-{}.tmp", unique()));
        let copied = (|| {
            let mut out = File::options().write(true).create_new(true).open(&tmp)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut at = 0u64;
            loop {
                let n = snapshot.read_at(&mut buf, at)?;
                if n == 0 {
                    break;
                }
                std::io::Write::write_all(&mut out, &buf[..n])?;
                at += n as u64;
            }
            out.sync_all()
        })();
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    /// Makes the complete snapshot file `from` (in the directory, under a temporary name) the
    /// current snapshot, durably: renamed to its final name, recorded, every other snapshot
    /// file removed — unless a newer snapshot is current and not `force`, in which case `from`
    /// is removed and the current one answered. Answers the current snapshot, opened. One
    /// lock covers it all, so a build and an install never remove each other's file.
    pub(crate) fn adopt(
        &self,
        from: &std::path::Path,
        meta: &SnapshotMetaOf<TypeConfig>,
        force: bool,
    ) -> io::Result<(SnapshotMetaOf<TypeConfig>, SnapshotFile)> {
        let _held = self.lock.lock();
        if !force {
            if let Some(current) = self.current_record()? {
                if current.meta.last_log_id > meta.last_log_id {
                    std::fs::remove_file(from)?;
                    let file = SnapshotFile::open(&self.dir.join(&current.file))?;
                    return Ok((current.meta, file));
                }
            }
        }
        let name = self.final_name(meta);
        std::fs::rename(from, self.dir.join(&name))?;
        File::open(&self.dir)?.sync_all()?;
        let stored = encode(&StoredSnapshot {
            meta: meta.clone(),
            file: name.clone(),
        });
        let sm_meta = self.db.cf_handle(CF_SM_META).expect("sm_meta cf");
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db
            .put_cf_opt(&sm_meta, KEY_SNAPSHOT_FILE, stored, &w)
            .map_err(io_err)?;
        self.remove_others(Some(&name), false)?;
        Ok((meta.clone(), SnapshotFile::open(&self.dir.join(&name))?))
    }

    /// Replaces the state with the records of `snapshot` (recorded as current): written to an
    /// SST file a block at a time, the state cleared, the file ingested; then the applied id
    /// moves to the snapshot's in a synced write. A crash before that leaves the applied id
    /// behind the current snapshot, and
    /// [`Snapshots::resume_install`] loads it again on the next start.
    fn load_state(&self, meta: &SnapshotMetaOf<TypeConfig>, snapshot: &SnapshotFile) -> io::Result<Applied> {
        // The records, in key order, become one SST file (written a block at a time), which
        // RocksDB then takes in whole: no memtable holds the state on its way in.
        let sst = self.dir.join(format!("install-{}.tmp", unique()));
        let written = (|| {
            let opts = rocksdb::Options::default();
            let mut writer = rocksdb::SstFileWriter::create(&opts);
            writer.open(&sst).map_err(io_err)?;
            let mut records = snapshot.records()?;
            let mut any = false;
            while let Some((k, v)) = records.next_record()? {
                writer.put(k, v).map_err(io_err)?;
                any = true;
            }
            if any {
                writer.finish().map_err(io_err)?;
            }
            Ok::<_, io::Error>(any)
        })();
        let any = match written {
            Ok(any) => any,
            Err(e) => {
                let _ = std::fs::remove_file(&sst);
                return Err(e);
            }
        };
        let state = self.db.cf_handle(CF_STATE).expect("state cf");
        let sm_meta = self.db.cf_handle(CF_SM_META).expect("sm_meta cf");
        let mut clear = WriteBatch::default();
        clear.delete_range_cf(&state, [].as_slice(), [0xFFu8; 16].as_slice());
        self.db.write_opt(clear, &WriteOptions::default()).map_err(io_err)?;
        if any {
            let mut ingest = rocksdb::IngestExternalFileOptions::default();
            ingest.set_move_files(true);
            let ingested = self.db.ingest_external_file_cf_opts(&state, &ingest, vec![&sst]);
            let _ = std::fs::remove_file(&sst);
            ingested.map_err(io_err)?;
        } else {
            let _ = std::fs::remove_file(&sst);
        }
        let applied: Applied = (meta.last_log_id, meta.last_membership.clone());
        let mut b = WriteBatch::default();
        b.put_cf(&sm_meta, KEY_APPLIED, encode(&applied));
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(b, &w).map_err(io_err)?;
        Ok(applied)
    }

    /// Finishes the install of the current snapshot if a crash interrupted it (the applied id
    /// is behind the snapshot's). Returns the applied state.
    pub(crate) fn resume_install(&self, applied: Applied) -> io::Result<Applied> {
        let Some(current) = self.current_record()? else {
            return Ok(applied);
        };
        if current.meta.last_log_id <= applied.0 {
            return Ok(applied);
        }
        tracing::warn!(
            snapshot = ?current.meta.last_log_id,
            applied = ?applied.0,
            "resuming an interrupted snapshot install"
        );
        let file = SnapshotFile::open(&self.dir.join(&current.file))?;
        file.verify()?;
        self.load_state(&current.meta, &file)
    }
}
