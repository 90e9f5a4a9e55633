//! `cairn server`: every role in one process.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::time::Duration;

use anyhow::Context;
use cairn::{CompactOptions, ReclaimConfig, StoreConfig};
use cairn_gateway::{Bound, GatewayConfig, HttpLimits};
use cairn_s3::{RootCredentials, S3Settings};

use crate::config::{ServerArgs, ServerConfig};
use crate::credentials;

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Where the S3 server finds its metadata.
pub enum Metadata {
    /// A metadata node in this process, on the data directory (`cairn server`).
    InProcess,
    /// Meta-nodes at these addresses, over gRPC (`cairn gateway --meta ADDR,...`), and where
    /// the shards are.
    Remote {
        /// Meta-node addresses, comma-separated.
        meta: String,
        /// Where the shards are.
        storage: Shards,
    },
}

/// Where a gateway keeps shards.
#[derive(Debug)]
pub enum Shards {
    /// `--disks` disks of its own.
    Own,
    /// The storage nodes at these addresses (comma-separated), in a fixed order (`--storage`).
    Listed(String),
    /// Every storage node of the cluster map (`--cluster`), with this erasure scheme (`K+M`).
    Cluster(String),
}

/// An erasure scheme written `K+M`.
fn parse_scheme(s: &str) -> anyhow::Result<cairn::ErasureScheme> {
    if !s.contains('+') {
        anyhow::bail!("erasure scheme {s:?}: expected DATA+PARITY, such as 4+2");
    }
    crate::config::parse_redundancy(s)
}

/// How long a gateway waits for each metadata call before it fails as unavailable (503).
const META_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs to stderr, filtered by `RUST_LOG` (default: info, openraft warnings only).
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

