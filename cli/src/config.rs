//! The server's configuration: built-in defaults, then an optional TOML file, then `CAIRN_*`
//! environment variables, then command-line flags; validated once, logged at start.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Flags of `cairn server`. Every flag overrides the file and the environment.
#[derive(Args, Debug, Default, Serialize)]
pub struct ServerArgs {
    /// TOML configuration file.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./cairn-data]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// S3 listen address [default: 127.0.0.1:9000]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_addr: Option<SocketAddr>,
    /// Admin API listen address [default: 127.0.0.1:9001]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<SocketAddr>,
    /// Number of disk directories under the data directory [default: 1]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disks: Option<usize>,
    /// Region the server signs for [default: us-east-1]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Base domain for virtual-host-style requests (bucket.DOMAIN)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// How long unreferenced data is kept before it is collected, e.g. 30s, 10m, 1h
    /// [default: 1h]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_grace: Option<HumanDuration>,
}

/// A duration written as a number and a unit (`500ms`, `90s`, `10m`, `1h`, `7d`), or a bare
/// number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub std::time::Duration);

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (a number and a unit: 500ms, 90s, 10m, 1h, 7d)"))?;
        let unit_ms: u64 = match unit.trim() {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "unknown duration unit {other:?} in {s:?} (use ms, s, m, h or d)"
                ))
            }
        };
        n.checked_mul(unit_ms)
            .map(|ms| HumanDuration(std::time::Duration::from_millis(ms)))
            .ok_or_else(|| format!("duration {s:?} is too long"))
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0s"),
            _ if ms.is_multiple_of(86_400_000) => write!(f, "{}d", ms / 86_400_000),
            _ if ms.is_multiple_of(3_600_000) => write!(f, "{}h", ms / 3_600_000),
            _ if ms.is_multiple_of(60_000) => write!(f, "{}m", ms / 60_000),
            _ if ms.is_multiple_of(1000) => write!(f, "{}s", ms / 1000),
            _ => write!(f, "{ms}ms"),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(n) => Ok(HumanDuration(std::time::Duration::from_secs(n))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The effective configuration.
#[derive(Debug, Deserialize, Serialize)]
pub struct ServerConfig {
    pub data: PathBuf,
    pub s3_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub disks: usize,
    pub region: String,
    pub domain: Option<String>,
    /// Seconds to drain in-flight requests at shutdown.
    pub drain_timeout_secs: u64,
    /// Seconds a client has to send a request's header section (also how long an idle
    /// keep-alive connection stays open).
    pub header_timeout_secs: u64,
    /// Seconds a connection may sit without a byte moving before it is closed.
    pub idle_timeout_secs: u64,
    /// Most open S3 connections.
    pub max_connections: usize,
    /// Most S3 requests in flight; beyond it, 503 SlowDown.
    pub max_inflight_requests: usize,
    /// Largest request header section in bytes.
    pub max_header_bytes: usize,
    /// Largest file of a browser-form POST upload, in bytes (it streams like a PUT body).
    pub post_object_max_bytes: u64,
    /// Most browser-form POST uploads in flight.
    pub max_form_uploads: usize,
    /// Most body bytes all uploads and downloads together hold in memory; beyond it they wait.
    pub memory_budget_bytes: u64,
    /// Seconds an upload or download waits for room in the memory budget before 503; kept below
    /// `idle_timeout_secs` (a waiting upload reads nothing and would be cut by the idle timer).
    pub memory_budget_wait_secs: u64,
    /// Seconds after which an incomplete multipart upload is aborted and its parts released;
    /// 0 keeps them for ever.
    pub multipart_expiry_secs: u64,
    /// How long a chunk stays unreferenced (or a shard orphaned) before it is collected.
    /// Requests in flight for longer than this may fail.
    pub gc_grace: HumanDuration,
    /// A segment file is compacted once at least this fraction of it is dead, in (0, 1].
    pub compaction_dead_ratio: f64,
    /// Most bytes per second compaction rewrites on each disk; 0 for no limit.
    pub compaction_max_bytes_per_sec: u64,
    /// Size in bytes at which a disk's segment file is sealed and a new one begun.
    pub segment_bytes: u64,
    /// Most shard bytes per second a scrub run reads; 0 for no limit.
    pub scrub_max_bytes_per_sec: u64,
    /// Seconds between the end of a scrub run and the start of the next; 0: only on request.
    pub scrub_every_secs: u64,
    /// Most shard bytes per second repair writes; 0 for no limit.
    pub repair_max_bytes_per_sec: u64,
    /// Chunks repair rebuilds at once, 1 to 64 (each holds its chunk and shards in memory).
    pub repair_concurrency: usize,
    /// Storage classes besides `STANDARD` (the erasure scheme of the disks or `--erasure`, in
    /// the default pool), by S3 name: `K+M` (Reed-Solomon) or `N replicas`, or a table with
    /// that `redundancy` and the `pool` of storage nodes its chunks go to. Default:
    /// `REDUCED_REDUNDANCY = "2 replicas"`.
    pub storage_classes: std::collections::BTreeMap<String, ClassSpec>,
}

/// One configured storage class: `COLD = "8+3"`, or
/// `COLD = { redundancy = "8+3", pool = "archive" }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassSpec {
    /// The redundancy alone, in the default pool.
    Redundancy(String),
    /// The redundancy and the pool.
    Placed(PlacedClass),
}

