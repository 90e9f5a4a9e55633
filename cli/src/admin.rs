//! `cairn admin ...`: a running server's background work, through its admin API.

use anyhow::bail;
use clap::Subcommand;
use serde::Deserialize;

use crate::credentials::Root as RootKey;
use crate::keys::{connect, AdminArgs};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// The server's state: readiness, erasure scheme, space, disks, and warnings (such as a
    /// cluster map too small for the scheme's spread).
    Status,
    /// Background workers: state, passes, what the last pass did, errors.
    Workers,
    /// The metadata group's Raft state as the server's meta-node sees it: term, leader,
    /// log, applied and snapshot index, members and their lag.
    Meta,
    /// Storage nodes as they last reported themselves (id, address, zone, disks, capacity,
    /// the age of their last heartbeat) and the cluster map's epoch; or drain one.
    Storage {
        #[command(subcommand)]
        command: Option<StorageCommand>,
    },
    /// Space reclamation: unreferenced data, what was reclaimed, runs.
    Gc {
        #[command(subcommand)]
        command: GcCommand,
    },
    /// Repair: chunks with shards missing or away from home, and the worker rebuilding them.
    Repair {
        #[command(subcommand)]
        command: RepairCommand,
    },
    /// Scrub: reading every shard to find damage nobody read.
    Scrub {
        #[command(subcommand)]
        command: ScrubCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScrubCommand {
    /// Starts a scrub run and waits for it with a progress bar; then prints what it found.
    Start {
        /// Return once the run is requested.
        #[arg(long)]
        no_wait: bool,
    },
    /// Runs done, the one in progress, and what the last one found.
    Status,
}

#[derive(Deserialize)]
struct ScrubFindings {
    chunks: u64,
    shards_ok: u64,
    shards_bad: u64,
    shards_unreachable: u64,
    chunks_unreadable: u64,
}

#[derive(Deserialize)]
struct ScrubStatus {
    runs_done: u64,
    running: bool,
    findings: ScrubFindings,
    worker: Option<Worker>,
}

fn print_scrub(s: &ScrubStatus) {
    let f = &s.findings;
    println!(
        "scrub runs done: {}{}",
        s.runs_done,
        if s.running { " (one running)" } else { "" }
    );
    println!(
        "{}: {} chunks, {} shards right, {} damaged (queued for repair), {} unreachable, {} chunks unreadable",
        if s.running { "so far" } else { "last run" },
        f.chunks,
        f.shards_ok,
        f.shards_bad,
        f.shards_unreachable,
        f.chunks_unreadable
    );
    if let Some(w) = &s.worker {
        println!(
            "worker {} ({}): {} read; last run: {}",
            w.name,
            w.state,
            human_bytes(w.total_bytes),
            last_pass(w)
        );
    }
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Drains a storage node: its disks take no new shards (a new epoch of the cluster map);
    /// what they hold stays readable.
    Drain {
        /// The node's id.
        id: String,
    },
    /// Ends a node's draining: its disks take new shards again.
    Undrain {
        /// The node's id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Chunks queued for repair and the repair worker's last pass; with `--watch`, a progress
    /// bar until the queue is empty.
    Status {
        /// Follow the repair worker until no chunk is queued.
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Deserialize)]
struct RepairStatus {
    queued: u64,
    worker: Option<Worker>,
}

fn print_repair(s: &RepairStatus) {
    println!("chunks queued for repair: {}", s.queued);
    match &s.worker {
        Some(w) => println!(
            "worker {} ({}, every {} s): {} passes, {} chunks repaired, {} written; last pass: {}",
            w.name,
            w.state,
            w.every_secs,
            w.passes,
            w.total_items,
            human_bytes(w.total_bytes),
            last_pass(w)
        ),
        None => println!("no repair worker runs on this server"),
    }
}

#[derive(Subcommand, Debug)]
pub enum GcCommand {
    /// Chunks pending collection, bytes reclaimed, next run, errors.
    Status,
    /// Runs every reclamation worker now (upload expiry, collector, orphan sweep, compaction)
    /// and waits for the run with a progress display.
    Run {
        /// Return once the run is requested.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Deserialize)]
struct Worker {
    name: String,
    state: String,
    every_secs: u64,
    passes: u64,
    last_pass_ms: Option<i64>,
    last_pass_items: u64,
    total_items: u64,
    #[serde(default)]
    total_bytes: u64,
    #[serde(default)]
    progress_done: u64,
    #[serde(default)]
    progress_total: u64,
    #[serde(default)]
    rate_bytes_per_sec: f64,
    last_error: Option<String>,
}

#[derive(Deserialize)]
struct GcStatus {
    runs_done: u64,
    running: bool,
    grace_secs: u64,
    every_secs: u64,
    pending_chunks: u64,
    passes_done: u64,
    workers: Vec<Worker>,
}

async fn get<T: serde::de::DeserializeOwned>(root: &RootKey, url: String) -> anyhow::Result<T> {
    call(root, reqwest::Client::new().get(url)).await
}

/// Sends an admin API request with the root credentials and decodes its JSON answer.
async fn call<T: serde::de::DeserializeOwned>(root: &RootKey, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
    let r = req.basic_auth(&root.access_key, Some(&root.secret_key)).send().await?;
    let status = r.status();
    if !status.is_success() {
        bail!("admin API answered {status}: {}", r.text().await.unwrap_or_default());
    }
    Ok(r.json().await?)
}

/// Bytes in the largest binary unit that keeps the number at least 1.
fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn print_gc(s: &GcStatus) {
    println!(
        "grace period: {} s, runs every {} s; runs done: {}{}; collection passes: {}",
        s.grace_secs,
        s.every_secs,
        s.runs_done,
        if s.running { " (one running)" } else { "" },
        s.passes_done
    );
    println!(
        "chunks unreferenced, waiting for the grace period: {}",
        s.pending_chunks
    );
    let total: u64 = s.workers.iter().map(|w| w.total_bytes).sum();
    println!("bytes reclaimed since start: {}", human_bytes(total));
    println!(
        "{:<14} {:<8} {:>7} {:>10} {:>12}  LAST PASS / ERROR",
        "WORKER", "STATE", "PASSES", "ITEMS", "RECLAIMED"
    );
    for w in &s.workers {
        let last = last_pass(w);
        println!(
            "{:<14} {:<8} {:>7} {:>10} {:>12}  {last}",
            w.name,
            w.state,
            w.passes,
            w.total_items,
            human_bytes(w.total_bytes)
        );
    }
}

/// One line of progress for a run: the worker running and how far it is.
fn progress_line(s: &GcStatus) -> String {
    match s.workers.iter().find(|w| w.state == "running") {
        Some(w) => worker_progress(w),
        None => "waiting for the run to start".into(),
    }
}

/// A worker's progress as a bar.
fn worker_progress(w: &Worker) -> String {
    match w {
        w if w.progress_total > 0 => {
            let width = 30;
            let filled = (w.progress_done.min(w.progress_total) * width / w.progress_total) as usize;
            format!(
                "{:<14} [{}{}] {}/{} {}/s",
                w.name,
                "#".repeat(filled),
                "-".repeat(width as usize - filled),
                w.progress_done,
                w.progress_total,
                human_bytes(w.rate_bytes_per_sec as u64)
            )
        }
        w => format!("{:<14} {}", w.name, w.state),
    }
}

pub async fn run(cmd: AdminCommand, admin: AdminArgs) -> anyhow::Result<()> {
    let (root, base) = connect(&admin)?;
    match cmd {
        AdminCommand::Gc {
            command: GcCommand::Status,
        } => print_gc(&get(&root, format!("{base}/admin/v1/gc")).await?),
        AdminCommand::Gc {
            command: GcCommand::Run { no_wait },
        } => {
            let answer: serde_json::Value =
                call(&root, reqwest::Client::new().post(format!("{base}/admin/v1/gc/run"))).await?;
            let run = answer["run"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("admin API gave no run number"))?;
            if no_wait {
                println!("run {run} requested");
                return Ok(());
            }
            let interactive = std::io::IsTerminal::is_terminal(&std::io::stdout());
            let mut last = String::new();
            let s = loop {
                let s: GcStatus = get(&root, format!("{base}/admin/v1/gc")).await?;
                if s.runs_done >= run {
                    break s;
                }
                let line = progress_line(&s);
                if interactive {
                    print!("\r{line:<80}");
                    std::io::Write::flush(&mut std::io::stdout())?;
                } else if line != last {
                    println!("{line}");
                }
                last = line;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            if interactive {
                println!("\r{:<80}", format!("run {run} done"));
            } else {
                println!("run {run} done");
            }
            print_gc(&s);
        }
        AdminCommand::Repair {
            command: RepairCommand::Status { watch },
        } => {
            let interactive = std::io::IsTerminal::is_terminal(&std::io::stdout());
            let mut last = String::new();
            let s = loop {
                let s: RepairStatus = get(&root, format!("{base}/admin/v1/repair")).await?;
                if !watch || s.queued == 0 {
                    break s;
                }
                let line = match &s.worker {
                    Some(w) => format!("{} queued  {}", s.queued, worker_progress(w)),
                    None => format!("{} queued, no repair worker", s.queued),
                };
                if interactive {
                    print!("\r{line:<90}");
                    std::io::Write::flush(&mut std::io::stdout())?;
                } else if line != last {
                    println!("{line}");
                }
                last = line;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            };
            if watch && interactive {
                println!();
            }
            print_repair(&s);
        }
        AdminCommand::Scrub {
            command: ScrubCommand::Status,
        } => print_scrub(&get(&root, format!("{base}/admin/v1/scrub")).await?),
        AdminCommand::Scrub {
            command: ScrubCommand::Start { no_wait },
        } => {
            let answer: serde_json::Value =
                call(&root, reqwest::Client::new().post(format!("{base}/admin/v1/scrub"))).await?;
            let run = answer["run"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("admin API gave no run number"))?;
            if no_wait {
                println!("scrub run {run} requested");
                return Ok(());
            }
            let interactive = std::io::IsTerminal::is_terminal(&std::io::stdout());
            let mut last = String::new();
            let s = loop {
                let s: ScrubStatus = get(&root, format!("{base}/admin/v1/scrub")).await?;
                if s.runs_done >= run {
                    break s;
                }
                let line = match &s.worker {
                    Some(w) if s.running => worker_progress(w),
                    _ => "waiting for the run to start".into(),
                };
                if interactive {
                    print!("\r{line:<80}");
                    std::io::Write::flush(&mut std::io::stdout())?;
                } else if line != last {
                    println!("{line}");
                }
                last = line;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            if interactive {
                println!("\r{:<80}", format!("scrub run {run} done"));
            } else {
                println!("scrub run {run} done");
            }
            print_scrub(&s);
        }
        AdminCommand::Status => {
            let s: serde_json::Value = get(&root, format!("{base}/admin/v1/status")).await?;
            println!(
                "ready: {}; erasure scheme of new chunks: {}",
                s["ready"],
                s["erasure"].as_str().unwrap_or("?")
            );
            if let Some(classes) = s["storage_classes"].as_object() {
                let list: Vec<String> = classes
                    .iter()
                    .map(|(name, scheme)| {
                        let pool = s["storage_class_pools"][name]
                            .as_str()
                            .unwrap_or(cairn_meta::DEFAULT_POOL);
                        let scheme = scheme.as_str().unwrap_or("?");
                        if pool == cairn_meta::DEFAULT_POOL {
                            format!("{name} {scheme}")
                        } else {
                            format!("{name} {scheme} (pool {pool})")
                        }
                    })
                    .collect();
                println!("storage classes: {}", list.join(", "));
            }
            if let Some(st) = s["stats"].as_object() {
                let n = |f: &str| st.get(f).and_then(|v| v.as_u64()).unwrap_or(0);
                println!(
                    "shards: {}; live: {}; on disk: {}",
                    n("shards"),
                    human_bytes(n("live_bytes")),
                    human_bytes(n("disk_bytes"))
                );
            }
            let disks = s["disks"].as_array().map(Vec::as_slice).unwrap_or_default();
            let unreachable = disks.iter().filter(|d| d.get("error").is_some()).count();
            println!("disks: {} ({unreachable} unreachable)", disks.len());
            for w in s["warnings"].as_array().map(Vec::as_slice).unwrap_or_default() {
                println!("WARNING: {}", w.as_str().unwrap_or("?"));
            }
        }
        AdminCommand::Meta => {
            let s: cairn_meta_client::GroupStatus = get(&root, format!("{base}/admin/v1/meta")).await?;
            crate::meta_node::print_status(&s);
        }
        AdminCommand::Storage { command: None } => {
            let nodes: Vec<serde_json::Value> = get(&root, format!("{base}/admin/v1/storage")).await?;
            let map: serde_json::Value = get(&root, format!("{base}/admin/v1/cluster-map")).await?;
            print_storage(&nodes, &map);
        }
        AdminCommand::Storage {
            command: Some(StorageCommand::Drain { id } | StorageCommand::Undrain { id }),
        } if id.is_empty() || id.contains('/') => bail!("not a storage node id: {id:?}"),
        AdminCommand::Storage { command: Some(c) } => {
            let (id, action) = match &c {
                StorageCommand::Drain { id } => (id, "drain"),
                StorageCommand::Undrain { id } => (id, "undrain"),
            };
            let r = reqwest::Client::new()
                .post(format!("{base}/admin/v1/storage/{id}/{action}"))
                .basic_auth(&root.access_key, Some(&root.secret_key))
                .send()
                .await?;
            if !r.status().is_success() {
                bail!(
                    "admin API answered {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
            let map: serde_json::Value = get(&root, format!("{base}/admin/v1/cluster-map")).await?;
            println!("storage node {id}: {action}ed; cluster map epoch {}", map["epoch"]);
        }
        AdminCommand::Workers => {
            let workers: Vec<Worker> = get(&root, format!("{base}/admin/v1/workers")).await?;
            println!(
                "{:<16} {:<8} {:>7} {:>7} {:>10} {:>10}  LAST PASS / ERROR",
                "WORKER", "STATE", "EVERY", "PASSES", "LAST", "TOTAL"
            );
            for w in workers {
                let last = last_pass(&w);
                println!(
                    "{:<16} {:<8} {:>6}s {:>7} {:>10} {:>10}  {last}",
                    w.name, w.state, w.every_secs, w.passes, w.last_pass_items, w.total_items
                );
            }
        }
    }
    Ok(())
}

/// When a worker's last pass ended, or its error.
fn last_pass(w: &Worker) -> String {
    match (w.last_pass_ms, &w.last_error) {
        (_, Some(e)) => format!("error: {e}"),
        (Some(ms), None) => format!("{} s ago", (now_ms() - ms).max(0) / 1000),
        (None, None) => "never".into(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn print_storage(nodes: &[serde_json::Value], map: &serde_json::Value) {
    let in_map = map["nodes"].as_array().map(Vec::as_slice).unwrap_or_default();
    let draining = |id: &str| in_map.iter().any(|n| n["id"] == id && n["draining"] == true);
    match map["epoch"].as_u64() {
        Some(e) => println!(
            "cluster map epoch {e}: {} nodes, {} draining",
            in_map.len(),
            in_map.iter().filter(|n| n["draining"] == true).count()
        ),
        None => println!("no cluster map yet (no storage node has registered)"),
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    println!(
        "{:<36} {:<21} {:<10} {:<10} {:>5} {:>10} {:>10} {:>8} {:>9}",
        "NODE", "ADDRESS", "ZONE", "POOL", "DISKS", "FREE", "TOTAL", "SHARDS", "HEARTBEAT"
    );
    for n in nodes {
        let disks = n["disks"].as_array().map(Vec::as_slice).unwrap_or_default();
        let sum = |field: &str| disks.iter().filter_map(|d| d[field].as_u64()).sum::<u64>();
        let age = now - n["heartbeat"].as_i64().unwrap_or(0);
        println!(
            "{:<36} {:<21} {:<10} {:<10} {:>5} {:>10} {:>10} {:>8} {:>8}s{}",
            n["id"].as_str().unwrap_or("?"),
            n["addr"].as_str().unwrap_or("?"),
            n["zone"].as_str().unwrap_or("?"),
            n["pool"].as_str().unwrap_or(cairn_meta::DEFAULT_POOL),
            disks.len(),
            human_bytes(sum("capacity_free")),
            human_bytes(sum("capacity_total")),
            sum("shards"),
            age.max(0) / 1000,
            if draining(n["id"].as_str().unwrap_or("")) {
                "  draining"
            } else {
                ""
            }
        );
    }
}
