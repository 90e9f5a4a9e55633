//! Micro-benchmarks of the CPU and disk stages of the data path: chunking, hashing, erasure
//! coding and the shard store's group commit.

use std::sync::Arc;

use bytes::Bytes;
use cairn_chunk::{chunk_id, Chunker, ChunkerParams, Codec};
use cairn_shard_store::{CompactOptions, CompactProgress, SegmentStore, SegmentStoreOptions, ShardKey, ShardStore};
use cairn_types::{ChunkId, ErasureScheme};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn chunking_and_hashing(c: &mut Criterion) {
    // As the `cairn` binary does at start-up: chunk buffers recycled, not mmapped afresh.
    cairn_chunk::tune_allocator();
    let input = data(64 << 20);
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.sample_size(10);
    g.bench_function("fastcdc_v1_64MiB", |b| {
        b.iter(|| {
            let mut ch = Chunker::new(ChunkerParams::V1);
            let mut n = ch.push(&input).len();
            n += ch.finish().len();
            n
        })
    });
    // As the data path feeds it: the body in 64 KiB frames, as hyper delivers it.
    g.bench_function("fastcdc_v1_64MiB_in_64KiB_frames", |b| {
        b.iter(|| {
            let mut ch = Chunker::new(ChunkerParams::V1);
            let mut n = 0;
            for frame in input.chunks(64 << 10) {
                n += ch.push(frame).len();
            }
            n + ch.finish().len()
        })
    });
    // The bare crate on the same input and parameters, for comparison with `Chunker`.
    g.bench_function("fastcdc_crate_64MiB", |b| {
        b.iter(|| {
            let p = ChunkerParams::V1;
            fastcdc::v2020::FastCDC::with_level(
                &input,
                p.min_size,
                p.avg_size,
                p.max_size,
                fastcdc::v2020::Normalization::Level1,
            )
            .count()
        })
    });
    g.bench_function("blake3_64MiB", |b| b.iter(|| chunk_id(&input)));
    g.finish();
}

fn erasure(c: &mut Criterion) {
    let chunk = Bytes::from(data(1 << 20));
    let mut g = c.benchmark_group("erasure_1MiB");
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    for (k, m) in [(2u8, 1u8), (4, 2), (8, 4)] {
        let codec = Codec::new(ErasureScheme::new(k, m).unwrap());
        g.bench_with_input(BenchmarkId::new("encode", format!("{k}+{m}")), &chunk, |b, chunk| {
            b.iter(|| codec.encode(chunk))
        });
        let shards = codec.encode(&chunk);
        g.bench_with_input(
            BenchmarkId::new("rebuild_two_missing", format!("{k}+{m}")),
            &shards,
            |b, shards| {
                b.iter(|| {
                    let mut slots: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
                    slots[0] = None;
                    if m > 1 {
                        slots[1] = None;
                    }
                    codec.decode(slots, chunk.len()).unwrap()
                })
            },
        );
    }
    g.finish();
}

fn shard_store(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SegmentStore::open(dir.path(), SegmentStoreOptions::default()).unwrap());
    let mut g = c.benchmark_group("shard_store");
    g.sample_size(10);
    let mut n = 0u64;
    for (size, concurrency) in [(4096usize, 32usize), (1 << 20, 4)] {
        let payload = Bytes::from(data(size));
        g.throughput(Throughput::Bytes((size * concurrency) as u64));
        g.bench_function(format!("put_fsynced_{size}B_x{concurrency}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut tasks = Vec::new();
                    for _ in 0..concurrency {
                        n += 1;
                        let mut id = [0u8; 32];
                        id[..8].copy_from_slice(&n.to_le_bytes());
                        let (s, p) = (store.clone(), payload.clone());
                        tasks.push(tokio::spawn(async move {
                            s.put(
                                ShardKey {
                                    chunk: ChunkId(id),
                                    index: 0,
                                },
                                p,
                            )
                            .await
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap().unwrap();
                    }
                })
            })
        });
    }
    g.finish();
}

/// Compaction of a disk whose segments are half dead: 64 MiB of 1 MiB shards in 8 MiB
/// segments, every other one deleted; throughput is the live half rewritten (unthrottled).
fn compaction(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = c.benchmark_group("shard_store");
    g.sample_size(10);
    let payload = Bytes::from(data(1 << 20));
    g.throughput(Throughput::Bytes(32 << 20));
    g.bench_function("compact_half_dead_64MiB", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let opts = SegmentStoreOptions {
                    segment_bytes: 8 << 20,
                    ..Default::default()
                };
                let store = SegmentStore::open(dir.path(), opts).unwrap();
                let key = |n: u64| {
                    let mut id = [0u8; 32];
                    id[..8].copy_from_slice(&n.to_le_bytes());
                    ShardKey {
                        chunk: ChunkId(id),
                        index: 0,
                    }
                };
                rt.block_on(async {
                    for n in 0..64 {
                        store.put(key(n), payload.clone()).await.unwrap();
                    }
                    for n in (0..64).step_by(2) {
                        store.delete(key(n)).await.unwrap();
                    }
                });
                (dir, store)
            },
            |(dir, store)| {
                let report = rt
                    .block_on(store.compact(&CompactOptions::default(), &CompactProgress::default()))
                    .unwrap();
                assert!(report.bytes_rewritten >= 24 << 20, "{report:?}");
                (dir, store)
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, chunking_and_hashing, erasure, shard_store, compaction);
criterion_main!(benches);
