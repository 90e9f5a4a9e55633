//! One chunk from its shards to verified bytes.
//!
//! The data shards are asked first; the parity shards too as soon as one of those fails or
//! after [`StoreConfig::hedge_after`](crate::StoreConfig::hedge_after) without all of them (a
//! slow or stopped node costs at most that delay). The first `k` shards that arrive are
//! decoded and the chunk checked against its BLAKE3 id. If the check fails — a shard whose
//! bytes are wrong although its CRC held (written wrong, or by a faulty node) — every other
//! shard is fetched and every subset of `k` tried until one decodes to the right chunk; the
//! shards that disagree with it are reported (`cairn_shard_bad_total`, a warning naming the
//! disk). Bytes that did not pass the BLAKE3 check are never returned.
//!
//! Shards the chunk's placement records as missing are not asked for; shards found absent,
//! of the wrong length or wrong are reported lost to the metadata (`ShardsChanged`), which
//! puts the chunk in the repair queue. A disk that cannot be reached is not a loss.

use std::sync::Arc;

use bytes::Bytes;
use cairn_chunk::Codec;
use cairn_meta::{ChunkPlacement, ChunkRef, Command};
use cairn_shard_store::{ShardKey, ShardStoreError};
use cairn_types::ErasureScheme;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::store::Inner;
use crate::{Error, Result};

/// Most subsets of `k` shards tried after a failed BLAKE3 check (C(6, 4) = 15 for RS 4+2;
/// C(32, 16) would not end).
const MAX_SUBSETS: usize = 512;

/// What reading one shard gave.
enum Got {
    Shard(Bytes),
    /// Absent, corrupt or of the wrong length: rebuilt from the others.
    Missing,
    /// Its disk could not be reached.
    Unreachable,
    /// Recorded missing: not asked for.
    Skipped,
}

/// Fetches chunk `c`, stored with `scheme` (from its record), and verifies it (see the
/// module's documentation).
pub(crate) async fn fetch_chunk(
    inner: &Arc<Inner>,
    c: ChunkRef,
    scheme: ErasureScheme,
    placement: ChunkPlacement,
) -> Result<Bytes> {
    let codec = inner.codec_for(scheme);
    let naming = inner.naming(scheme, placement.pool.clone());
    let k = usize::from(scheme.data);
    let total = scheme.total();
    let len = c.len as usize;
    let shard_len = codec.shard_len(len);
    let places = shard_slots(inner, &c.id, &placement, total).await?;
    let recorded_missing = placement.missing;
    let lost = std::sync::atomic::AtomicU32::new(0);
    let read = |i: usize| {
        let slot = places[i].clone();
        let key = ShardKey {
            chunk: c.id,
            index: i as u8,
        };
        let lost = &lost;
        async move {
            let Some(disk) = slot.store.filter(|_| recorded_missing & (1 << i) == 0) else {
                let got = if recorded_missing & (1 << i) != 0 {
                    Got::Skipped
                } else {
                    Got::Unreachable
                };
                return (i, got);
            };
            let got = match disk.get(key).await {
                Ok(Some(s)) if s.len() == shard_len => Got::Shard(s),
                Ok(Some(s)) => {
                    tracing::warn!(chunk = %c.id, shard = i, len = s.len(), want = shard_len, "shard of the wrong length; rebuilding from the others");
                    metrics::counter!("cairn_shard_bad_total").increment(1);
                    lost.fetch_or(1 << i, std::sync::atomic::Ordering::Relaxed);
                    Got::Missing
                }
                Ok(None) => {
                    tracing::warn!(chunk = %c.id, shard = i, disk = %slot.disk, "shard absent; rebuilding from the others");
                    lost.fetch_or(1 << i, std::sync::atomic::Ordering::Relaxed);
                    Got::Missing
                }
                Err(e) => {
                    tracing::warn!(chunk = %c.id, shard = i, error = %e, "shard unreadable; rebuilding from the others");
                    metrics::counter!("cairn_shard_read_errors_total").increment(1);
                    if matches!(e, ShardStoreError::Corrupt { .. }) {
                        lost.fetch_or(1 << i, std::sync::atomic::Ordering::Relaxed);
                    }
                    if matches!(e, ShardStoreError::Unavailable(_)) {
                        Got::Unreachable
                    } else {
                        Got::Missing
                    }
                }
            };
            (i, got)
        }
    };

    let mut slots: Vec<Option<Bytes>> = vec![None; total];
    let mut have = 0;
    let mut unreachable = false;
    let mut pending = FuturesUnordered::new();
    pending.extend((0..k).map(read));
    let mut asked = k;
    let hedge = tokio::time::sleep(inner.config.hedge_after);
    tokio::pin!(hedge);
    while have < k {
        tokio::select! {
            next = pending.next() => match next {
                Some((i, Got::Shard(s))) => {
                    slots[i] = Some(s);
                    have += 1;
                }
                Some((_, failed)) => {
                    unreachable |= matches!(failed, Got::Unreachable);
                    if asked < total {
                        pending.extend((asked..total).map(read));
                        asked = total;
                    }
                }
                None => break,
            },
            _ = &mut hedge, if asked < total => {
                metrics::counter!("cairn_shard_hedged_reads_total").increment(1);
                pending.extend((asked..total).map(read));
                asked = total;
            }
        }
    }
    if asked > k {
        metrics::counter!("cairn_chunk_reconstructions_total").increment(1);
    }
    let first = slots.clone();
    let decoded = {
        let codec = codec.clone();
        let naming = naming.clone();
        tokio::task::spawn_blocking(move || decode_checked(&codec, first, len, c.id, &naming))
            .await
            .map_err(|e| Error::Storage(e.to_string()))?
    };
    match decoded {
        Some(data) => {
            report_lost(inner, c, &placement, lost.load(std::sync::atomic::Ordering::Relaxed));
            return Ok(data);
        }
        None if have < k => {
            return Err(if unreachable {
                Error::Unavailable(format!("chunk {}: storage nodes unreachable", c.id))
            } else {
                Error::Storage(format!("chunk {}: {have} of {k} shards readable", c.id))
            })
        }
        None => {}
    }

    // The first k disagree with the id: some shard is wrong although it read well. Fetch all
    // of them and find a subset that decodes right.
    metrics::counter!("cairn_chunk_verify_failures_total").increment(1);
    tracing::warn!(chunk = %c.id, "chunk failed its BLAKE3 check; trying other shard subsets");
    pending.extend((asked..total).map(read));
    while let Some((i, got)) = pending.next().await {
        if let Got::Shard(s) = got {
            slots[i] = Some(s);
        }
    }
    let id = c.id;
    let disks: Vec<Arc<str>> = places.iter().map(|s| s.disk.clone()).collect();
    let lost_before = lost.load(std::sync::atomic::Ordering::Relaxed);
    let found = tokio::task::spawn_blocking(move || {
        let present: Vec<usize> = (0..total).filter(|&i| slots[i].is_some()).collect();
        for subset in subsets(&present, k).take(MAX_SUBSETS) {
            let trial = (0..total)
                .map(|i| subset.contains(&i).then(|| slots[i].clone()).flatten())
                .collect();
            if let Some(data) = decode_checked(&codec, trial, len, id, &naming) {
                // The shards that disagree with the right chunk are the bad ones.
                let right = codec.encode(&data);
                let mut bad = 0u32;
                for &i in &present {
                    if slots[i].as_ref() != Some(&right[i]) {
                        metrics::counter!("cairn_shard_bad_total").increment(1);
                        tracing::warn!(chunk = %id, shard = i, disk = %disks[i], "shard holds wrong bytes under a valid checksum: it needs rewriting");
                        bad |= 1 << i;
                    }
                }
                return Ok((data, bad));
            }
        }
        Err(Error::Storage(format!(
            "chunk {id}: no subset of its {} readable shards decodes to it",
            present.len()
        )))
    })
    .await
    .map_err(|e| Error::Storage(e.to_string()))?;
    let (data, bad) = found?;
    report_lost(inner, c, &placement, lost_before | bad);
    Ok(data)
}

