//! `cairn-meta-load`: metadata commit throughput of a meta-node group, through the gRPC
//! metadata client a gateway uses. WRITERS concurrent tasks each propose object writes (an
//! empty inline object per key: the cost is the Raft commit, not data) until OBJECTS commits
//! are done; prints commits/s and latency percentiles. Also fills a group with many objects
//! (the snapshot memory measurement uses it for 1,000,000).
//!
//! cairn-meta-load --meta ADDR[,ADDR...] --writers 16 --objects 100000 [--bucket B] [--prefix P]
//! (CAIRN_CLUSTER_SECRET in the environment)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_meta::{BucketRecord, Command, ObjectRecord, Response};
use cairn_meta_client::grpc::GrpcMetaClient;
use cairn_meta_client::MetaClient;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Meta-node addresses, comma-separated
    #[arg(long)]
    meta: String,
    /// Concurrent writers
    #[arg(long, default_value_t = 16)]
    writers: u64,
    /// Commits in all
    #[arg(long, default_value_t = 100_000)]
    objects: u64,
    /// Bucket (created if missing)
    #[arg(long, default_value = "meta-load")]
    bucket: String,
    /// Key prefix (distinct runs into one bucket need distinct prefixes)
    #[arg(long, default_value = "k")]
    prefix: String,
}

fn object(i: u64) -> ObjectRecord {
    ObjectRecord {
        version_id: format!("v{i:016x}"),
        size: 0,
        etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
        last_modified: 1_700_000_000_000,
        attrs: Default::default(),
        checksums: Default::default(),
        body: cairn_meta::Body::Inline(Vec::new()),
        parts: Vec::new(),
        owner: "meta-load".into(),
        storage_class: None,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secret = std::env::var("CAIRN_CLUSTER_SECRET").context("CAIRN_CLUSTER_SECRET")?;
    let addrs: Vec<&str> = args.meta.split(',').collect();
    let client = Arc::new(GrpcMetaClient::new(&addrs, Duration::from_secs(10), &secret)?);
    let created = client
        .propose(Command::CreateBucket {
            bucket: BucketRecord {
                name: args.bucket.clone(),
                owner: "meta-load".into(),
                created: 1,
            },
        })
        .await?;
    if !matches!(created, Response::Done | Response::Failed(_)) {
        anyhow::bail!("creating the bucket: {created:?}");
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.writers {
        let (client, next, bucket, prefix, total) = (
            client.clone(),
            next.clone(),
            args.bucket.clone(),
            args.prefix.clone(),
            args.objects,
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let cmd = Command::PutObject {
                    bucket: bucket.clone(),
                    key: format!("{prefix}{i:010}"),
                    object: Box::new(object(i)),
                    written: Vec::new(),
                    scheme: cairn_types::ErasureScheme { data: 1, parity: 0 },
                    if_none_match: false,
                    if_match: None,
                };
                let t = Instant::now();
                match client.propose(cmd).await? {
                    Response::Failed(e) => anyhow::bail!("commit {i} refused: {e}"),
                    _ => latencies.push(t.elapsed()),
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let took = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "writers {} commits {} in {:.1} s: {:.0} commits/s, p50 {:.2} ms, p99 {:.2} ms",
        args.writers,
        latencies.len(),
        took.as_secs_f64(),
        latencies.len() as f64 / took.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
