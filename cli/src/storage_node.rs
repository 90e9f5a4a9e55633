//! `cairn storage-node`: the storage role on its own. The node's disks (`DIR/disks/NN`, each a
//! segment store) served over gRPC (`proto/shard.proto`) to gateways, which must present the
//! cluster's shared secret (`CAIRN_CLUSTER_SECRET`). The node's id is kept in `DIR/node-id`;
//! with `--meta` it reports itself (id, address, zone, pool, disks, capacity) to the metadata at
//! start and every [`HEARTBEAT`] after.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_shard_store::SegmentStoreOptions;

/// Flags of `cairn storage-node`.
#[derive(clap::Args, Debug)]
pub struct StorageNodeArgs {
    /// Data directory (the node's id, and its disks in DIR/disks/NN)
    #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-storage")]
    pub data: PathBuf,
    /// Number of disk directories (fixed once created)
    #[arg(long, env = "CAIRN_DISKS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub disks: u16,
    /// gRPC listen address of the shard API
    #[arg(long, env = "CAIRN_STORAGE_ADDR", default_value = "127.0.0.1:9200")]
    pub listen: SocketAddr,
    /// HTTP listen address of `/metrics` (Prometheus: damaged records found, shard I/O)
    #[arg(long, env = "CAIRN_STORAGE_METRICS_ADDR", default_value = "127.0.0.1:9201")]
    pub metrics_listen: SocketAddr,
    /// Size at which a segment file is sealed and a new one started, in bytes
    #[arg(long, env = "CAIRN_SEGMENT_BYTES", default_value_t = 256 << 20)]
    pub segment_bytes: u64,
    /// Addresses of the meta-nodes (host:port,...): the node reports itself there (id,
    /// address, zone, disks, capacity) at start and every few seconds after
    #[arg(long, env = "CAIRN_META", value_name = "ADDR,...")]
    pub meta: Option<String>,
    /// The node's failure domain (rack, room, site), as reported to the metadata
    #[arg(long, env = "CAIRN_ZONE", default_value = "default")]
    pub zone: String,
    /// The node's storage pool: it holds the shards of the storage classes placed in that pool
    /// only (a-z, 0-9, - and _; classes name their pool in the gateway's configuration)
    #[arg(long, env = "CAIRN_POOL", default_value = cairn_meta::DEFAULT_POOL, value_parser = parse_pool)]
    pub pool: String,
    /// The address gateways reach the shard API at, as reported to the metadata (default: the
    /// listen address; required when listening on an unspecified address such as 0.0.0.0)
    #[arg(long, env = "CAIRN_STORAGE_ADVERTISE")]
    pub advertise: Option<SocketAddr>,
}

/// How often a storage node reports itself to the metadata.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// A pool name as given on the command line.
fn parse_pool(s: &str) -> Result<String, String> {
    if cairn_meta::valid_pool_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?}: a pool is 1 to 64 of a-z, 0-9, - and _"))
    }
}

/// What this node reports of itself: its id, address, zone, pool and disks now.
async fn report(
    node_id: &str,
    addr: SocketAddr,
    (zone, pool): (&str, &str),
    dir: &std::path::Path,
    disks: &[std::sync::Arc<dyn cairn_shard_store::ShardStore>],
) -> cairn_meta::StorageNodeRecord {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut reported = Vec::with_capacity(disks.len());
    for (i, d) in disks.iter().enumerate() {
        let h = d.health().await.unwrap_or_default();
        reported.push(cairn_meta::DiskRecord {
            path: dir.join("disks").join(format!("{i:02}")).display().to_string(),
            capacity_total: h.capacity.map_or(0, |c| c.total),
            capacity_free: h.capacity.map_or(0, |c| c.free),
            writable: h.writable,
            shards: h.stats.shards,
            damaged: h.damaged,
        });
    }
    cairn_meta::StorageNodeRecord {
        id: node_id.to_string(),
        addr: addr.to_string(),
        zone: zone.to_string(),
        disks: reported,
        registered: now,
        heartbeat: now,
        pool: cairn_meta::pool_field(pool),
    }
}

