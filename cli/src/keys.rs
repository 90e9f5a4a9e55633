//! `cairn key ...`: access keys, through the admin API of a running server.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Deserialize;

use crate::credentials;

/// How to reach and authenticate to the admin API.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Admin API address of the server.
    #[arg(long, env = "CAIRN_ADMIN_ADDR", default_value = "127.0.0.1:9001", global = true)]
    admin_addr: String,
    /// Data directory whose root credential file to use when CAIRN_ROOT_* are not set.
    #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-data", global = true)]
    data: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a key with a generated id and secret.
    Create {
        /// A name to remember it by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Import an existing key id and secret.
    Import {
        #[arg(long)]
        access_key: String,
        #[arg(long)]
        secret_key: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys (without secrets).
    List,
    /// Delete a key.
    Delete {
        /// The access key id.
        access_key: String,
    },
}

#[derive(Deserialize)]
struct KeyView {
    access_key: String,
    secret_key: Option<String>,
    name: String,
}

/// The root credentials (from the environment, else the data directory's file) and the admin
/// API's base URL.
pub(crate) fn connect(admin: &AdminArgs) -> anyhow::Result<(credentials::Root, String)> {
    let root = match credentials::from_env()? {
        Some(r) => r,
        None => credentials::read(&admin.data).context(
            "no root credentials: set CAIRN_ROOT_ACCESS_KEY and CAIRN_ROOT_SECRET_KEY, or point --data at the server's data directory",
        )?,
    };
    let base = if admin.admin_addr.starts_with("http") {
        admin.admin_addr.clone()
    } else {
        format!("http://{}", admin.admin_addr)
    };
    Ok((root, base))
}

pub async fn run(cmd: KeyCommand, admin: AdminArgs) -> anyhow::Result<()> {
    let (root, base) = connect(&admin)?;
    let client = reqwest::Client::new();
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(&root.access_key, Some(&root.secret_key));
    let check = |r: reqwest::Response| async move {
        let status = r.status();
        if status.is_success() {
            Ok(r)
        } else {
            let body = r.text().await.unwrap_or_default();
            bail!("admin API answered {status}: {body}")
        }
    };
    match cmd {
        KeyCommand::Create { name } => {
            let body = serde_json::json!({ "name": name });
            let r = auth(client.post(format!("{base}/admin/v1/keys")).json(&body))
                .send()
                .await?;
            print_key(check(r).await?.json().await?);
        }
        KeyCommand::Import {
            access_key,
            secret_key,
            name,
        } => {
            let body = serde_json::json!({ "name": name, "access_key": access_key, "secret_key": secret_key });
            let r = auth(client.post(format!("{base}/admin/v1/keys")).json(&body))
                .send()
                .await?;
            print_key(check(r).await?.json().await?);
        }
        KeyCommand::List => {
            let r = auth(client.get(format!("{base}/admin/v1/keys"))).send().await?;
            let keys: Vec<KeyView> = check(r).await?.json().await?;
            println!("{:<24} NAME", "ACCESS KEY");
            for k in keys {
                println!("{:<24} {}", k.access_key, k.name);
            }
        }
        KeyCommand::Delete { access_key } => {
            let r = auth(client.delete(format!("{base}/admin/v1/keys/{access_key}")))
                .send()
                .await?;
            check(r).await?;
            println!("Deleted {access_key}");
        }
    }
    Ok(())
}

fn print_key(k: KeyView) {
    println!("Access key: {}", k.access_key);
    if let Some(s) = k.secret_key {
        println!("Secret key: {s}");
    }
    if !k.name.is_empty() {
        println!("Name: {}", k.name);
    }
}
