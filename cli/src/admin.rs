//! `cairn admin ...`: a running server's background work, through its admin API.

use anyhow::bail;
use clap::Subcommand;
use serde::Deserialize;

use crate::keys::{connect, AdminArgs};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Background workers: state, passes, what the last pass did, errors.
    Workers,
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
    last_error: Option<String>,
}

pub async fn run(cmd: AdminCommand, admin: AdminArgs) -> anyhow::Result<()> {
    let (root, base) = connect(&admin)?;
    match cmd {
        AdminCommand::Workers => {
            let r = reqwest::Client::new()
                .get(format!("{base}/admin/v1/workers"))
                .basic_auth(&root.access_key, Some(&root.secret_key))
                .send()
                .await?;
            let status = r.status();
            if !status.is_success() {
                bail!("admin API answered {status}: {}", r.text().await.unwrap_or_default());
            }
            let workers: Vec<Worker> = r.json().await?;
            println!(
                "{:<16} {:<8} {:>7} {:>7} {:>10} {:>10}  LAST PASS / ERROR",
                "WORKER", "STATE", "EVERY", "PASSES", "LAST", "TOTAL"
            );
            for w in workers {
                let last = match (w.last_pass_ms, &w.last_error) {
                    (_, Some(e)) => format!("error: {e}"),
                    (Some(ms), None) => format!("{} s ago", (now_ms() - ms).max(0) / 1000),
                    (None, None) => "never".into(),
                };
                println!(
                    "{:<16} {:<8} {:>6}s {:>7} {:>10} {:>10}  {last}",
                    w.name, w.state, w.every_secs, w.passes, w.last_pass_items, w.total_items
                );
            }
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
