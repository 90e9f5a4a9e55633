//! `cairn server`: every role in one process.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use cairn::{Store, StoreConfig};
use cairn_gateway::{Bound, GatewayConfig};
use cairn_s3::{RootCredentials, S3Settings};

use crate::config::{ServerArgs, ServerConfig};
use crate::credentials;

async fn shutdown_signal() {
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

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = ServerConfig::load(&args)?;
    tracing::info!(config = ?cfg, "starting cairn server");
    std::fs::create_dir_all(&cfg.data).with_context(|| format!("creating {}", cfg.data.display()))?;
    let (root, generated) = credentials::load_or_create(&cfg.data)?;

    let store = Store::open_local(&cfg.data, cfg.disks, StoreConfig::default())
        .await
        .context("opening the store")?;
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
        },
        drain_timeout: Duration::from_secs(cfg.drain_timeout_secs),
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
    bound.serve(store.clone(), shutdown_signal()).await?;
    store.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
