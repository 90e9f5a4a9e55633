//! [`SegmentStore`]: shards appended to segment files by one writer thread per disk.
//!
//! Writes go through a channel to a dedicated OS thread that takes every queued request, appends
//! them with one `pwrite`, calls `fdatasync` once and only then answers them all (group commit).
//! The index (shard key → location) lives in memory. At open it is rebuilt from each sealed
//! segment's index file (see [`crate::index_file`]) or, where there is none, by scanning the
//! segment (see [`crate::recover`]); the newest segment is always scanned. A damaged record
//! costs only itself; only a torn tail of the newest segment is cut.
//!
//! A failed write or fdatasync takes the store out of service for writes: the kernel may have
//! dropped the dirty pages, so nothing more is acknowledged from this disk. Reads go on.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

mod compact;

use crate::format::{self, HEADER_LEN, KIND_SHARD, KIND_TOMBSTONE};
use crate::recover::{self, Entry, KIND_DAMAGED};
use crate::{
    index_file, Capacity, CompactOptions, CompactProgress, CompactionReport, DiskHealth, ShardKey, ShardStore,
    ShardStoreError, StoreStats, MAX_LIST,
};
use compact::Carried;

/// Tuning of a [`SegmentStore`].
#[derive(Clone, Debug)]
pub struct SegmentStoreOptions {
    /// A segment is sealed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// Most bytes one group commit gathers before it writes and syncs.
    pub max_batch_bytes: usize,
}

impl Default for SegmentStoreOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 256 << 20,
            max_batch_bytes: 64 << 20,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    seg: u64,
    /// Offset of the record header.
    offset: u64,
    len: u32,
}

struct Segment {
    file: Arc<File>,
    size: u64,
    dead: u64,
    /// Shards the index points at in this segment.
    live: u64,
}

#[derive(Default)]
struct State {
    index: BTreeMap<ShardKey, Loc>,
    /// The segment appended to; every other one is sealed.
    active: u64,
    segments: BTreeMap<u64, Segment>,
    live_bytes: u64,
    /// Shards known to fail their CRC (found at open or by a read), until rewritten or deleted.
    damaged: HashSet<ShardKey>,
}

impl State {
    fn record_len(len: u32) -> u64 {
        HEADER_LEN as u64 + u64::from(len)
    }

    /// Points `key` at `loc`, marking whatever it replaced as dead.
    fn insert(&mut self, key: ShardKey, loc: Loc) {
        if let Some(s) = self.segments.get_mut(&loc.seg) {
            s.live += 1;
        }
        if let Some(old) = self.index.insert(key, loc) {
            self.unlive(old);
            self.live_bytes -= u64::from(old.len);
        }
        self.live_bytes += u64::from(loc.len);
        self.damaged.remove(&key);
    }

    fn remove(&mut self, key: &ShardKey) -> Option<Loc> {
        let old = self.index.remove(key)?;
        self.unlive(old);
        self.live_bytes -= u64::from(old.len);
        self.damaged.remove(key);
        Some(old)
    }

    /// A shard record the index no longer points at.
    fn unlive(&mut self, loc: Loc) {
        if let Some(s) = self.segments.get_mut(&loc.seg) {
            s.live = s.live.saturating_sub(1);
        }
        self.mark_dead(loc);
    }

    fn mark_dead(&mut self, loc: Loc) {
        if let Some(s) = self.segments.get_mut(&loc.seg) {
            s.dead += Self::record_len(loc.len);
        }
    }

