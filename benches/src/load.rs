//! `cairn-load`: an S3 load generator. PUTs unique objects (no two share a chunk, so
//! deduplication cannot flatter the figures) for a while, then GETs them back and verifies
//! every byte, and reports MiB/s, ops/s, latency percentiles and time to first byte. With
//! `--server-pid`, it also reports the CPU time the server used per GiB stored and served (from
//! `/proc/PID/stat`), a figure that compares across machines better than throughput does.
//!
//! ```text
//! cairn-load --endpoint http://127.0.0.1:9000 --access-key K --secret-key S \
//!            --size 1MiB --concurrency 16 --duration 20 --server-pid 1234
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

#[derive(Parser, Debug, Clone)]
#[command(about = "S3 load generator: PUT then GET with verification")]
struct Args {
    /// S3 endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    endpoint: url::Url,
    /// Access key (default: $AWS_ACCESS_KEY_ID).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    /// Secret key (default: $AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY")]
    secret_key: String,
    /// Bucket to use (created if missing).
    #[arg(long, default_value = "cairn-load")]
    bucket: String,
    /// Object size, e.g. 4KiB, 1MiB, 64MiB.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    size: usize,
    /// Concurrent requests.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of each phase (PUT, then GET).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Region to sign for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// PID of the server on this machine: report its CPU seconds per GiB of each phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A shell command run between the PUT and the GET phase (e.g. killing storage nodes, to
    /// measure degraded reads); the GET phase starts once it has exited successfully.
    #[arg(long, value_name = "COMMAND")]
    before_get: Option<String>,
}

/// CPU time (user + system, all threads) process `pid` has used so far, in seconds, from
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("process {pid}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| -> anyhow::Result<f64> { Ok(fields.get(i).context("short /proc stat")?.parse::<u64>()? as f64) };
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second <= 0 {
        bail!("clock ticks per second unknown");
    }
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    Ok((ticks(11)? + ticks(12)?) / per_second as f64)
}

/// CPU seconds of the server and of this process, sampled at the start of a phase.
struct CpuMark {
    server: Option<(u32, f64)>,
    client: f64,
}

impl CpuMark {
    fn now(server_pid: Option<u32>) -> anyhow::Result<Self> {
        Ok(Self {
            server: server_pid.map(|p| cpu_seconds(p).map(|s| (p, s))).transpose()?,
            client: cpu_seconds(std::process::id())?,
        })
    }

    /// "server X CPU-s/GiB, client Y CPU-s/GiB" for `bytes` moved since the mark.
    fn per_gib(&self, bytes: u64) -> anyhow::Result<String> {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        let client = (cpu_seconds(std::process::id())? - self.client) / gib;
        Ok(match self.server {
            Some((pid, at)) => {
                let used = cpu_seconds(pid)? - at;
                format!(
                    "server {used:.1} CPU-s = {:.2} CPU-s/GiB, client {client:.2} CPU-s/GiB",
                    used / gib
                )
            }
            None => format!("client {client:.2} CPU-s/GiB"),
        })
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("GiB") {
        (n, 1 << 30)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, 1 << 20)
    } else if let Some(n) = s.strip_suffix("KiB") {
        (n, 1 << 10)
    } else {
        (s, 1)
    };
    num.trim().parse::<usize>().map(|n| n * mult).map_err(|e| e.to_string())
}

/// Unique content for object `id`: a fixed random pattern XORed with a per-object word, so every
/// chunk of every object differs, at memory speed.
fn content(pattern: &[u8], id: u64) -> Bytes {
    let mask = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).to_le_bytes();
    let mut out = pattern.to_vec();
    for (i, b) in out.iter_mut().enumerate() {
        *b ^= mask[i & 7].wrapping_add((i >> 12) as u8);
    }
    Bytes::from(out)
}

/// Retries of a request answered 503 (SlowDown, or no room in the server's memory budget), as
/// the AWS SDKs do.
const MAX_RETRIES: u32 = 5;

/// Sleeps before retry `attempt` (exponential, from 100 ms) and counts it.
async fn backoff(attempt: &mut u32) {
    tokio::time::sleep(Duration::from_millis(100 << *attempt)).await;
    *attempt += 1;
}

