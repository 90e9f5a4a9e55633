//! `cairn meta-node`: the metadata role on its own. A Raft node (one member for now) over
//! RocksDB in `DIR/meta`, serving the metadata API (`proto/meta.proto`) over gRPC to gateways,
//! which must present the cluster's shared secret (`CAIRN_CLUSTER_SECRET`).

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cairn_meta_client::grpc::MetadataService;
use cairn_meta_node::network::{AdminAnswer, AdminClient};
use cairn_meta_node::{LocalMetaClient, MetaNode};

/// Flags of `cairn meta-node`.
#[derive(clap::Args, Debug)]
pub struct MetaNodeArgs {
    /// Data directory (the Raft log and state in DIR/meta)
    #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-meta")]
    pub data: PathBuf,
    /// gRPC listen address (metadata API, Raft between meta-nodes, administration)
    #[arg(long, env = "CAIRN_META_ADDR", default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    /// HTTP listen address of `/metrics` (Prometheus: the node's Raft state, snapshots)
    #[arg(long, env = "CAIRN_META_METRICS_ADDR", default_value = "127.0.0.1:9101")]
    pub metrics_listen: SocketAddr,
    /// Entries applied between two snapshots (the log keeps the last 1,000 entries, or half
    /// this, behind each: a follower further behind catches up by the snapshot)
    #[arg(long, env = "CAIRN_META_SNAPSHOT_EVERY", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub snapshot_every: u64,
    /// How reads are checked against the group: read-index (linearizable: a heartbeat round to
    /// a quorum per read) or lease (no round while the leader's lease holds; cheaper, but
    /// correct only while the members' clocks run at the same rate: a read may be stale by up
    /// to a lease period around a leader change otherwise)
    #[arg(long, env = "CAIRN_META_READ_MODE", value_enum, default_value = "read-index")]
    pub read_mode: ReadModeArg,
    /// This node's id in a group of several meta-nodes (kept in DIR/node-id). Without it, the
    /// node forms a one-member group by itself
    #[arg(long)]
    pub id: Option<u64>,
}

/// `--read-mode` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ReadModeArg {
    /// Raft read-index.
    ReadIndex,
    /// Leader lease.
    Lease,
}

/// `cairn meta ...`: administration of the metadata group.
#[derive(clap::Subcommand, Debug)]
pub enum MetaCommand {
    /// Forms a new group from meta-nodes started with --id: ID=ADDR,... (run once, on one)
    Init {
        /// A meta-node of the new group
        #[arg(long, value_name = "ADDR")]
        meta: String,
        /// The members: ID=ADDR,...
        members: String,
    },
    /// Adds a meta-node started with --id to the group: ID=ADDR (a learner until it has
    /// caught up, then a voter)
    Add {
        /// A meta-node of the group (the leader is found from it)
        #[arg(long, value_name = "ADDR")]
        meta: String,
        /// The new member: ID=ADDR
        member: String,
    },
    /// Removes member ID from the group (the leader too: another takes over)
    Remove {
        /// A meta-node of the group (the leader is found from it)
        #[arg(long, value_name = "ADDR")]
        meta: String,
        /// The member's id
        id: u64,
    },
    /// The group as a meta-node sees it: leader, term, members, log and applied index
    Status {
        /// The meta-node to ask
        #[arg(long, value_name = "ADDR")]
        meta: String,
    },
}

/// Runs a `cairn meta` command.
pub async fn admin(cmd: MetaCommand) -> anyhow::Result<()> {
    let secret = cluster_secret()?;
    match cmd {
        MetaCommand::Init { meta, members } => {
            let mut map = std::collections::BTreeMap::new();
            for m in members.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let (id, addr) = m
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("member {m:?}: expected ID=ADDR"))?;
                let id: u64 = id.parse().with_context(|| format!("member id {id:?}"))?;
                map.insert(id, addr.to_string());
            }
            let mut c = AdminClient::connect(&meta, &secret).await.map_err(anyhow::Error::msg)?;
            c.initialize(map).await.map_err(anyhow::Error::msg)?;
            println!("group formed");
        }
        MetaCommand::Add { meta, member } => {
            let (id, addr) = member
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("member {member:?}: expected ID=ADDR"))?;
            let id: u64 = id.parse().with_context(|| format!("member id {id:?}"))?;
            let addr = addr.to_string();
            at_leader(&meta, &secret, |mut c| {
                let addr = addr.clone();
                async move { c.add_member(id, addr).await }
            })
            .await?;
            println!("member {id} added");
        }
        MetaCommand::Remove { meta, id } => {
            at_leader(&meta, &secret, |mut c| async move { c.remove_member(id).await }).await?;
            println!("member {id} removed");
        }
        MetaCommand::Status { meta } => {
            let mut c = AdminClient::connect(&meta, &secret).await.map_err(anyhow::Error::msg)?;
            print_status(&c.status().await.map_err(anyhow::Error::msg)?);
        }
    }
    Ok(())
}

