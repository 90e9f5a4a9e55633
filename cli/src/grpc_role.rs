//! What every gRPC role process (`meta-node`, `storage-node`) does the same way: bind its gRPC
//! and `/metrics` listeners, announce itself on stdout once ready, and build its server with
//! the cluster's connection bounds.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

/// A role's listeners, bound, with `/metrics` already served.
pub(crate) struct Listeners {
    /// The gRPC listener.
    pub incoming: tonic::transport::server::TcpIncoming,
    /// Its address.
    pub addr: SocketAddr,
    /// The `/metrics` address.
    pub metrics_addr: SocketAddr,
    /// The `/metrics` server: abort it when the role stops.
    pub metrics: tokio::task::JoinHandle<()>,
}

/// Binds `listen` (gRPC, TCP_NODELAY) and `metrics_listen`, serving `/metrics` on the latter.
pub(crate) async fn bind(listen: SocketAddr, metrics_listen: SocketAddr) -> anyhow::Result<Listeners> {
    let incoming = tonic::transport::server::TcpIncoming::bind(listen)
        .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?
        .with_nodelay(Some(true));
    let addr = incoming.local_addr()?;
    let metrics_listener = tokio::net::TcpListener::bind(metrics_listen)
        .await
        .with_context(|| format!("binding {metrics_listen}"))?;
    let metrics_addr = metrics_listener.local_addr()?;
    let metrics = tokio::spawn(cairn_gateway::serve_metrics(metrics_listener, std::future::pending()));
    Ok(Listeners {
        incoming,
        addr,
        metrics_addr,
        metrics,
    })
}

/// Prints `lines` (`Label: value`) and then `Ready.` on stdout: what scripts and tests wait for.
pub(crate) fn announce(lines: &[(&str, String)]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for (label, value) in lines {
        writeln!(out, "{label}: {value}")?;
    }
    writeln!(out, "Ready.")?;
    out.flush()
}

/// A gRPC server for cluster traffic. It sets no deadline of its own: callers set theirs
/// (`grpc-timeout`, honoured), and a long transfer (a snapshot, a compaction's progress) may
/// outlast any fixed one. Every caller has proven the cluster secret; what one connection can
/// hold is bounded (`streams` at once), and dead peers are found by keep-alive.
pub(crate) fn server(streams: u32) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .concurrency_limit_per_connection(streams as usize)
        .max_concurrent_streams(Some(streams))
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .tcp_nodelay(true)
}