/// A storage class configured as a table. A misspelt key is refused rather than ignored: a
/// class whose `pool` key were ignored would silently live in the default pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedClass {
    /// `K+M` or `N replicas`.
    pub redundancy: String,
    /// The storage pool (`default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

/// Default for [`ServerConfig::multipart_expiry_secs`]: 7 days.
pub const DEFAULT_MULTIPART_EXPIRY_SECS: u64 = 7 * 24 * 3600;

impl Default for ServerConfig {
    fn default() -> Self {
        // The limits' defaults live with the code that enforces them.
        let limits = cairn_gateway::HttpLimits::default();
        let store = cairn::StoreConfig::default();
        Self {
            data: PathBuf::from("./cairn-data"),
            s3_addr: "127.0.0.1:9000".parse().expect("literal"),
            admin_addr: "127.0.0.1:9001".parse().expect("literal"),
            disks: 1,
            region: "us-east-1".into(),
            domain: None,
            drain_timeout_secs: 30,
            header_timeout_secs: limits.header_read_timeout.as_secs(),
            idle_timeout_secs: limits.idle_timeout.as_secs(),
            max_connections: limits.max_connections,
            max_inflight_requests: limits.max_inflight,
            max_header_bytes: limits.max_header_bytes,
            post_object_max_bytes: cairn_s3::DEFAULT_POST_OBJECT_MAX_BYTES,
            max_form_uploads: limits.max_form_uploads,
            memory_budget_bytes: store.memory_budget,
            memory_budget_wait_secs: store.memory_budget_wait.as_secs(),
            multipart_expiry_secs: DEFAULT_MULTIPART_EXPIRY_SECS,
            gc_grace: HumanDuration(std::time::Duration::from_secs(3600)),
            compaction_dead_ratio: 0.5,
            compaction_max_bytes_per_sec: 32 << 20,
            segment_bytes: store.segment_bytes,
            scrub_max_bytes_per_sec: 64 << 20,
            scrub_every_secs: 30 * 24 * 3600,
            repair_max_bytes_per_sec: 64 << 20,
            repair_concurrency: cairn::RepairConfig::default().concurrency,
            storage_classes: [(
                cairn::REDUCED_REDUNDANCY.to_string(),
                ClassSpec::Redundancy("2 replicas".to_string()),
            )]
            .into(),
        }
    }
}

/// A redundancy as configured: `K+M` (Reed-Solomon, such as `4+2`) or `N replicas` (RS 1+(N-1),
/// whose parity shards are copies).
pub fn parse_redundancy(s: &str) -> anyhow::Result<cairn::ErasureScheme> {
    let t = s.trim();
    if let Some(n) = t.strip_suffix("replicas").or_else(|| t.strip_suffix("replica")) {
        let n: u8 = n
            .trim()
            .parse()
            .with_context(|| format!("{s:?}: expected N replicas, such as 2 replicas"))?;
        if n == 0 {
            bail!("{s:?}: at least 1 replica");
        }
        return Ok(cairn::ErasureScheme::new(1, n - 1)?);
    }
    let (k, m) = t
        .split_once('+')
        .with_context(|| format!("{s:?}: expected DATA+PARITY (such as 4+2) or N replicas"))?;
    let k: u8 = k.trim().parse().with_context(|| format!("erasure scheme {s:?}"))?;
    let m: u8 = m.trim().parse().with_context(|| format!("erasure scheme {s:?}"))?;
    Ok(cairn::ErasureScheme::new(k, m)?)
}

impl ServerConfig {
    /// The configured storage classes besides `STANDARD`, checked: S3-like names (`A-Z`,
    /// `0-9`, `_`), not `STANDARD` itself, a valid redundancy and pool name each.
    pub fn storage_classes(&self) -> anyhow::Result<std::collections::BTreeMap<String, cairn::StorageClass>> {
        let mut out = std::collections::BTreeMap::new();
        for (name, spec) in &self.storage_classes {
            if !cairn::class::valid_class_name(name) {
                bail!("storage_classes: {name:?} is not a class name (1 to 64 of A-Z, 0-9 and _)");
            }
            if name == cairn::STANDARD {
                bail!("storage_classes: STANDARD is the erasure scheme of the disks (or --erasure) and is not configured here");
            }
            let (redundancy, pool) = match spec {
                ClassSpec::Redundancy(r) => (r, None),
                ClassSpec::Placed(PlacedClass { redundancy, pool }) => (redundancy, pool.as_deref()),
            };
            let scheme = parse_redundancy(redundancy).with_context(|| format!("storage_classes.{name}"))?;
            if let Some(p) = pool.filter(|p| !cairn_meta::valid_pool_name(p)) {
                bail!("storage_classes.{name}: {p:?} is not a pool name (1 to 64 of a-z, 0-9, - and _)");
            }
            let pool = pool.and_then(cairn_meta::pool_field);
            out.insert(name.clone(), cairn::StorageClass { scheme, pool });
        }
        Ok(out)
    }

