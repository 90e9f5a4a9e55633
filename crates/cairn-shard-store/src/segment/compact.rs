//! Compaction of a [`SegmentStore`]: the live records of mostly dead sealed segments are read
//! on the blocking pool a step at a time, and each step is appended by the writer thread,
//! which carries a record only if the index still points at it; the old segment is removed
//! once no shard lives in it. A crash at any point leaves old and new copies; recovery keeps
//! the newer.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::oneshot;

use super::{read_record, segment_path, Loc, Op, Segment, SegmentStore, State, Writer};
use crate::format::{self, KIND_SHARD, KIND_TOMBSTONE};
use crate::recover::{self, Entry, KIND_DAMAGED};
use crate::{index_file, CompactOptions, CompactProgress, CompactionReport, ShardKey, ShardStoreError};

/// A record of a segment being compacted, read outside the writer thread.
pub(super) struct Carried {
    kind: u8,
    key: ShardKey,
    payload: Bytes,
    /// Where it is now: a shard is carried only if the index still points there.
    old: Loc,
}

impl SegmentStore {
    /// One compaction pass: see [`crate::ShardStore::compact`].
    pub(super) async fn compact_pass(
        &self,
        opts: &CompactOptions,
        progress: &CompactProgress,
    ) -> Result<CompactionReport, ShardStoreError> {
        let dead_enough = |s: &Segment| s.size > 0 && s.dead as f64 >= opts.min_dead_ratio * s.size as f64;
        let seal = {
            let st = self.state.read();
            st.segments
                .get(&st.active)
                .is_some_and(|s| s.size >= MIN_SEAL_BYTES && dead_enough(s))
        };
        if seal {
            let (reply, rx) = oneshot::channel();
            self.send(Op::Seal { reply })?;
            rx.await.map_err(|_| ShardStoreError::Closed)??;
        }
        let candidates: Vec<u64> = {
            let st = self.state.read();
            st.segments
                .iter()
                .filter(|(id, s)| **id != st.active && dead_enough(s))
                .map(|(id, _)| *id)
                .collect()
        };
        progress
            .segments_total
            .store(candidates.len() as u64, Ordering::Relaxed);
        let mut pacer = Pacer::new(opts.max_bytes_per_sec);
        let mut report = CompactionReport::default();
        for id in candidates {
            self.compact_segment(id, &mut pacer, progress, &mut report).await?;
        }
        Ok(report)
    }
}

/// Paces a compaction to a rate: after each step it sleeps until the bytes rewritten so far
/// are no ahead of the rate.
struct Pacer {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Pacer {
    fn new(rate: u64) -> Self {
        Self {
            rate,
            start: Instant::now(),
            bytes: 0,
        }
    }

    async fn step(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// Most payload bytes one compaction step reads and appends: the longest a write waits behind
/// compaction is one such append.
const COMPACT_STEP_BYTES: usize = 4 << 20;

/// An active segment smaller than this is not sealed for compaction (it would only make small
/// segments).
const MIN_SEAL_BYTES: u64 = 1 << 20;

impl SegmentStore {
    async fn call<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, ShardStoreError>>) -> Op,
    ) -> Result<T, ShardStoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(op(reply))?;
        rx.await.map_err(|_| ShardStoreError::Closed)?
    }

    /// Rewrites the live records of sealed segment `id`, one step at a time, then removes it.
    async fn compact_segment(
        &self,
        id: u64,
        pacer: &mut Pacer,
        progress: &CompactProgress,
        report: &mut CompactionReport,
    ) -> Result<(), ShardStoreError> {
        let Some((file, size)) = ({
            let st = self.state.read();
            st.segments.get(&id).map(|s| (s.file.clone(), s.size))
        }) else {
            return Ok(());
        };
        let (dir, f) = (self.dir.clone(), file.clone());
        let entries = Arc::new(
            tokio::task::spawn_blocking(move || sealed_entries(&dir, id, &f, size))
                .await
                .map_err(|e| ShardStoreError::Io(io::Error::other(e)))??,
        );
        let mut next = 0;
        let mut rewritten = 0;
        while next < entries.len() {
            let (state, file, entries) = (self.state.clone(), file.clone(), entries.clone());
            let (records, after) = tokio::task::spawn_blocking(move || gather(&state, &file, id, &entries, next))
                .await
                .map_err(|e| ShardStoreError::Io(io::Error::other(e)))??;
            next = after;
            if records.is_empty() {
                continue;
            }
            let written = self.call(|reply| Op::Carry { records, reply }).await?;
            rewritten += written;
            report.bytes_rewritten += written;
            progress.bytes_rewritten.fetch_add(written, Ordering::Relaxed);
            #[cfg(test)]
            if let Some(hook) = &*self.step_hook.lock() {
                hook();
            }
            pacer.step(written).await;
        }
        let freed = self
            .call(|reply| Op::Retire { seg: id, reply })
            .await?
            .saturating_sub(rewritten);
        report.segments_removed += 1;
        report.bytes_reclaimed += freed;
        progress.segments_done.fetch_add(1, Ordering::Relaxed);
        progress.bytes_reclaimed.fetch_add(freed, Ordering::Relaxed);
        Ok(())
    }
}

