//! [`SegmentStore`]: shards appended to segment files by one writer thread per disk.
//!
//! Writes go through a channel to a dedicated OS thread that takes every queued request, appends
//! them with one `pwrite`, calls `fdatasync` once and only then answers them all (group commit).
//! The index (shard key → location) lives in memory and is rebuilt at open by scanning the
//! segments in order; a torn record at the end of the newest segment is cut off.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::format::{self, HEADER_LEN, KIND_SHARD, KIND_TOMBSTONE};
use crate::{CompactionReport, ShardKey, ShardStore, ShardStoreError, StoreStats};

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
}

#[derive(Default)]
struct State {
    index: HashMap<ShardKey, Loc>,
    segments: BTreeMap<u64, Segment>,
    live_bytes: u64,
}

impl State {
    fn record_len(len: u32) -> u64 {
        HEADER_LEN as u64 + u64::from(len)
    }

    /// Points `key` at `loc`, marking whatever it replaced as dead.
    fn insert(&mut self, key: ShardKey, loc: Loc) {
        if let Some(old) = self.index.insert(key, loc) {
            self.mark_dead(old);
            self.live_bytes -= u64::from(old.len);
        }
        self.live_bytes += u64::from(loc.len);
    }

    fn remove(&mut self, key: &ShardKey) -> Option<Loc> {
        let old = self.index.remove(key)?;
        self.mark_dead(old);
        self.live_bytes -= u64::from(old.len);
        Some(old)
    }

    fn mark_dead(&mut self, loc: Loc) {
        if let Some(s) = self.segments.get_mut(&loc.seg) {
            s.dead += Self::record_len(loc.len);
        }
    }
}

enum Op {
    Put {
        key: ShardKey,
        data: Bytes,
        reply: oneshot::Sender<io::Result<()>>,
    },
    Delete {
        key: ShardKey,
        reply: oneshot::Sender<io::Result<bool>>,
    },
    Compact {
        reply: oneshot::Sender<io::Result<CompactionReport>>,
    },
}

/// The on-disk shard store of one disk. See the crate documentation for its guarantees.
pub struct SegmentStore {
    state: Arc<RwLock<State>>,
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
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
        for id in &ids {
            recover_segment(&dir, *id, Some(*id) == last, &mut state)?;
        }
        let active = match last {
            Some(id) => id,
            None => {
                let (file, _) = create_segment(&dir, 1)?;
                state.segments.insert(
                    1,
                    Segment {
                        file: Arc::new(file),
                        size: 0,
                        dead: 0,
                    },
                );
                1
            }
        };
        let state = Arc::new(RwLock::new(state));
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer {
            dir,
            opts,
            state: state.clone(),
            active,
        };
        let handle = std::thread::Builder::new()
            .name("cairn-shard-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            state,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    fn send(&self, op: Op) -> Result<(), ShardStoreError> {
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
        rx.await.map_err(|_| ShardStoreError::Closed)??;
        Ok(())
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
        tokio::task::spawn_blocking(move || read_record(&file, key, loc).map(Some))
            .await
            .map_err(|e| ShardStoreError::Io(io::Error::other(e)))?
    }

    async fn delete(&self, key: ShardKey) -> Result<bool, ShardStoreError> {
        if !self.contains(key) {
            return Ok(false);
        }
        let (reply, rx) = oneshot::channel();
        self.send(Op::Delete { key, reply })?;
        Ok(rx.await.map_err(|_| ShardStoreError::Closed)??)
    }

    fn contains(&self, key: ShardKey) -> bool {
        self.state.read().index.contains_key(&key)
    }

    fn stats(&self) -> StoreStats {
        let st = self.state.read();
        StoreStats {
            shards: st.index.len() as u64,
            live_bytes: st.live_bytes,
            disk_bytes: st.segments.values().map(|s| s.size).sum(),
        }
    }

    async fn compact(&self) -> Result<CompactionReport, ShardStoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Compact { reply })?;
        Ok(rx.await.map_err(|_| ShardStoreError::Closed)??)
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

/// Scans one segment into `state`. A bad record ends the scan; in the newest segment it is a
/// torn write and the file is cut there, in a sealed one it is logged as corruption.
fn recover_segment(dir: &Path, id: u64, newest: bool, state: &mut State) -> io::Result<()> {
    let (file, size) = create_segment(dir, id)?;
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut offset = 0u64;
    let mut seg_dead = 0u64;
    state.segments.insert(
        id,
        Segment {
            file: Arc::new(file.try_clone()?),
            size: 0,
            dead: 0,
        },
    );
    let good_end = loop {
        if offset == size {
            break size;
        }
        let mut h = [0u8; HEADER_LEN];
        if reader.read_exact(&mut h).is_err() {
            break offset;
        }
        let Ok(header) = format::decode_header(&h) else {
            break offset;
        };
        let rec_end = offset + HEADER_LEN as u64 + u64::from(header.len);
        if rec_end > size {
            break offset;
        }
        let mut payload = vec![0u8; header.len as usize];
        if reader.read_exact(&mut payload).is_err() || !format::verify(&h, &payload) {
            break offset;
        }
        let loc = Loc {
            seg: id,
            offset,
            len: header.len,
        };
        if header.kind == KIND_SHARD {
            state.insert(header.key, loc);
        } else if let Some((seg, off)) = format::decode_location(&payload) {
            // A tombstone cancels only the exact (older) location it names, so a later re-put
            // of the same shard is never hidden by it.
            seg_dead += rec_end - offset;
            if state
                .index
                .get(&header.key)
                .is_some_and(|l| l.seg == seg && l.offset == off)
            {
                state.remove(&header.key);
            }
        }
        offset = rec_end;
    };
    if good_end < size {
        if newest {
            tracing::warn!(
                segment = id,
                offset = good_end,
                lost = size - good_end,
                "cutting torn tail of segment"
            );
            file.set_len(good_end)?;
            file.sync_all()?;
        } else {
            tracing::error!(
                segment = id,
                offset = good_end,
                "corrupt record in sealed segment; the rest of it is ignored"
            );
        }
    }
    let seg = state.segments.get_mut(&id).expect("inserted above");
    seg.size = good_end;
    seg.dead += seg_dead;
    Ok(())
}