    /// Replays the records of segment `seg`, in file order, into the index.
    fn replay(&mut self, seg: u64, entries: &[Entry]) {
        for e in entries {
            let loc = Loc {
                seg,
                offset: e.offset,
                len: e.len,
            };
            match e.kind {
                KIND_SHARD => self.insert(e.key, loc),
                KIND_DAMAGED => {
                    // Indexed so that a read answers Corrupt (and the chunk is rebuilt from
                    // parity) rather than pretending the shard was never written.
                    self.insert(e.key, loc);
                    self.damaged.insert(e.key);
                }
                _ => {
                    self.mark_dead(loc);
                    // A tombstone cancels only the exact (older) location it names, so a later
                    // re-put of the same shard is never hidden by it.
                    if let Some((s, o)) = e.target {
                        if self.index.get(&e.key).is_some_and(|l| l.seg == s && l.offset == o) {
                            self.remove(&e.key);
                        }
                    }
                }
            }
        }
    }
}

enum Op {
    Put {
        key: ShardKey,
        data: Bytes,
        reply: oneshot::Sender<Result<(), ShardStoreError>>,
    },
    Delete {
        key: ShardKey,
        reply: oneshot::Sender<Result<bool, ShardStoreError>>,
    },
    /// Appends records carried out of a segment being compacted (those still current).
    Carry {
        records: Vec<Carried>,
        reply: oneshot::Sender<Result<u64, ShardStoreError>>,
    },
    /// Seals the active segment (compaction of a mostly dead active segment).
    Seal {
        reply: oneshot::Sender<Result<(), ShardStoreError>>,
    },
    /// Removes a compacted segment, if no shard lives in it any more.
    Retire {
        seg: u64,
        reply: oneshot::Sender<Result<u64, ShardStoreError>>,
    },
}

/// The on-disk shard store of one disk. See the crate documentation for its guarantees.
pub struct SegmentStore {
    dir: PathBuf,
    state: Arc<RwLock<State>>,
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    failed: Arc<Mutex<Option<String>>>,
    #[cfg(test)]
    fail_syncs: Arc<std::sync::atomic::AtomicU32>,
    /// Called after each compaction step (tests take crash images there).
    #[cfg(test)]
    pub(crate) step_hook: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

/// Counts a damaged record once and logs where it is.
fn report_damage(seg: u64, offset: u64, len: u64, key: Option<ShardKey>) {
    metrics::counter!("cairn_shard_corrupt_records_total").increment(1);
    match key {
        Some(k) => tracing::error!(
            segment = seg,
            offset,
            len,
            chunk = %k.chunk,
            shard = k.index,
            "damaged shard record: skipped, reads of it fail until it is rebuilt"
        ),
        None => tracing::error!(
            segment = seg,
            offset,
            len,
            "damaged bytes in segment: skipped to the next valid record"
        ),
    }
}

/// Opens segment `id`, recovers its records into `state` and returns them. Sealed segments use
/// their index file when it is valid and get one written otherwise; the newest segment is
/// scanned and a torn tail is cut. Returns the entries and whether new records may be appended
/// to the segment: only to the newest, and only if it held no damage. A damaged newest segment
/// is sealed here (it gets its index file), because records appended behind damage that a scan
/// could not get past would be invisible to the next open: acknowledged writes lost.
fn open_segment(dir: &Path, id: u64, newest: bool, state: &mut State) -> io::Result<(Vec<Entry>, bool)> {
    let (file, size) = create_segment(dir, id)?;
    state.segments.insert(
        id,
        Segment {
            file: Arc::new(file.try_clone()?),
            size,
            dead: 0,
            live: 0,
        },
    );
    let cached = if newest { None } else { index_file::read(dir, id, size) };
    let mut appendable = false;
    let entries = match cached {
        Some(entries) => entries,
        None => {
            let scan = recover::scan(&file, size, !newest)?;
            for d in &scan.damage {
                report_damage(id, d.offset, d.len, d.key);
            }
            let damaged: u64 = scan.damage.iter().filter(|d| d.key.is_none()).map(|d| d.len).sum();
            state.segments.get_mut(&id).expect("inserted above").dead += damaged;
            if scan.valid_end < size {
                tracing::warn!(
                    segment = id,
                    offset = scan.valid_end,
                    lost = size - scan.valid_end,
                    "cutting torn tail of segment (no valid record follows)"
                );
                file.set_len(scan.valid_end)?;
                file.sync_all()?;
                state.segments.get_mut(&id).expect("inserted above").size = scan.valid_end;
            }
            appendable = newest && scan.damage.is_empty();
            if !appendable {
                let sealed_size = state.segments[&id].size;
                if let Err(e) = index_file::write(dir, id, sealed_size, &scan.entries) {
                    tracing::warn!(segment = id, error = %e, "could not write segment index file");
                }
            }
            scan.entries
        }
    };
    state.replay(id, &entries);
    Ok((entries, appendable))
}

impl SegmentStore {
    /// Opens (or creates) the store in `dir`, recovering the index from its segments. Blocking:
    /// call it from a blocking context.
    pub fn open(dir: impl AsRef<Path>, opts: SegmentStoreOptions) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let mut state = State::default();
        let ids = list_segments(&dir)?;
        let last = ids.last().copied();
        let mut reopened = None;
        for id in &ids {
            let (entries, appendable) = open_segment(&dir, *id, Some(*id) == last, &mut state)?;
            if appendable {
                reopened = Some((*id, entries));
            }
        }
        let (active, active_entries) = match reopened {
            Some(r) => r,
            None => {
                // A new store, or a newest segment sealed for its damage: start a fresh one.
                let id = last.map_or(1, |l| l + 1);
                let (file, size) = create_segment(&dir, id)?;
                state.segments.insert(
                    id,
                    Segment {
                        file: Arc::new(file),
                        size,
                        dead: 0,
                        live: 0,
                    },
                );
                (id, Vec::new())
            }
        };
        state.active = active;
        let state = Arc::new(RwLock::new(state));
        let failed = Arc::new(Mutex::new(None));
        #[cfg(test)]
        let fail_syncs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer {
            dir: dir.clone(),
            opts,
            state: state.clone(),
            active,
            active_entries,
            failed: failed.clone(),
            #[cfg(test)]
            fail_syncs: fail_syncs.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("cairn-shard-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            dir,
            state,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            failed,
            #[cfg(test)]
            fail_syncs,
            #[cfg(test)]
            step_hook: Mutex::new(None),
        })
    }