/// Reads the next step's worth of records of segment `id` that must survive it, from entry
/// `from` on: current shards (a damaged one is handed over as such), and tombstones whose
/// target still exists. Returns them and the entry to go on from.
fn gather(
    state: &RwLock<State>,
    file: &File,
    id: u64,
    entries: &[Entry],
    from: usize,
) -> Result<(Vec<Carried>, usize), ShardStoreError> {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut i = from;
    while i < entries.len() && bytes < COMPACT_STEP_BYTES {
        let e = entries[i];
        i += 1;
        let loc = Loc {
            seg: id,
            offset: e.offset,
            len: e.len,
        };
        let current = state.read().index.get(&e.key) == Some(&loc);
        match e.kind {
            KIND_SHARD if current => match read_record(file, e.key, loc) {
                Ok(payload) => {
                    bytes += payload.len();
                    records.push(Carried {
                        kind: KIND_SHARD,
                        key: e.key,
                        payload,
                        old: loc,
                    });
                }
                Err(ShardStoreError::Corrupt { .. }) => records.push(Carried {
                    kind: KIND_DAMAGED,
                    key: e.key,
                    payload: Bytes::new(),
                    old: loc,
                }),
                Err(err) => return Err(err),
            },
            KIND_DAMAGED if current => records.push(Carried {
                kind: KIND_DAMAGED,
                key: e.key,
                payload: Bytes::new(),
                old: loc,
            }),
            KIND_TOMBSTONE => {
                if let Some((seg, off)) = e.target {
                    if seg != id && state.read().segments.contains_key(&seg) {
                        records.push(Carried {
                            kind: KIND_TOMBSTONE,
                            key: e.key,
                            payload: Bytes::copy_from_slice(&format::encode_location(seg, off)),
                            old: loc,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok((records, i))
}

/// The records of a sealed segment: from its index file, or by scanning it.
fn sealed_entries(dir: &Path, id: u64, file: &File, size: u64) -> io::Result<Vec<Entry>> {
    if let Some(e) = index_file::read(dir, id, size) {
        return Ok(e);
    }
    Ok(recover::scan(file, size, true)?.entries)
}

impl Writer {
    /// Appends the still-current records carried out of a segment being compacted and
    /// repoints the index at them; forgets damaged shards that are still current (they stay
    /// listed as damaged, for a rebuild from parity). Returns the bytes appended.
    pub(super) fn carry(&mut self, records: Vec<Carried>) -> Result<u64, ShardStoreError> {
        let mut keep = Vec::with_capacity(records.len());
        {
            let mut st = self.state.write();
            for r in records {
                let current = st.index.get(&r.key) == Some(&r.old);
                match r.kind {
                    KIND_SHARD if current => keep.push(r),
                    KIND_DAMAGED if current => {
                        tracing::error!(
                            segment = r.old.seg,
                            offset = r.old.offset,
                            "damaged shard dropped by compaction"
                        );
                        st.remove(&r.key);
                        st.damaged.insert(r.key);
                    }
                    KIND_TOMBSTONE => keep.push(r),
                    _ => {}
                }
            }
        }
        if keep.is_empty() {
            return Ok(0);
        }
        let list: Vec<(u8, ShardKey, &[u8])> = keep.iter().map(|r| (r.kind, r.key, &r.payload[..])).collect();
        let locs = self.append(&list)?;
        let mut st = self.state.write();
        let mut bytes = 0;
        for (r, new) in keep.iter().zip(locs) {
            bytes += State::record_len(new.len);
            if r.kind == KIND_SHARD {
                // Still current: nothing but this thread changes the index.
                st.insert(r.key, new);
            } else {
                st.mark_dead(new);
            }
        }
        Ok(bytes)
    }

    /// Seals the active segment and starts a new one.
    pub(super) fn seal(&mut self) -> Result<(), ShardStoreError> {
        if let Some(e) = self.out_of_service() {
            return Err(e);
        }
        self.roll()?;
        Ok(())
    }

    /// Removes compacted segment `seg` and its index file; refuses if a shard still lives in
    /// it. Returns the bytes freed.
    pub(super) fn retire(&mut self, seg: u64) -> Result<u64, ShardStoreError> {
        if seg == self.active {
            return Err(ShardStoreError::Io(io::Error::other(
                "cannot retire the active segment",
            )));
        }
        let size = {
            let mut st = self.state.write();
            if st.segments.get(&seg).is_some_and(|s| s.live > 0) {
                return Err(ShardStoreError::Io(io::Error::other(format!(
                    "segment {seg} still holds live shards after compaction"
                ))));
            }
            st.segments.remove(&seg).map_or(0, |s| s.size)
        };
        std::fs::remove_file(segment_path(&self.dir, seg))?;
        index_file::remove(&self.dir, seg)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(size)
    }
}