pub async fn run(args: StorageNodeArgs) -> anyhow::Result<()> {
    crate::server::init_tracing();
    cairn_gateway::install_metrics();
    let secret = crate::meta_node::cluster_secret()?;
    tracing::info!(data = %args.data.display(), listen = %args.listen, disks = args.disks, "starting cairn storage-node");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let (lock, node_id, disks) = {
        let dir = args.data.clone();
        let count = usize::from(args.disks);
        let opts = SegmentStoreOptions {
            segment_bytes: args.segment_bytes,
            ..Default::default()
        };
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            // The lock first: no second process may run recovery on segments this one appends to.
            let lock = cairn_storage_node::lock_dir(&dir).with_context(|| format!("locking {}", dir.display()))?;
            let id = cairn_storage_node::node_identity(&dir).context("reading the node's id")?;
            let disks = cairn_storage_node::open_disks(&dir, count, &opts)?;
            Ok((lock, id, disks))
        })
        .await??
    };
    let listeners = crate::grpc_role::bind(args.listen, args.metrics_listen).await?;
    let addr = listeners.addr;
    let advertised = match args.advertise {
        Some(a) => a,
        None if addr.ip().is_unspecified() => {
            anyhow::bail!("listening on {addr}: give --advertise, the address gateways use")
        }
        None => addr,
    };
    // Registration: the first report must be taken before the node says it is ready.
    let heartbeat = match &args.meta {
        None => None,
        Some(meta) => {
            let addrs: Vec<&str> = meta.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
            let client = cairn_meta_client::grpc::GrpcMetaClient::new(&addrs, Duration::from_secs(10), &secret)
                .with_context(|| format!("metadata address {meta}"))?;
            let first = report(&node_id, advertised, (&args.zone, &args.pool), &args.data, &disks).await;
            first
                .check()
                .map_err(|e| anyhow::anyhow!("this node's report is malformed: {e}"))?;
            let mut delay = Duration::from_millis(100);
            loop {
                use cairn_meta_client::{MetaClient, MetaClientError};
                match client
                    .propose(cairn_meta::Command::ReportStorageNode { node: first.clone() })
                    .await
                {
                    Ok(cairn_meta::Response::Failed(e)) => anyhow::bail!("the metadata refused this node: {e}"),
                    Ok(_) => break,
                    Err(e @ MetaClientError::Refused(_)) => {
                        anyhow::bail!("the meta-nodes at {meta} refused this node: {e} (check CAIRN_CLUSTER_SECRET)")
                    }
                    Err(e) => tracing::warn!(meta = %meta, error = %e, "waiting for the metadata to register"),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            tracing::info!(node = %node_id, addr = %advertised, zone = %args.zone, pool = %args.pool, "registered with the metadata");
            let (disks, dir, id) = (disks.clone(), args.data.clone(), node_id.clone());
            let (zone, pool) = (args.zone.clone(), args.pool.clone());
            Some(tokio::spawn(async move {
                use cairn_meta_client::MetaClient;
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    let node = report(&id, advertised, (&zone, &pool), &dir, &disks).await;
                    match client.propose(cairn_meta::Command::ReportStorageNode { node }).await {
                        Ok(cairn_meta::Response::Failed(e)) => tracing::warn!(error = %e, "heartbeat refused"),
                        Ok(_) => metrics::counter!("cairn_storage_heartbeats_total").increment(1),
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed; the next one retries"),
                    }
                }
            }))
        }
    };
    let service = cairn_shard_client::ShardService::new(node_id.clone(), disks, &secret);
    crate::grpc_role::announce(&[
        ("Shard API", addr.to_string()),
        ("Node", node_id.clone()),
        ("Metrics", format!("http://{}/metrics", listeners.metrics_addr)),
        ("Data", args.data.display().to_string()),
    ])?;
    let served = crate::grpc_role::server(256)
        .initial_stream_window_size(cairn_shard_client::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(cairn_shard_client::CONNECTION_WINDOW_BYTES)
        .add_service(service)
        .serve_with_incoming_shutdown(listeners.incoming, crate::server::shutdown_signal())
        .await;
    listeners.metrics.abort();
    if let Some(h) = heartbeat {
        h.abort();
    }
    served.context("serving the shard API")?;
    drop(lock);
    tracing::info!("stopped");
    Ok(())
}

/// How long a gateway waits for each shard call before it fails as unavailable.
const SHARD_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a gateway with `--cluster` waits for a storage node to say who it is.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How a gateway with `--cluster` reaches a storage node of the map: the shard API at its
/// reported address, with the cluster secret.
pub fn connector(secret: &str) -> cairn::Connector {
    let secret = secret.to_string();
    std::sync::Arc::new(move |addr: String| {
        let secret = secret.clone();
        Box::pin(async move {
            // A node that accepts connections but does not answer (stopped) must not hold the
            // request that meets it for long: it is tried again a second later.
            let node = tokio::time::timeout(
                CONNECT_TIMEOUT,
                cairn_shard_client::connect(&addr, &secret, SHARD_CALL_TIMEOUT),
            )
            .await
            .map_err(|_| cairn::Error::Unavailable(format!("storage node at {addr}: no answer")))?
            .map_err(cairn::Error::from)?;
            Ok((node.node_id, node.disks))
        })
    })
}

/// The disks of the storage nodes at `addrs` (comma-separated), node after node, each node's
/// disks in their order: the placement order. Waits for every node to answer. The layout (node
/// ids and disk counts, in order) is kept in `dir/storage-layout` on the first start and must
/// match on every later one: a node listed in another order, replaced or given other disks
/// would move every shard's place. A gateway's own disks are the alternative, not a mix.
pub async fn connect_all(
    dir: &std::path::Path,
    addrs: &str,
    secret: &str,
) -> anyhow::Result<Vec<std::sync::Arc<dyn cairn_shard_store::ShardStore>>> {
    let mut disks = Vec::new();
    let mut layout = String::new();
    for addr in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let mut delay = Duration::from_millis(100);
        let node = loop {
            match cairn_shard_client::connect(addr, secret, SHARD_CALL_TIMEOUT).await {
                Ok(n) => break n,
                Err(e @ cairn_shard_store::ShardStoreError::Refused(_)) => {
                    anyhow::bail!("the storage node at {addr} refused this gateway: {e} (check CAIRN_CLUSTER_SECRET)")
                }
                Err(e) => tracing::warn!(storage = %addr, error = %e, "waiting for the storage node"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        };
        tracing::info!(storage = %addr, node = %node.node_id, disks = node.disks.len(), "storage node found");
        layout.push_str(&format!("{} {}\n", node.node_id, node.disks.len()));
        disks.extend(node.disks);
    }
    if disks.is_empty() {
        anyhow::bail!("--storage names no storage node");
    }
    let path = dir.join("storage-layout");
    match std::fs::read_to_string(&path) {
        Ok(kept) if kept == layout => {}
        Ok(kept) => anyhow::bail!(
            "the storage nodes are not those this gateway placed shards on (kept in {}):\n{kept}now:\n{layout}\nlist them in the same order",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join("storage-layout.tmp");
            std::fs::write(&tmp, &layout)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()?;
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    Ok(disks)
}