    /// Layers defaults, file, environment and flags, and validates the result.
    pub fn load(args: &ServerArgs) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(ServerConfig::default()));
        if let Some(path) = &args.config {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        let env = Env::prefixed("CAIRN_").only(&[
            "data",
            "s3_addr",
            "admin_addr",
            "disks",
            "region",
            "domain",
            "drain_timeout_secs",
            "header_timeout_secs",
            "idle_timeout_secs",
            "max_connections",
            "max_inflight_requests",
            "max_header_bytes",
            "post_object_max_bytes",
            "max_form_uploads",
            "memory_budget_bytes",
            "memory_budget_wait_secs",
            "multipart_expiry_secs",
            "gc_grace",
            "compaction_dead_ratio",
            "compaction_max_bytes_per_sec",
            "segment_bytes",
            "scrub_max_bytes_per_sec",
            "scrub_every_secs",
            "repair_max_bytes_per_sec",
            "repair_concurrency",
        ]);
        let cfg: ServerConfig = fig
            .merge(env)
            .merge(Serialized::defaults(args))
            .extract()
            .context("invalid configuration")?;
        if !(1..=64).contains(&cfg.repair_concurrency) {
            bail!(
                "repair_concurrency: must be between 1 and 64, got {}",
                cfg.repair_concurrency
            );
        }
        if cfg.disks == 0 || cfg.disks > 32 {
            bail!("disks: must be between 1 and 32, got {}", cfg.disks);
        }
        if cfg.region.is_empty() {
            bail!("region: must not be empty");
        }
        if cfg.header_timeout_secs == 0 || cfg.idle_timeout_secs == 0 {
            bail!("header_timeout_secs and idle_timeout_secs: must be at least 1");
        }
        if cfg.max_connections == 0 || cfg.max_inflight_requests == 0 || cfg.max_form_uploads == 0 {
            bail!("max_connections, max_inflight_requests and max_form_uploads: must be at least 1");
        }
        if cfg.post_object_max_bytes > 5 << 30 {
            bail!(
                "post_object_max_bytes: at most 5 GiB, got {}",
                cfg.post_object_max_bytes
            );
        }
        if cfg.memory_budget_bytes < 16 << 20 || cfg.memory_budget_wait_secs == 0 {
            bail!(
                "memory_budget_bytes: at least 16 MiB (one upload's working set), and memory_budget_wait_secs: at least 1; got {} and {}",
                cfg.memory_budget_bytes,
                cfg.memory_budget_wait_secs
            );
        }
        if !(cfg.compaction_dead_ratio > 0.0 && cfg.compaction_dead_ratio <= 1.0) {
            bail!(
                "compaction_dead_ratio: must be in (0, 1], got {}",
                cfg.compaction_dead_ratio
            );
        }
        if !(1 << 20..=4 << 30).contains(&cfg.segment_bytes) {
            bail!(
                "segment_bytes: must be between 1 MiB and 4 GiB, got {}",
                cfg.segment_bytes
            );
        }
        cfg.storage_classes()?;
        if !(1024..=60 * 1024).contains(&cfg.max_header_bytes) {
            bail!(
                "max_header_bytes: must be between 1024 and 61440, got {}",
                cfg.max_header_bytes
            );
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::HumanDuration;
    use std::time::Duration;

    #[test]
    fn durations_read_with_their_units() {
        let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("90"), Ok(Duration::from_secs(90)));
        assert_eq!(d("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(d("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(d("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert!(d("1w").is_err());
        assert!(d("h").is_err());
        assert!(d("-1s").is_err());
        assert!(d("99999999999999999d").is_err());
        assert_eq!(HumanDuration(Duration::from_secs(7200)).to_string(), "2h");
        assert_eq!(HumanDuration(Duration::from_millis(1500)).to_string(), "1500ms");
    }

    #[test]
    fn redundancies_read_as_schemes() {
        let r = |s: &str| super::parse_redundancy(s).map(|s| (s.data, s.parity)).ok();
        assert_eq!(r("4+2"), Some((4, 2)));
        assert_eq!(r(" 8 + 4 "), Some((8, 4)));
        assert_eq!(r("2 replicas"), Some((1, 1)));
        assert_eq!(r("3 replicas"), Some((1, 2)));
        assert_eq!(r("1 replica"), Some((1, 0)));
        assert_eq!(r("0 replicas"), None);
        assert_eq!(r("0+2"), None);
        assert_eq!(r("30+3"), None);
        assert_eq!(r("two replicas"), None);
        assert_eq!(r("4"), None);
    }
}