/// Prints what a meta-node knows of its group (`cairn meta status`, `cairn admin meta`).
pub fn print_status(s: &cairn_meta_client::GroupStatus) {
    println!(
        "node {} ({}), term {}, leader {}, last log {}, applied {}",
        s.id,
        s.state,
        s.term,
        s.leader.map_or("none".into(), |l| l.to_string()),
        s.last_log_index.map_or("-".into(), |i| i.to_string()),
        s.applied_index.map_or("-".into(), |i| i.to_string())
    );
    println!(
        "snapshot at {}, log purged through {}",
        s.snapshot_index.map_or("-".into(), |i| i.to_string()),
        s.purged_index.map_or("-".into(), |i| i.to_string())
    );
    if !s.admitted {
        println!(
            "not admitted: this node answers no Raft call (its data directory is new or was lost); \
             if the group still lists it, run `cairn meta remove {id}` then `cairn meta add {id}=ADDR`",
            id = s.id
        );
    }
    for (id, addr, voter) in &s.members {
        let lag = match s.lag.iter().find(|(l, _)| l == id) {
            Some((_, Some(n))) => format!(", {n} entries behind"),
            Some((_, None)) => ", nothing replicated yet".to_string(),
            None => String::new(),
        };
        println!("member {id} {addr} {}{lag}", if *voter { "voter" } else { "learner" });
    }
}

/// Runs a membership change at the leader, starting from `meta` and following `NotLeader`.
async fn at_leader<F, Fut>(meta: &str, secret: &str, change: F) -> anyhow::Result<()>
where
    F: Fn(AdminClient) -> Fut,
    Fut: std::future::Future<Output = Result<AdminAnswer, String>>,
{
    let mut addr = meta.to_string();
    for _ in 0..5 {
        let client = AdminClient::connect(&addr, secret).await.map_err(anyhow::Error::msg)?;
        match change(client).await.map_err(anyhow::Error::msg)? {
            AdminAnswer::Done => return Ok(()),
            AdminAnswer::NotLeader(Some(leader)) => addr = leader,
            AdminAnswer::NotLeader(None) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            AdminAnswer::Failed(e) => anyhow::bail!("{e}"),
        }
    }
    anyhow::bail!("no leader answered (last asked: {addr})")
}

/// Keeps a node's id with its data: a restart under another id is refused.
fn check_identity(dir: &std::path::Path, id: u64) -> anyhow::Result<()> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(stored) => {
            let stored: u64 = stored
                .trim()
                .parse()
                .with_context(|| format!("reading {}", path.display()))?;
            if stored != id {
                anyhow::bail!("{} belongs to meta-node {stored}, not {id}", dir.display());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, format!("{id}\n")).with_context(|| format!("writing {}", path.display()))?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The cluster's shared secret, from `CAIRN_CLUSTER_SECRET`: every role of a cluster presents
/// it on every call. Never logged.
pub fn cluster_secret() -> anyhow::Result<String> {
    let secret = std::env::var("CAIRN_CLUSTER_SECRET")
        .context("CAIRN_CLUSTER_SECRET must hold the cluster's shared secret (the same on every node)")?;
    if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!("CAIRN_CLUSTER_SECRET: at least 16 printable ASCII characters, without spaces");
    }
    Ok(secret)
}

pub async fn run(args: MetaNodeArgs) -> anyhow::Result<()> {
    crate::server::init_tracing();
    cairn_gateway::install_metrics();
    let secret = cluster_secret()?;
    tracing::info!(data = %args.data.display(), listen = %args.listen, "starting cairn meta-node");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let node = match args.id {
        Some(id) => {
            check_identity(&args.data, id)?;
            let tuning = cairn_meta_node::RaftTuning {
                snapshot_every_logs: args.snapshot_every,
                logs_kept_after_snapshot: (args.snapshot_every / 2).min(1_000),
                source_ip: Some(args.listen.ip()).filter(|ip| !ip.is_unspecified()),
                read_mode: match args.read_mode {
                    ReadModeArg::ReadIndex => cairn_meta_node::ReadMode::ReadIndex,
                    ReadModeArg::Lease => cairn_meta_node::ReadMode::Lease,
                },
            };
            MetaNode::open_with(&args.data.join("meta"), id, &secret, tuning).await
        }
        None => MetaNode::open_single(&args.data.join("meta")).await,
    }
    .context("opening the metadata")?;
    let listeners = crate::grpc_role::bind(args.listen, args.metrics_listen).await?;
    let published = node.publish_metrics();
    let service = MetadataService::new(Arc::new(LocalMetaClient::new(node.clone())), &secret);
    crate::grpc_role::announce(&[
        ("Metadata API", listeners.addr.to_string()),
        ("Metrics", format!("http://{}/metrics", listeners.metrics_addr)),
        ("Data", args.data.display().to_string()),
    ])?;
    let served = crate::grpc_role::server(1024)
        .add_service(service)
        .add_service(node.raft_service(&secret))
        .add_service(cairn_meta_node::network::AdminService::new(node.clone(), &secret))
        .serve_with_incoming_shutdown(listeners.incoming, crate::server::shutdown_signal())
        .await;
    listeners.metrics.abort();
    published.abort();
    node.shutdown().await;
    served.context("serving the metadata API")?;
    tracing::info!("stopped");
    Ok(())
}
