//! The gateway role: the S3 HTTP server and the admin HTTP server of a node.
//!
//! Owns: listening sockets (TCP_NODELAY on every accepted connection), HTTP/1.1 and HTTP/2
//! serving, what a client may hold (see [`HttpLimits`]: header and idle timeouts, connection
//! and in-flight caps, a pre-authentication screen), graceful shutdown (stop accepting, drain
//! in-flight requests up to a deadline, then close), the admin API (keys, status), `/metrics`
//! and the health endpoints.
//!
//! Must not depend on: RocksDB, Raft, shard storage. It serves the `cairn` API only.

mod admin;
mod chunked;
mod keys;
mod limits;
mod metrics_http;
mod xml;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn::Store;
use cairn_s3::S3Settings;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use keys::{generate_access_key, generate_secret_key};
pub use limits::{GuardedBody, HttpLimits};
pub use metrics_http::serve_metrics;

static METRICS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();

/// Installs the process-wide Prometheus recorder that `/metrics` renders. Call it first thing
/// at start-up, before the store is opened, so that what recovery counts (damaged records, torn
/// tails) is not lost. Idempotent.
pub fn install_metrics() {
    if METRICS.get().is_none() {
        match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
            Ok(h) => {
                let _ = METRICS.set(h);
            }
            Err(e) => tracing::warn!(error = %e, "metrics recorder not installed"),
        }
    }
}

/// Most open admin API connections.
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Where and how the gateway serves.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// S3 listen address.
    pub s3_addr: SocketAddr,
    /// Admin listen address.
    pub admin_addr: SocketAddr,
    /// S3 front-end settings.
    pub s3: S3Settings,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// What one client can hold of the servers.
    pub limits: HttpLimits,
}

/// Accepts one connection once a connection slot is free. On an accept error (EMFILE, ENFILE,
/// ECONNABORTED...) it logs and backs off instead of spinning.
async fn accept(listener: &TcpListener, slots: &Arc<Semaphore>) -> (TcpStream, OwnedSemaphorePermit) {
    let permit = slots.clone().acquire_owned().await.expect("semaphore never closed");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return (stream, permit);
            }
            Err(e) => {
                metrics::counter!("cairn_http_accept_errors_total").increment(1);
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Sockets bound and ready to serve.
pub struct Bound {
    s3: TcpListener,
    admin: TcpListener,
    config: GatewayConfig,
}

impl Bound {
    /// Binds both listeners (port 0 picks a free port).
    pub async fn bind(config: GatewayConfig) -> std::io::Result<Self> {
        let s3 = TcpListener::bind(config.s3_addr).await?;
        let admin = TcpListener::bind(config.admin_addr).await?;
        Ok(Self { s3, admin, config })
    }

    /// The S3 address actually bound.
    pub fn s3_addr(&self) -> std::io::Result<SocketAddr> {
        self.s3.local_addr()
    }

    /// The admin address actually bound.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests for at most the
    /// configured drain timeout.
    pub async fn serve(self, store: Store, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let s3 = cairn_s3::build_service(store.clone(), self.config.s3.clone()).map_err(anyhow::Error::msg)?;
        install_metrics();
        let metrics = METRICS.get().cloned();
        let admin = Arc::new(admin::Admin::new(store, self.config.s3.root.clone(), metrics));
        let limits = self.config.limits.clone();
        let s3 = limits::S3Front::new(s3, &limits);
        let s3_slots = Arc::new(Semaphore::new(limits.max_connections));
        let admin_slots = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
        let graceful = GracefulShutdown::new();
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits::MAX_HEAD_BUFFER);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes as u32)
            .max_concurrent_streams(128);
        let idle = limits.idle_timeout;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                (stream, permit) = accept(&self.s3, &s3_slots) => {
                    let io = TokioIo::new(limits::IdleIo::new(stream, idle));
                    let conn = builder.serve_connection_with_upgrades(io, s3.clone()).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "s3 connection ended");
                        }
                        drop(permit);
                    });
                }
                (stream, permit) = accept(&self.admin, &admin_slots) => {
                    let a = admin.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let a = a.clone();
                        async move { Ok::<_, std::convert::Infallible>(a.handle(req).await) }
                    });
                    let io = TokioIo::new(limits::IdleIo::new(stream, idle));
                    let conn = builder.serve_connection(io, svc).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "admin connection ended");
                        }
                        drop(permit);
                    });
                }
                () = &mut shutdown => break,
            }
        }
        tracing::info!("shutting down: draining in-flight requests");
        drop(self.s3);
        drop(self.admin);
        if tokio::time::timeout(self.config.drain_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("drain timed out; closing remaining connections");
        }
        Ok(())
    }
}