struct Stats {
    ops: u64,
    bytes: u64,
    latency_us: Vec<u64>,
    ttfb_us: Vec<u64>,
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

fn report(name: &str, mut s: Stats, elapsed: Duration, cpu: &CpuMark) -> anyhow::Result<()> {
    let secs = elapsed.as_secs_f64();
    let cpu = cpu.per_gib(s.bytes)?;
    println!(
        "{name}: {:.1} MiB/s, {:.0} ops/s, latency p50 {:.2} ms p99 {:.2} ms, ttfb p50 {:.2} ms p99 {:.2} ms ({} ops in {:.1} s; {cpu})",
        s.bytes as f64 / (1 << 20) as f64 / secs,
        s.ops as f64 / secs,
        pct(&mut s.latency_us, 0.5),
        pct(&mut s.latency_us, 0.99),
        pct(&mut s.ttfb_us, 0.5),
        pct(&mut s.ttfb_us, 0.99),
        s.ops,
        secs
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bucket = Arc::new(Bucket::new(
        args.endpoint.clone(),
        UrlStyle::Path,
        args.bucket.clone(),
        args.region.clone(),
    )?);
    let creds = Arc::new(Credentials::new(args.access_key.clone(), args.secret_key.clone()));
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let url = bucket.create_bucket(&creds).sign(Duration::from_secs(600));
    let r = http.put(url).send().await?;
    if !(r.status().is_success() || r.status().as_u16() == 409) {
        bail!("create bucket: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    let mut pattern = vec![0u8; args.size];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for b in pattern.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let pattern = Arc::new(pattern);
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let phase = Duration::from_secs(args.duration);

    // PUT phase.
    let cpu = CpuMark::now(args.server_pid)?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let (http, bucket, creds, pattern) = (http.clone(), bucket.clone(), creds.clone(), pattern.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats {
                ops: 0,
                bytes: 0,
                latency_us: vec![],
                ttfb_us: vec![],
            };
            let mut written = Vec::new();
            let mut i = 0u64;
            while start.elapsed() < phase {
                let id = (run_id << 32) ^ ((w as u64) << 20) ^ i;
                i += 1;
                let key = format!("load/{run_id}/{w}/{i}");
                let body = content(&pattern, id);
                let hash = blake3::hash(&body);
                let url = bucket.put_object(Some(&creds), &key).sign(Duration::from_secs(3600));
                let t = Instant::now();
                let mut attempt = 0;
                loop {
                    let r = http.put(url.clone()).body(body.clone()).send().await?;
                    let status = r.status();
                    r.bytes().await?;
                    if status.is_success() {
                        break;
                    }
                    if status.as_u16() == 503 && attempt < MAX_RETRIES {
                        backoff(&mut attempt).await;
                        continue;
                    }
                    bail!("PUT {key}: {status}");
                }
                let us = t.elapsed().as_micros() as u64;
                stats.latency_us.push(us);
                stats.ttfb_us.push(us);
                stats.ops += 1;
                stats.bytes += pattern.len() as u64;
                written.push((key, hash));
            }
            Ok::<_, anyhow::Error>((stats, written))
        }));
    }
    let mut put = Stats {
        ops: 0,
        bytes: 0,
        latency_us: vec![],
        ttfb_us: vec![],
    };
    let mut objects = Vec::new();
    for t in tasks {
        let (s, w) = t.await??;
        put.ops += s.ops;
        put.bytes += s.bytes;
        put.latency_us.extend(s.latency_us);
        put.ttfb_us.extend(s.ttfb_us);
        objects.extend(w);
    }
    report("PUT", put, start.elapsed(), &cpu)?;
    if objects.is_empty() {
        bail!("no object was written");
    }

    if let Some(cmd) = &args.before_get {
        let status = std::process::Command::new("sh").arg("-c").arg(cmd).status()?;
        if !status.success() {
            bail!("--before-get {cmd:?}: {status}");
        }
    }

    // GET phase: read the objects back round-robin and verify each.
    let objects = Arc::new(objects);
    let cpu = CpuMark::now(args.server_pid)?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let (http, bucket, creds, objects) = (http.clone(), bucket.clone(), creds.clone(), objects.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats {
                ops: 0,
                bytes: 0,
                latency_us: vec![],
                ttfb_us: vec![],
            };
            let mut i = w;
            while start.elapsed() < phase {
                let (key, want) = &objects[i % objects.len()];
                i += 7;
                let url = bucket.get_object(Some(&creds), key).sign(Duration::from_secs(3600));
                let t = Instant::now();
                let mut attempt = 0;
                let r = loop {
                    let r = http.get(url.clone()).send().await?;
                    if r.status().as_u16() == 503 && attempt < MAX_RETRIES {
                        backoff(&mut attempt).await;
                        continue;
                    }
                    break r;
                };
                stats.ttfb_us.push(t.elapsed().as_micros() as u64);
                if !r.status().is_success() {
                    bail!("GET {key}: {}", r.status());
                }
                let mut h = blake3::Hasher::new();
                let mut n = 0u64;
                let mut body = r.bytes_stream();
                while let Some(b) = body.next().await {
                    let b = b?;
                    n += b.len() as u64;
                    h.update(&b);
                }
                if h.finalize() != *want {
                    bail!("GET {key}: content differs from what was written ({n} bytes)");
                }
                stats.latency_us.push(t.elapsed().as_micros() as u64);
                stats.ops += 1;
                stats.bytes += n;
            }
            Ok::<_, anyhow::Error>(stats)
        }));
    }
    let mut get = Stats {
        ops: 0,
        bytes: 0,
        latency_us: vec![],
        ttfb_us: vec![],
    };
    for t in tasks {
        let s = t.await?.context("GET worker")?;
        get.ops += s.ops;
        get.bytes += s.bytes;
        get.latency_us.extend(s.latency_us);
        get.ttfb_us.extend(s.ttfb_us);
    }
    report("GET", get, start.elapsed(), &cpu)?;
    Ok(())
}
