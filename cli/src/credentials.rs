//! Root credentials: taken from `CAIRN_ROOT_ACCESS_KEY` / `CAIRN_ROOT_SECRET_KEY` at first start,
//! else generated; stored in the data directory with mode 0600 and read from there afterwards.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// File name of the root credentials inside the data directory.
pub const FILE: &str = "root-credentials.json";

#[derive(Serialize, Deserialize)]
pub struct Root {
    pub access_key: String,
    pub secret_key: String,
}

/// The path of the credential file of `data`.
pub fn path(data: &Path) -> PathBuf {
    data.join(FILE)
}

/// Reads the stored root credentials.
pub fn read(data: &Path) -> anyhow::Result<Root> {
    let p = path(data);
    let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display()))
}

/// Root credentials from the environment, if both variables are set.
pub fn from_env() -> anyhow::Result<Option<Root>> {
    let a = std::env::var("CAIRN_ROOT_ACCESS_KEY").ok().filter(|s| !s.is_empty());
    let s = std::env::var("CAIRN_ROOT_SECRET_KEY").ok().filter(|s| !s.is_empty());
    match (a, s) {
        (Some(access_key), Some(secret_key)) => Ok(Some(Root { access_key, secret_key })),
        (None, None) => Ok(None),
        _ => bail!("set both CAIRN_ROOT_ACCESS_KEY and CAIRN_ROOT_SECRET_KEY, or neither"),
    }
}

/// Loads the stored credentials, or creates them on first start. Returns them and whether they
/// were generated (and must be shown once).
pub fn load_or_create(data: &Path) -> anyhow::Result<(Root, bool)> {
    let p = path(data);
    let env = from_env()?;
    if p.exists() {
        let stored = read(data)?;
        if let Some(e) = env {
            if e.access_key != stored.access_key || e.secret_key != stored.secret_key {
                tracing::warn!(file = %p.display(), "CAIRN_ROOT_* differ from the stored root credentials; the stored ones are used");
            }
        }
        return Ok((stored, false));
    }
    let (root, generated) = match env {
        Some(r) => (r, false),
        None => (
            Root {
                access_key: cairn_gateway::generate_access_key(),
                secret_key: cairn_gateway::generate_secret_key(),
            },
            true,
        ),
    };
    write_atomically(&p, &serde_json::to_vec_pretty(&root)?).with_context(|| format!("creating {}", p.display()))?;
    Ok((root, generated))
}

/// Writes `bytes` to `path` with mode 0600 so that the file is either absent or whole, even
/// after a crash: a temporary file in the same directory, fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
