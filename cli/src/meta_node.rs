//! `cairn meta-node`: the metadata role on its own. A Raft node (one member for now) over
//! RocksDB in `DIR/meta`, serving the metadata API (`proto/meta.proto`) over gRPC to gateways,
//! which must present the cluster's shared secret (`CAIRN_CLUSTER_SECRET`).

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cairn_meta_client::grpc::MetadataService;
use cairn_meta_node::{LocalMetaClient, MetaNode};

/// Flags of `cairn meta-node`.
#[derive(clap::Args, Debug)]
pub struct MetaNodeArgs {
    /// Data directory (the Raft log and state in DIR/meta)
    #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-meta")]
    pub data: PathBuf,
    /// gRPC listen address of the metadata API
    #[arg(long, env = "CAIRN_META_ADDR", default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
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
    let secret = cluster_secret()?;
    tracing::info!(data = %args.data.display(), listen = %args.listen, "starting cairn meta-node");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let node = MetaNode::open_single(&args.data.join("meta"))
        .await
        .context("opening the metadata")?;
    let incoming = tonic::transport::server::TcpIncoming::bind(args.listen)
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.listen))?
        .with_nodelay(Some(true));
    let addr = incoming.local_addr()?;
    let service = MetadataService::new(Arc::new(LocalMetaClient::new(node.clone())), &secret);
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "Metadata API: {addr}")?;
        writeln!(out, "Data: {}", args.data.display())?;
        writeln!(out, "Ready.")?;
        out.flush()?;
    }
    let served = tonic::transport::Server::builder()
        .timeout(std::time::Duration::from_secs(30))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, crate::server::shutdown_signal())
        .await;
    node.shutdown().await;
    served.context("serving the metadata API")?;
    tracing::info!("stopped");
    Ok(())
}