struct Writer {
    dir: PathBuf,
    opts: SegmentStoreOptions,
    state: Arc<RwLock<State>>,
    active: u64,
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
            let (compactions, writes): (Vec<Op>, Vec<Op>) =
                batch.into_iter().partition(|op| matches!(op, Op::Compact { .. }));
            self.write_batch(writes);
            for op in compactions {
                if let Op::Compact { reply } = op {
                    let _ = reply.send(self.compact());
                }
            }
        }
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
        let id = self.active + 1;
        let (file, size) = create_segment(&self.dir, id)?;
        self.state.write().segments.insert(
            id,
            Segment {
                file: Arc::new(file),
                size,
                dead: 0,
            },
        );
        self.active = id;
        Ok(())
    }

    /// Appends `records` to the active segment with one write and one fdatasync, then applies
    /// the index updates. Returns the location of each record.
    fn append(&mut self, records: &[(u8, ShardKey, &[u8])]) -> io::Result<Vec<Loc>> {
        self.roll_if_full()?;
        let (file, start) = self.active_file();
        let total: usize = records.iter().map(|r| HEADER_LEN + r.2.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut locs = Vec::with_capacity(records.len());
        for (kind, key, payload) in records {
            locs.push(Loc {
                seg: self.active,
                offset: start + buf.len() as u64,
                len: payload.len() as u32,
            });
            buf.extend_from_slice(&format::encode_header(*kind, *key, payload));
            buf.extend_from_slice(payload);
        }
        let res = file.write_all_at(&buf, start).and_then(|()| file.sync_data());
        if let Err(e) = res {
            // Leave no half-written tail behind the next append.
            let _ = file.set_len(start);
            return Err(e);
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
                Op::Compact { .. } => {}
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
        let fail = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        for (op, tomb) in ops.into_iter().zip(tombstones) {
            match op {
                Op::Put { reply, .. } => {
                    let _ = reply.send(result.as_ref().map(|_| ()).map_err(fail));
                }
                Op::Delete { reply, .. } => {
                    let _ = reply.send(result.as_ref().map(|_| tomb.is_some()).map_err(fail));
                }
                Op::Compact { .. } => {}
            }
        }
    }

    /// Rewrites every sealed segment that is at least half dead, oldest first.
    fn compact(&mut self) -> io::Result<CompactionReport> {
        let mut report = CompactionReport::default();
        let candidates: Vec<u64> = {
            let st = self.state.read();
            st.segments
                .iter()
                .filter(|(id, s)| **id != self.active && s.dead * 2 >= s.size)
                .map(|(id, _)| *id)
                .collect()
        };
        for id in candidates {
            let (file, size) = {
                let st = self.state.read();
                let s = &st.segments[&id];
                (s.file.clone(), s.size)
            };
            // Collect what must survive: live shards, and tombstones whose target still exists.
            let mut keep: Vec<(u8, ShardKey, Vec<u8>, Option<Loc>)> = Vec::new();
            let mut reader = BufReader::with_capacity(1 << 20, &*file);
            let mut offset = 0u64;
            while offset < size {
                let mut h = [0u8; HEADER_LEN];
                reader.read_exact(&mut h)?;
                let header = format::decode_header(&h)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad record header"))?;
                let mut payload = vec![0u8; header.len as usize];
                reader.read_exact(&mut payload)?;
                let loc = Loc {
                    seg: id,
                    offset,
                    len: header.len,
                };
                offset += HEADER_LEN as u64 + u64::from(header.len);
                let st = self.state.read();
                if header.kind == KIND_SHARD {
                    if st.index.get(&header.key) == Some(&loc) {
                        if !format::verify(&h, &payload) {
                            tracing::error!(segment = id, "corrupt shard skipped by compaction");
                            continue;
                        }
                        keep.push((KIND_SHARD, header.key, payload, Some(loc)));
                    }
                } else if let Some((seg, _)) = format::decode_location(&payload) {
                    if seg != id && st.segments.contains_key(&seg) {
                        keep.push((KIND_TOMBSTONE, header.key, payload, None));
                    }
                }
            }
            drop(reader);
            for group in keep.chunks(256) {
                let records: Vec<(u8, ShardKey, &[u8])> =
                    group.iter().map(|(k, key, p, _)| (*k, *key, p.as_slice())).collect();
                let locs = self.append(&records)?;
                let mut st = self.state.write();
                for ((kind, key, _, old), new) in group.iter().zip(locs) {
                    if *kind == KIND_SHARD {
                        if st.index.get(key) == old.as_ref() {
                            st.insert(*key, new);
                        }
                    } else {
                        st.mark_dead(new);
                    }
                }
            }
            self.state.write().segments.remove(&id);
            std::fs::remove_file(segment_path(&self.dir, id))?;
            File::open(&self.dir)?.sync_all()?;
            report.segments_removed += 1;
            report.bytes_reclaimed += size;
        }
        Ok(report)
    }
}