pub async fn run(args: ServerArgs, metadata: Metadata) -> anyhow::Result<()> {
    init_tracing();
    cairn_gateway::install_metrics();
    let cfg = ServerConfig::load(&args)?;
    match &metadata {
        Metadata::InProcess => tracing::info!(config = ?cfg, "starting cairn server"),
        Metadata::Remote { meta, storage } => {
            tracing::info!(config = ?cfg, meta = %meta, storage = ?storage, "starting cairn gateway")
        }
    }
    let storage_classes = cfg.storage_classes()?;
    let pooled = matches!(
        &metadata,
        Metadata::Remote {
            storage: Shards::Cluster(_),
            ..
        }
    );
    if let Some((name, class)) = storage_classes.iter().find(|(_, c)| c.pool.is_some()) {
        if !pooled {
            anyhow::bail!(
                "storage_classes.{name}: pool {} needs storage nodes placed by the cluster map (gateway --cluster); these disks are a fixed list without pools",
                class.pool_name()
            );
        }
    }
    // Owner-only: the directory holds the root credentials and every object's bytes.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.data)
        .with_context(|| format!("creating {}", cfg.data.display()))?;
    // The store first: its RocksDB lock makes this the only process on the directory before
    // the credential file is read or written.
    let store_config = StoreConfig {
        memory_budget: cfg.memory_budget_bytes,
        // Below the idle timeout: a waiting upload reads nothing from its socket, and would be
        // cut instead of getting a 503 it can retry.
        memory_budget_wait: Duration::from_secs(
            cfg.memory_budget_wait_secs
                .min(cfg.idle_timeout_secs.saturating_sub(1))
                .max(1),
        ),
        segment_bytes: cfg.segment_bytes,
        storage_classes,
        ..StoreConfig::default()
    };
    let (store, _dir_lock) = match &metadata {
        Metadata::InProcess => (
            cairn_local::open(&cfg.data, cfg.disks, store_config)
                .await
                .context("opening the store")?,
            None,
        ),
        Metadata::Remote { meta: addr, storage } => {
            let secret = crate::meta_node::cluster_secret()?;
            let addrs: Vec<&str> = addr.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
            let meta = cairn_meta_client::grpc::GrpcMetaClient::new(&addrs, META_CALL_TIMEOUT, &secret)
                .with_context(|| format!("metadata address {addr}"))?;
            wait_for_metadata(&meta, addr).await?;
            // Readiness (`/health/ready`) follows the meta-node: calls that fail clear it, and
            // this probe sets it again once the node answers.
            let probe = meta.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = probe.check_ready().await;
                }
            });
            let meta = std::sync::Arc::new(meta);
            let (store, lock) = match storage {
                Shards::Own => cairn_local::open_with_meta(&cfg.data, cfg.disks, store_config, meta)
                    .await
                    .context("opening the disks")?,
                Shards::Listed(nodes) => {
                    let disks = crate::storage_node::connect_all(&cfg.data, nodes, &secret).await?;
                    cairn_local::open_remote(&cfg.data, disks, store_config, meta).context("opening the store")?
                }
                Shards::Cluster(erasure) => {
                    let scheme = parse_scheme(erasure)?;
                    let layout = cairn::RingLayout::new(meta.clone(), crate::storage_node::connector(&secret));
                    cairn_local::open_cluster(&cfg.data, std::sync::Arc::new(layout), scheme, store_config, meta)
                        .context("opening the store")?
                }
            };
            (store, Some(lock))
        }
    };
    let (root, generated) = match credentials::load_or_create(&cfg.data) {
        Ok(r) => r,
        Err(e) => {
            store.shutdown().await;
            return Err(e);
        }
    };
    let scheme = store.scheme();
    let gateway = GatewayConfig {
        s3_addr: cfg.s3_addr,
        admin_addr: cfg.admin_addr,
        s3: S3Settings {
            region: cfg.region.clone(),
            domain: cfg.domain.clone(),
            root: RootCredentials {
                access_key: root.access_key.clone(),
                secret_key: root.secret_key.clone(),
            },
            post_object_max_bytes: cfg.post_object_max_bytes,
        },
        drain_timeout: Duration::from_secs(cfg.drain_timeout_secs),
        limits: HttpLimits {
            header_read_timeout: Duration::from_secs(cfg.header_timeout_secs),
            idle_timeout: Duration::from_secs(cfg.idle_timeout_secs),
            max_connections: cfg.max_connections,
            max_inflight: cfg.max_inflight_requests,
            max_header_bytes: cfg.max_header_bytes,
            max_form_uploads: cfg.max_form_uploads,
        },
    };
    let bound = Bound::bind(gateway).await.context("binding listeners")?;
    let s3_addr = bound.s3_addr()?;
    let admin_addr = bound.admin_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "S3 API: http://{s3_addr}")?;
        writeln!(out, "Admin API: http://{admin_addr}")?;
        writeln!(
            out,
            "Data: {} (disks: {}, erasure {}+{})",
            cfg.data.display(),
            cfg.disks,
            scheme.data,
            scheme.parity
        )?;
        if generated {
            writeln!(out, "Root access key: {}", root.access_key)?;
            writeln!(out, "Root secret key: {}", root.secret_key)?;
            writeln!(
                out,
                "(shown once; stored in {} with mode 0600)",
                credentials::path(&cfg.data).display()
            )?;
        } else {
            writeln!(out, "Root credentials: {}", credentials::path(&cfg.data).display())?;
        }
        writeln!(out, "Ready.")?;
        out.flush()?;
    }
    let grace = cfg.gc_grace.0;
    let upload_expiry = (cfg.multipart_expiry_secs > 0).then(|| Duration::from_secs(cfg.multipart_expiry_secs));
    // Often enough for both: a quarter of the upload age, half the grace period.
    let every = upload_expiry.map_or(ReclaimConfig::period_for(grace), |age| {
        ReclaimConfig::period_for(grace).min((age / 4).max(Duration::from_secs(1)))
    });
    let reclaimer = store.spawn_reclaimer(ReclaimConfig {
        grace,
        every,
        upload_expiry,
        compaction: CompactOptions {
            min_dead_ratio: cfg.compaction_dead_ratio,
            max_bytes_per_sec: cfg.compaction_max_bytes_per_sec,
        },
    });
    let limit = |n: u64| (n > 0).then_some(n);
    let repairer = store.spawn_repairer(cairn::RepairConfig {
        max_bytes_per_sec: limit(cfg.repair_max_bytes_per_sec),
        concurrency: cfg.repair_concurrency,
        ..cairn::RepairConfig::default()
    });
    let scrubber = store.spawn_scrubber(cairn::ScrubConfig {
        every: (cfg.scrub_every_secs > 0).then(|| Duration::from_secs(cfg.scrub_every_secs)),
        max_bytes_per_sec: limit(cfg.scrub_max_bytes_per_sec),
    });
    let served = bound.serve(store.clone(), shutdown_signal()).await;
    reclaimer.abort();
    repairer.abort();
    scrubber.abort();
    served?;
    store.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits until the meta-node at `addr` answers and takes writes, logging while it does not.
/// Fails at once if the meta-node refuses this gateway (a wrong cluster secret).
async fn wait_for_metadata(meta: &cairn_meta_client::grpc::GrpcMetaClient, addr: &str) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(100);
    loop {
        match meta.check_ready().await {
            Ok(true) => return Ok(()),
            Err(e @ cairn_meta_client::MetaClientError::Refused(_)) => {
                anyhow::bail!("the meta-node at {addr} refused this gateway: {e} (check CAIRN_CLUSTER_SECRET)")
            }
            Ok(false) => tracing::info!(meta = %addr, "waiting for the metadata to elect a leader"),
            Err(e) => tracing::warn!(meta = %addr, error = %e, "waiting for the metadata"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