    fn send(&self, op: Op) -> Result<(), ShardStoreError> {
        if let Some(reason) = self.failed.lock().clone() {
            return Err(ShardStoreError::OutOfService(reason));
        }
        let tx = self.tx.lock();
        tx.as_ref()
            .ok_or(ShardStoreError::Closed)?
            .send(op)
            .map_err(|_| ShardStoreError::Closed)
    }

    /// Stops the writer thread after it has finished the queued requests.
    pub fn close(&self) {
        self.tx.lock().take();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }

    /// The shard's length if it exists (index lookup only, no read).
    pub fn shard_len(&self, key: ShardKey) -> Option<u32> {
        self.state.read().index.get(&key).map(|l| l.len)
    }

    /// Current space accounting.
    pub fn stats(&self) -> StoreStats {
        let st = self.state.read();
        StoreStats {
            shards: st.index.len() as u64,
            live_bytes: st.live_bytes,
            disk_bytes: st.segments.values().map(|s| s.size).sum(),
        }
    }

    /// Shards known to be damaged (found by recovery or by a read), in key order.
    pub fn damaged(&self) -> Vec<ShardKey> {
        let mut v: Vec<ShardKey> = self.state.read().damaged.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// Whether the store still accepts writes (false after a failed write or fdatasync).
    pub fn is_writable(&self) -> bool {
        self.failed.lock().is_none()
    }

    /// Every shard with its length, in key order (a snapshot of the index).
    pub fn shards(&self) -> Vec<(ShardKey, u32)> {
        self.state.read().index.iter().map(|(k, l)| (*k, l.len)).collect()
    }

    /// Makes the next `n` fdatasync calls fail, as a failing disk would.
    #[cfg(test)]
    pub(crate) fn inject_sync_failures(&self, n: u32) {
        self.fail_syncs.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for SegmentStore {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait::async_trait]
impl ShardStore for SegmentStore {
    async fn put(&self, key: ShardKey, data: Bytes) -> Result<(), ShardStoreError> {
        if u32::try_from(data.len()).is_err() {
            return Err(ShardStoreError::TooLarge(data.len()));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Op::Put { key, data, reply })?;
        rx.await.map_err(|_| ShardStoreError::Closed)?
    }

    async fn get(&self, key: ShardKey) -> Result<Option<Bytes>, ShardStoreError> {
        let (loc, file) = {
            let st = self.state.read();
            let Some(loc) = st.index.get(&key).copied() else {
                return Ok(None);
            };
            let file = st.segments.get(&loc.seg).map(|s| s.file.clone());
            (loc, file)
        };
        let Some(file) = file else {
            return Ok(None);
        };
        let res = tokio::task::spawn_blocking(move || read_record(&file, key, loc))
            .await
            .map_err(|e| ShardStoreError::Io(io::Error::other(e)))?;
        match res {
            Ok(b) => Ok(Some(b)),
            Err(e) => {
                if matches!(e, ShardStoreError::Corrupt { .. }) {
                    let mut st = self.state.write();
                    // Count a record once, and only while it is still the current one.
                    if st.index.get(&key) == Some(&loc) && st.damaged.insert(key) {
                        drop(st);
                        report_damage(loc.seg, loc.offset, State::record_len(loc.len), Some(key));
                    }
                }
                Err(e)
            }
        }
    }

    async fn delete(&self, key: ShardKey) -> Result<bool, ShardStoreError> {
        if self.shard_len(key).is_none() {
            return Ok(false);
        }
        let (reply, rx) = oneshot::channel();
        self.send(Op::Delete { key, reply })?;
        rx.await.map_err(|_| ShardStoreError::Closed)?
    }

    async fn stat(&self, key: ShardKey) -> Result<Option<u32>, ShardStoreError> {
        Ok(self.shard_len(key))
    }

    async fn list(&self, after: Option<ShardKey>, limit: usize) -> Result<Vec<(ShardKey, u32)>, ShardStoreError> {
        let st = self.state.read();
        let range = match after {
            Some(a) => st
                .index
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => st.index.range(..),
        };
        Ok(range.take(limit.min(MAX_LIST)).map(|(k, l)| (*k, l.len)).collect())
    }

    async fn damaged(&self) -> Result<Vec<ShardKey>, ShardStoreError> {
        Ok(self.damaged())
    }

    async fn health(&self) -> Result<DiskHealth, ShardStoreError> {
        let capacity = rustix::fs::statvfs(&self.dir).ok().map(|v| Capacity {
            total: v.f_blocks.saturating_mul(v.f_frsize),
            free: v.f_bavail.saturating_mul(v.f_frsize),
        });
        Ok(DiskHealth {
            stats: self.stats(),
            writable: self.is_writable(),
            damaged: self.state.read().damaged.len() as u64,
            capacity,
        })
    }

    async fn compact(
        &self,
        opts: &CompactOptions,
        progress: &CompactProgress,
    ) -> Result<CompactionReport, ShardStoreError> {
        self.compact_pass(opts, progress).await
    }
}

fn read_record(file: &File, key: ShardKey, loc: Loc) -> Result<Bytes, ShardStoreError> {
    let corrupt = |reason| ShardStoreError::Corrupt {
        chunk: key.chunk,
        index: key.index,
        reason,
    };
    let mut buf = vec![0u8; HEADER_LEN + loc.len as usize];
    match file.read_exact_at(&mut buf, loc.offset) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(corrupt("truncated")),
        Err(e) => return Err(e.into()),
    }
    let h: &[u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().expect("header length");
    let header = format::decode_header(h).map_err(|_| corrupt("bad header"))?;
    if header.key != key || header.len != loc.len || header.kind != KIND_SHARD {
        return Err(corrupt("header names another shard"));
    }
    if !format::verify(h, &buf[HEADER_LEN..]) {
        return Err(corrupt("CRC32 mismatch"));
    }
    Ok(Bytes::from(buf).slice(HEADER_LEN..))
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_suffix(".seg") {
            if let Ok(id) = u64::from_str_radix(hex, 16) {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn create_segment(dir: &Path, id: u64) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(segment_path(dir, id))?;
    File::open(dir)?.sync_all()?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

struct Writer {
    dir: PathBuf,
    opts: SegmentStoreOptions,
    state: Arc<RwLock<State>>,
    active: u64,
    /// Records of the active segment, written to its index file when it is sealed.
    active_entries: Vec<Entry>,
    /// Set by the first failed write or sync; from then on every write is refused.
    failed: Arc<Mutex<Option<String>>>,
    #[cfg(test)]
    fail_syncs: Arc<std::sync::atomic::AtomicU32>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Op>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            let mut bytes = 0usize;
            while bytes < self.opts.max_batch_bytes {
                match rx.try_recv() {
                    Ok(op) => {
                        if let Op::Put { data, .. } = &op {
                            bytes += data.len();
                        }
                        batch.push(op);
                    }
                    Err(_) => break,
                }
            }
            let (writes, others): (Vec<Op>, Vec<Op>) = batch
                .into_iter()
                .partition(|op| matches!(op, Op::Put { .. } | Op::Delete { .. }));
            self.write_batch(writes);
            for op in others {
                match op {
                    Op::Carry { records, reply } => {
                        let _ = reply.send(self.carry(records));
                    }
                    Op::Seal { reply } => {
                        let _ = reply.send(self.seal());
                    }
                    Op::Retire { seg, reply } => {
                        let _ = reply.send(self.retire(seg));
                    }
                    Op::Put { .. } | Op::Delete { .. } => {}
                }
            }
        }
    }

    fn out_of_service(&self) -> Option<ShardStoreError> {
        self.failed.lock().clone().map(ShardStoreError::OutOfService)
    }

    fn active_file(&self) -> (Arc<File>, u64) {
        let st = self.state.read();
        let s = &st.segments[&self.active];
        (s.file.clone(), s.size)
    }

    fn roll_if_full(&mut self) -> io::Result<()> {
        let (_, size) = self.active_file();
        if size < self.opts.segment_bytes {
            return Ok(());
        }
        self.roll()
    }

    /// Seals the active segment (writing its index file) and starts the next one.
    fn roll(&mut self) -> io::Result<()> {
        let (_, sealed_size) = self.active_file();
        let id = self.active + 1;
        let (file, size) = create_segment(&self.dir, id)?;
        if let Err(e) = index_file::write(&self.dir, self.active, sealed_size, &self.active_entries) {
            tracing::warn!(segment = self.active, error = %e, "could not write segment index file");
        }
        self.active_entries.clear();
        let mut st = self.state.write();
        st.segments.insert(
            id,
            Segment {
                file: Arc::new(file),
                size,
                dead: 0,
                live: 0,
            },
        );
        st.active = id;
        self.active = id;
        Ok(())
    }

    fn sync(&self, file: &File) -> io::Result<()> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let left = self.fail_syncs.load(Ordering::SeqCst);
            if left > 0 {
                self.fail_syncs.store(left - 1, Ordering::SeqCst);
                return Err(io::Error::other("injected fdatasync failure"));
            }
        }
        file.sync_data()
    }

    /// Appends `records` to the active segment with one write and one fdatasync, then applies
    /// the index updates. Returns the location of each record. A failed write or sync takes the
    /// store out of service.
    fn append(&mut self, records: &[(u8, ShardKey, &[u8])]) -> Result<Vec<Loc>, ShardStoreError> {
        if let Some(e) = self.out_of_service() {
            return Err(e);
        }
        self.roll_if_full()?;
        let (file, start) = self.active_file();
        let total: usize = records.iter().map(|r| HEADER_LEN + r.2.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut locs = Vec::with_capacity(records.len());
        for (kind, key, payload) in records {
            let loc = Loc {
                seg: self.active,
                offset: start + buf.len() as u64,
                len: payload.len() as u32,
            };
            locs.push(loc);
            self.active_entries.push(Entry {
                offset: loc.offset,
                kind: *kind,
                key: *key,
                len: loc.len,
                target: if *kind == KIND_TOMBSTONE {
                    format::decode_location(payload)
                } else {
                    None
                },
            });
            buf.extend_from_slice(&format::encode_header(*kind, *key, payload));
            buf.extend_from_slice(payload);
        }
        if let Err(e) = file.write_all_at(&buf, start).and_then(|()| self.sync(&file)) {
            // After a failed fdatasync the kernel may have dropped dirty pages and cleared the
            // error; writing on through this file could acknowledge data that is not on disk.
            let reason = format!("write or fdatasync failed: {e}");
            tracing::error!(segment = self.active, error = %e, "disk taken out of service for writes");
            *self.failed.lock() = Some(reason.clone());
            self.active_entries.truncate(self.active_entries.len() - records.len());
            return Err(ShardStoreError::OutOfService(reason));
        }
        let mut st = self.state.write();
        st.segments.get_mut(&self.active).expect("active").size = start + buf.len() as u64;
        Ok(locs)
    }

    /// Writes a batch of puts and deletes. A delete of a key that an earlier op of the batch
    /// touched first flushes the ops before it, so every delete resolves against the index.
    fn write_batch(&mut self, ops: Vec<Op>) {
        let mut run = Vec::new();
        let mut touched = HashSet::new();
        for op in ops {
            if let Op::Delete { key, .. } = &op {
                if touched.contains(key) {
                    self.write_run(std::mem::take(&mut run));
                    touched.clear();
                }
            }
            match &op {
                Op::Put { key, .. } | Op::Delete { key, .. } => {
                    touched.insert(*key);
                }
                _ => {}
            }
            run.push(op);
        }
        self.write_run(run);
    }

    fn write_run(&mut self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        // A delete names the exact location it cancels; a delete of a missing key writes nothing.
        let tombstones: Vec<Option<[u8; 16]>> = {
            let st = self.state.read();
            ops.iter()
                .map(|op| match op {
                    Op::Delete { key, .. } => st.index.get(key).map(|l| format::encode_location(l.seg, l.offset)),
                    _ => None,
                })
                .collect()
        };
        let mut records: Vec<(u8, ShardKey, &[u8])> = Vec::with_capacity(ops.len());
        for (op, tomb) in ops.iter().zip(&tombstones) {
            match (op, tomb) {
                (Op::Put { key, data, .. }, _) => records.push((KIND_SHARD, *key, data)),
                (Op::Delete { key, .. }, Some(t)) => records.push((KIND_TOMBSTONE, *key, t)),
                _ => {}
            }
        }
        let result = self.append(&records).map(|locs| {
            let mut st = self.state.write();
            for ((kind, key, _), loc) in records.iter().zip(locs) {
                if *kind == KIND_SHARD {
                    st.insert(*key, loc);
                } else {
                    st.remove(key);
                    st.mark_dead(loc);
                }
            }
        });
        for (op, tomb) in ops.into_iter().zip(tombstones) {
            match op {
                Op::Put { reply, .. } => {
                    let _ = reply.send(result.as_ref().map(|_| ()).map_err(ShardStoreError::clone_kind));
                }
                Op::Delete { reply, .. } => {
                    let _ = reply.send(
                        result
                            .as_ref()
                            .map(|_| tomb.is_some())
                            .map_err(ShardStoreError::clone_kind),
                    );
                }
                _ => {}
            }
        }
    }
}
