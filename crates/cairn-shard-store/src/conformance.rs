//! One suite, every implementation: [`suite`] runs against [`SegmentStore`] and [`MemStore`]
//! here and against the gRPC client in `cairn-shard-client` (feature `conformance`). Tests of
//! what only the on-disk store promises (reopen, torn tails, corruption, compaction) follow it.

use std::sync::Arc;

use bytes::Bytes;
use cairn_types::ChunkId;

use crate::{ShardKey, ShardStore, MAX_LIST};

fn key(n: u8, index: u8) -> ShardKey {
    ShardKey {
        chunk: ChunkId([n; 32]),
        index,
    }
}

fn payload(n: u8, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(n))
            .collect::<Vec<_>>(),
    )
}

/// What every [`ShardStore`] must do, checked on an empty `store`: round trips, absence,
/// overwrite, delete, empty and large shards, paged listing in key order, health counts,
/// concurrent writers, and compaction that loses nothing live.
pub async fn suite(store: Arc<dyn ShardStore>) {
    // Round trip and absence.
    assert_eq!(store.get(key(1, 0)).await.unwrap(), None);
    assert_eq!(store.stat(key(1, 0)).await.unwrap(), None);
    store.put(key(1, 0), payload(1, 1000)).await.unwrap();
    assert_eq!(store.get(key(1, 0)).await.unwrap(), Some(payload(1, 1000)));
    assert_eq!(store.stat(key(1, 0)).await.unwrap(), Some(1000));
    assert_eq!(store.stat(key(1, 1)).await.unwrap(), None);

    // Overwrite replaces.
    store.put(key(1, 0), payload(2, 10)).await.unwrap();
    assert_eq!(store.get(key(1, 0)).await.unwrap(), Some(payload(2, 10)));
    let health = store.health().await.unwrap();
    assert_eq!(health.stats.shards, 1);
    assert_eq!(health.stats.live_bytes, 10);
    assert!(health.writable);
    assert_eq!(health.damaged, 0);
    assert_eq!(store.list(None, 100).await.unwrap(), vec![(key(1, 0), 10)]);
    assert!(store.damaged().await.unwrap().is_empty());

    // Delete once, then it is gone.
    assert!(store.delete(key(1, 0)).await.unwrap());
    assert!(!store.delete(key(1, 0)).await.unwrap());
    assert_eq!(store.get(key(1, 0)).await.unwrap(), None);
    assert_eq!(store.health().await.unwrap().stats.shards, 0);

    // Empty shards are shards too; a shard larger than any one message of a transport too.
    store.put(key(3, 2), Bytes::new()).await.unwrap();
    assert_eq!(store.get(key(3, 2)).await.unwrap(), Some(Bytes::new()));
    let big = payload(4, (5 << 20) + 7);
    store.put(key(4, 1), big.clone()).await.unwrap();
    assert_eq!(store.get(key(4, 1)).await.unwrap(), Some(big));
    assert!(store.delete(key(4, 1)).await.unwrap());

    // Many concurrent writers all land.
    let mut tasks = Vec::new();
    for n in 10..110u8 {
        let s = store.clone();
        tasks.push(tokio::spawn(
            async move { s.put(key(n, n % 4), payload(n, 5000)).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for n in 10..110u8 {
        assert_eq!(store.get(key(n, n % 4)).await.unwrap(), Some(payload(n, 5000)));
    }
    assert_eq!(store.health().await.unwrap().stats.shards, 101);

    // Listing pages through every shard once, in key order; a page never exceeds MAX_LIST.
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(after, 7).await.unwrap();
        assert!(page.len() <= 7);
        listed.extend(page.iter().copied());
        match page.last() {
            Some((k, _)) if page.len() == 7 => after = Some(*k),
            _ => break,
        }
    }
    let mut want: Vec<(ShardKey, u32)> = (10..110u8).map(|n| (key(n, n % 4), 5000)).collect();
    want.push((key(3, 2), 0));
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(
        store.list(Some(key(50, 2)), 2).await.unwrap(),
        vec![(key(51, 3), 5000), (key(52, 0), 5000)]
    );
    assert!(store.list(None, usize::MAX).await.unwrap().len() <= MAX_LIST);
    // A chunk's shards, from the key just before them.
    let chunk = key(51, 0).chunk;
    let from = store.list(ShardKey::before_chunk(chunk), 3).await.unwrap();
    assert_eq!(from, vec![(key(51, 3), 5000), (key(52, 0), 5000), (key(53, 1), 5000)]);
    assert_eq!(ShardKey::before_chunk(ChunkId([0; 32])), None);
    assert_eq!(
        ShardKey::before_chunk(ChunkId([1; 32])).map(|k| (k.chunk.0[31], k.chunk.0[30], k.index)),
        Some((0, 1, 255))
    );

    // Compaction never loses live data.
    for n in 10..100u8 {
        assert!(store.delete(key(n, n % 4)).await.unwrap());
    }
    store.compact(&Default::default(), &Default::default()).await.unwrap();
    for n in 100..110u8 {
        assert_eq!(store.get(key(n, n % 4)).await.unwrap(), Some(payload(n, 5000)));
    }
    assert_eq!(store.get(key(50, 2)).await.unwrap(), None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemStore, SegmentStore, SegmentStoreOptions, ShardStoreError};

    fn small_segments() -> SegmentStoreOptions {
        SegmentStoreOptions {
            segment_bytes: 64 * 1024,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn mem_store_passes_suite() {
        suite(Arc::new(MemStore::new())).await;
    }

    #[tokio::test]
    async fn segment_store_passes_suite() {
        let dir = tempfile::tempdir().unwrap();
        suite(Arc::new(SegmentStore::open(dir.path(), small_segments()).unwrap())).await;
    }

    #[tokio::test]
    async fn segment_store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SegmentStore::open(dir.path(), small_segments()).unwrap();
            for n in 0..50u8 {
                s.put(key(n, 0), payload(n, 3000)).await.unwrap();
            }
            for n in 0..25u8 {
                s.delete(key(n, 0)).await.unwrap();
            }
            // Re-put after delete must win over the tombstone, before and after compaction.
            s.put(key(3, 0), payload(99, 10)).await.unwrap();
            s.compact(&Default::default(), &Default::default()).await.unwrap();
        }
        let s = SegmentStore::open(dir.path(), small_segments()).unwrap();
        for n in 0..50u8 {
            let got = s.get(key(n, 0)).await.unwrap();
            match n {
                3 => assert_eq!(got, Some(payload(99, 10))),
                0..25 => assert_eq!(got, None, "shard {n} was deleted"),
                _ => assert_eq!(got, Some(payload(n, 3000))),
            }
        }
        assert_eq!(s.stats().shards, 26);
    }

    fn newest_segment(dir: &std::path::Path) -> std::path::PathBuf {
        let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files.pop().unwrap()
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_store_stays_writable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SegmentStore::open(dir.path(), SegmentStoreOptions::default()).unwrap();
            s.put(key(1, 0), payload(1, 4000)).await.unwrap();
            s.put(key(2, 0), payload(2, 4000)).await.unwrap();
        }
        // Simulate a crash in the middle of appending a third record.
        let path = newest_segment(dir.path());
        let good_len = std::fs::metadata(&path).unwrap().len();
        let torn = crate::format::encode_header(crate::format::KIND_SHARD, key(3, 0), &payload(3, 4000));
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, &torn).unwrap();
        std::io::Write::write_all(&mut f, &payload(3, 100)).unwrap();
        drop(f);

        let s = SegmentStore::open(dir.path(), SegmentStoreOptions::default()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        assert_eq!(s.get(key(1, 0)).await.unwrap(), Some(payload(1, 4000)));
        assert_eq!(s.get(key(2, 0)).await.unwrap(), Some(payload(2, 4000)));
        assert_eq!(s.get(key(3, 0)).await.unwrap(), None);
        s.put(key(4, 0), payload(4, 10)).await.unwrap();
        drop(s);
        let s = SegmentStore::open(dir.path(), SegmentStoreOptions::default()).unwrap();
        assert_eq!(s.get(key(4, 0)).await.unwrap(), Some(payload(4, 10)));
    }

    #[tokio::test]
    async fn flipped_bit_is_reported_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let s = SegmentStore::open(dir.path(), SegmentStoreOptions::default()).unwrap();
        s.put(key(1, 0), payload(1, 4000)).await.unwrap();
        let path = newest_segment(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[crate::format::HEADER_LEN + 100] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
        match s.get(key(1, 0)).await {
            Err(ShardStoreError::Corrupt { index: 0, .. }) => {}
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn compaction_reclaims_dead_segments() {
        let dir = tempfile::tempdir().unwrap();
        let s = SegmentStore::open(dir.path(), small_segments()).unwrap();
        for n in 0..100u8 {
            s.put(key(n, 1), payload(n, 4000)).await.unwrap();
        }
        let before = s.stats().disk_bytes;
        for n in 0..90u8 {
            s.delete(key(n, 1)).await.unwrap();
        }
        let report = s.compact(&Default::default(), &Default::default()).await.unwrap();
        assert!(report.segments_removed > 0);
        assert!(s.stats().disk_bytes < before / 2, "{:?} vs {before}", s.stats());
        for n in 90..100u8 {
            assert_eq!(s.get(key(n, 1)).await.unwrap(), Some(payload(n, 4000)));
        }
    }

    /// The expected content of the store in the compaction tests: key -> payload seed and length.
    fn compaction_workload() -> std::collections::BTreeMap<ShardKey, (u8, usize)> {
        let mut live = std::collections::BTreeMap::new();
        for n in 0..120u8 {
            live.insert(key(n, n % 3), (n, 3000 + n as usize));
        }
        live
    }

    async fn fill_and_thin(s: &SegmentStore) -> std::collections::BTreeMap<ShardKey, (u8, usize)> {
        // A first segment that stays mostly live, so it is not compacted...
        let mut live = std::collections::BTreeMap::new();
        for n in 0..20u8 {
            let k = key(n, 3);
            s.put(k, payload(n, 3000)).await.unwrap();
            live.insert(k, (n, 3000));
        }
        for (k, (n, len)) in compaction_workload() {
            s.put(k, payload(n, len)).await.unwrap();
            live.insert(k, (n, len));
        }
        // ...and a few of its shards deleted now: their tombstones land in segments that die and
        // are compacted, and must be carried or the shards come back at the next open.
        for n in 0..3u8 {
            s.delete(key(n, 3)).await.unwrap();
            live.remove(&key(n, 3));
        }
        for n in 20..80u8 {
            s.put(key(n, 3), payload(n, 3000)).await.unwrap();
            s.delete(key(n, 3)).await.unwrap();
        }
        // Most records die: deletes, and overwrites whose new copy lands in later segments.
        for n in 0..120u8 {
            let k = key(n, n % 3);
            match n % 4 {
                0 | 1 => {
                    s.delete(k).await.unwrap();
                    live.remove(&k);
                }
                2 => {
                    s.put(k, payload(n.wrapping_add(100), 500)).await.unwrap();
                    live.insert(k, (n.wrapping_add(100), 500));
                }
                _ => {}
            }
        }
        // A deleted key put again must survive its old tombstone being carried.
        s.put(key(4, 1), payload(200, 700)).await.unwrap();
        live.insert(key(4, 1), (200, 700));
        live
    }

    async fn check_content(s: &SegmentStore, live: &std::collections::BTreeMap<ShardKey, (u8, usize)>, what: &str) {
        for n in 0..120u8 {
            for i in 0..4 {
                let k = key(n, i);
                let got = s.get(k).await.unwrap();
                let want = live.get(&k).map(|(n, len)| payload(*n, *len));
                assert_eq!(got, want, "{what}: shard {n}/{i}");
            }
        }
        assert_eq!(s.stats().shards, live.len() as u64, "{what}");
    }

    #[tokio::test]
    async fn a_crash_at_any_step_of_a_compaction_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let images = tempfile::tempdir().unwrap();
        let s = SegmentStore::open(dir.path(), small_segments()).unwrap();
        let live = fill_and_thin(&s).await;
        // After every step, the directory as a crash would leave it.
        let steps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        {
            let (from, to, steps) = (dir.path().to_path_buf(), images.path().to_path_buf(), steps.clone());
            *s.step_hook.lock() = Some(Box::new(move || {
                let n = steps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let image = to.join(n.to_string());
                std::fs::create_dir(&image).unwrap();
                for e in std::fs::read_dir(&from).unwrap() {
                    let e = e.unwrap();
                    std::fs::copy(e.path(), image.join(e.file_name())).unwrap();
                }
            }));
        }
        let before = s.stats().disk_bytes;
        let progress = crate::CompactProgress::default();
        let report = s.compact(&Default::default(), &progress).await.unwrap();
        assert!(report.segments_removed >= 3, "{report:?}");
        assert!(s.stats().disk_bytes < before, "{:?} vs {before}", s.stats());
        assert_eq!(
            progress.segments_done.load(std::sync::atomic::Ordering::Relaxed),
            report.segments_removed
        );
        check_content(&s, &live, "after compaction").await;
        let taken = steps.load(std::sync::atomic::Ordering::SeqCst);
        assert!(taken >= 3, "only {taken} steps");
        for n in 0..taken {
            let image = SegmentStore::open(images.path().join(n.to_string()), small_segments()).unwrap();
            check_content(&image, &live, &format!("crash image after step {n}")).await;
        }
        drop(s);
        let s = SegmentStore::open(dir.path(), small_segments()).unwrap();
        check_content(&s, &live, "reopened").await;
    }

    #[tokio::test]
    async fn writes_during_a_throttled_compaction_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SegmentStore::open(dir.path(), small_segments()).unwrap());
        let mut live = fill_and_thin(&s).await;
        let opts = crate::CompactOptions {
            min_dead_ratio: 0.5,
            max_bytes_per_sec: 2 << 20,
        };
        let compaction = {
            let s = s.clone();
            tokio::spawn(async move { s.compact(&opts, &Default::default()).await })
        };
        // Deletes and re-puts of keys the compaction is carrying, while it carries them.
        for n in (3..120u8).step_by(8) {
            let k = key(n, n % 3);
            s.delete(k).await.unwrap();
            live.remove(&k);
            if n % 16 == 3 {
                s.put(k, payload(n, 900)).await.unwrap();
                live.insert(k, (n, 900));
            }
            tokio::task::yield_now().await;
        }
        let report = compaction.await.unwrap().unwrap();
        assert!(report.segments_removed > 0, "{report:?}");
        check_content(&s, &live, "after compaction").await;
        drop(Arc::into_inner(s).unwrap());
        let s = SegmentStore::open(dir.path(), small_segments()).unwrap();
        check_content(&s, &live, "reopened").await;
    }
}
