//! Measures how long a shard store takes to open: `cairn-shard-open --dir D --fill-gib N`
//! first fills D with N GiB of 1 MiB shards (unless it already holds segments), then opens it
//! and prints the time. `--scan` deletes the segment index files first, so the open reads every
//! byte of every segment (what every open did before index files existed). Drop the page cache
//! between runs (`sync; echo 3 > /proc/sys/vm/drop_caches`) for cold figures.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use cairn_shard_store::{SegmentStore, SegmentStoreOptions, ShardKey, ShardStore};
use cairn_types::ChunkId;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Store directory.
    #[arg(long)]
    dir: PathBuf,
    /// GiB of 1 MiB shards to write first if the directory holds no segment.
    #[arg(long, default_value_t = 10)]
    fill_gib: u64,
    /// Remove the index files before opening (full scan).
    #[arg(long)]
    scan: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let has_segments = std::fs::read_dir(&args.dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "seg"))
        })
        .unwrap_or(false);
    if !has_segments {
        let store = std::sync::Arc::new(SegmentStore::open(&args.dir, SegmentStoreOptions::default())?);
        let started = Instant::now();
        let shards = args.fill_gib * 1024;
        rt.block_on(async {
            let mut tasks = Vec::new();
            for n in 0..shards {
                let s = store.clone();
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&n.to_le_bytes());
                let data = Bytes::from(vec![(n % 251) as u8; 1 << 20]);
                tasks.push(tokio::spawn(async move {
                    s.put(
                        ShardKey {
                            chunk: ChunkId(id),
                            index: 0,
                        },
                        data,
                    )
                    .await
                }));
                if tasks.len() >= 32 {
                    for t in tasks.drain(..) {
                        t.await??;
                    }
                }
            }
            for t in tasks {
                t.await??;
            }
            anyhow::Ok(())
        })?;
        println!(
            "filled {} GiB in {:.1} s",
            args.fill_gib,
            started.elapsed().as_secs_f64()
        );
    }
    if args.scan {
        for e in std::fs::read_dir(&args.dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "idx") {
                std::fs::remove_file(p)?;
            }
        }
    }
    let started = Instant::now();
    let store = SegmentStore::open(&args.dir, SegmentStoreOptions::default())?;
    let elapsed = started.elapsed();
    let stats = store.stats();
    println!(
        "opened {} shards, {:.2} GiB on disk, in {:.3} s ({})",
        stats.shards,
        stats.disk_bytes as f64 / (1u64 << 30) as f64,
        elapsed.as_secs_f64(),
        if args.scan { "full scan" } else { "index files" }
    );
    Ok(())
}