/// Where each of the `total` shards of chunk `id` is: its home by the placement's epoch, or
/// the disk it was moved to.
pub(crate) async fn shard_slots(
    inner: &Arc<Inner>,
    id: &cairn_types::ChunkId,
    placement: &ChunkPlacement,
    total: usize,
) -> Result<Vec<crate::layout::Slot>> {
    let mut places = inner
        .layout
        .place(id, placement.epoch, placement.pool.as_deref(), total)
        .await?;
    for (i, disk) in &placement.moved {
        if let Some(p) = places.get_mut(usize::from(*i)) {
            *p = inner.layout.slot(disk).await.unwrap_or_else(|_| crate::layout::Slot {
                disk: Arc::from(disk.as_str()),
                store: None,
            });
        }
    }
    Ok(places)
}

/// Tells the metadata (in the background: the read does not wait) that shards of `c` were
/// found lost, so that repair rebuilds them.
pub(crate) fn report_lost(inner: &Arc<Inner>, c: ChunkRef, placement: &ChunkPlacement, lost: u32) {
    let lost = lost & !placement.missing;
    if lost == 0 {
        return;
    }
    let meta = inner.meta.clone();
    let epoch = placement.epoch;
    tokio::spawn(async move {
        let cmd = Command::ShardsChanged {
            chunk: c.id,
            epoch,
            restored: 0,
            lost,
        };
        if let Err(e) = meta.propose(cmd).await {
            tracing::warn!(chunk = %c.id, error = %e, "could not queue the chunk for repair");
        }
    });
}

/// The chunk decoded from `slots`, if `naming` says `id` names it.
fn decode_checked(
    codec: &Codec,
    slots: Vec<Option<Bytes>>,
    len: usize,
    id: cairn_types::ChunkId,
    naming: &crate::class::ChunkNaming,
) -> Option<Bytes> {
    let data = codec.decode(slots, len).ok()?;
    naming.names(&data, &id).then_some(data)
}

/// The subsets of `k` elements of `items`, in lexicographic order of positions.
fn subsets(items: &[usize], k: usize) -> impl Iterator<Item = Vec<usize>> + '_ {
    let n = items.len();
    let mut idx: Option<Vec<usize>> = (k <= n).then(|| (0..k).collect());
    std::iter::from_fn(move || {
        let current = idx.clone()?;
        let out = current.iter().map(|&i| items[i]).collect();
        // Next combination: the rightmost position that can move right, and those after it.
        let mut next = current;
        let mut p = k;
        loop {
            if p == 0 {
                idx = None;
                break;
            }
            p -= 1;
            if next[p] < n - k + p {
                next[p] += 1;
                for q in p + 1..k {
                    next[q] = next[q - 1] + 1;
                }
                idx = Some(next);
                break;
            }
        }
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::subsets;

    #[test]
    fn subsets_are_all_there_once() {
        let items = [3, 5, 7, 9, 11, 13];
        let all: Vec<Vec<usize>> = subsets(&items, 4).collect();
        assert_eq!(all.len(), 15);
        assert_eq!(all[0], vec![3, 5, 7, 9]);
        assert_eq!(all[14], vec![7, 9, 11, 13]);
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), 15);
        assert_eq!(subsets(&items, 6).count(), 1);
        assert_eq!(subsets(&items, 7).count(), 0);
        assert_eq!(subsets(&items, 0).count(), 1);
    }
}
