//! The gateway role: the S3 HTTP server and the admin HTTP server of a node.
//!
//! Owns: listening sockets (TCP_NODELAY on every accepted connection), HTTP/1.1 and HTTP/2
//! serving, graceful shutdown (stop accepting, drain in-flight requests up to a deadline, then
//! close), the admin API (keys, status), `/metrics` and the health endpoints.
//!
//! Must not depend on: RocksDB, Raft, shard storage. It serves the `cairn` API only.

mod admin;
mod keys;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn::Store;
use cairn_s3::S3Settings;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use keys::{generate_access_key, generate_secret_key};

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
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .ok();
        let admin = Arc::new(admin::Admin::new(store, self.config.s3.root.clone(), metrics));
        let graceful = GracefulShutdown::new();
        let builder = Builder::new(TokioExecutor::new());
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.s3.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), s3.clone()).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "s3 connection ended");
                        }
                    });
                }
                accepted = self.admin.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let a = admin.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let a = a.clone();
                        async move { Ok::<_, std::convert::Infallible>(a.handle(req).await) }
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "admin connection ended");
                        }
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
