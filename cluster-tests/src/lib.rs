//! Helpers for multi-process tests: start the real `cairn` binary on OS-chosen ports with a
//! temporary data directory, drive it with real clients (aws-cli, boto3), kill it with SIGKILL.
//!
//! Must not depend on: any Cairn crate. These tests see the system only from the outside, as a
//! user does (its `Cargo.toml` proves it).
//!
//! The binary is found next to the test executable (`target/<profile>/cairn`) or at
//! `$CAIRN_BIN`; the test command builds it first.

pub mod faults;
pub mod linearizability;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Root credentials every test server is started with.
pub const ACCESS_KEY: &str = "CKTESTROOTACCESSKEY1";
/// Root secret of test servers.
pub const SECRET_KEY: &str = "test-root-secret-key-0123456789abcdefghij";

/// Path of another binary of the workspace (e.g. `cairn-load`), next to the `cairn` binary.
pub fn sibling_bin(name: &str) -> PathBuf {
    let bin = cairn_bin().with_file_name(name);
    assert!(
        bin.exists(),
        "{} does not exist: build it first (cargo build --workspace --bins)",
        bin.display()
    );
    bin
}

/// Path of the `cairn` binary under test.
pub fn cairn_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CAIRN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = dir.join("cairn");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (cargo build --bin cairn) or set CAIRN_BIN",
        bin.display()
    );
    bin
}

/// A running `cairn server` process.
pub struct Server {
    child: Option<Child>,
    /// S3 endpoint, `http://127.0.0.1:PORT`.
    pub s3: String,
    /// Admin endpoint.
    pub admin: String,
    /// Data directory.
    pub data: PathBuf,
    /// Server log (stderr).
    pub log: PathBuf,
}

impl Server {
    /// Starts a server on `data` with `disks` disks and the test root credentials, and waits
    /// until it says it is ready.
    pub fn start(data: &Path, disks: usize) -> Server {
        Self::start_with(data, disks, true, &[]).0
    }

    /// Starts a server; with `root_from_env` false, the server generates (or reloads) its root
    /// credentials. Returns the server and every line it printed before it was ready.
    /// `extra` flags are passed to `cairn server` as given.
    pub fn start_with(data: &Path, disks: usize, root_from_env: bool, extra: &[&str]) -> (Server, Vec<String>) {
        Self::start_env(data, disks, root_from_env, extra, &[])
    }

    /// As [`Server::start_with`], with `env` added to the server's environment (`CAIRN_*`
    /// configuration).
    pub fn start_env(
        data: &Path,
        disks: usize,
        root_from_env: bool,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Server, Vec<String>) {
        Self::start_role(&["server"], data, disks, root_from_env, extra, env)
    }

    /// Starts `cairn gateway --meta META_ADDR` (an S3 gateway with its own disks, its metadata
    /// on a meta-node), with the test root credentials and `env` (which must hold
    /// `CAIRN_CLUSTER_SECRET`).
    pub fn start_gateway(data: &Path, disks: usize, meta_addr: &str, env: &[(&str, &str)]) -> Server {
        Self::start_role(&["gateway", "--meta", meta_addr], data, disks, true, &[], env).0
    }

    /// Starts `cairn gateway --meta META_ADDR --storage STORAGE_ADDRS` (an S3 gateway keeping
    /// shards on storage nodes), with the test root credentials and `env` (which must hold
    /// `CAIRN_CLUSTER_SECRET`).
    pub fn start_gateway_on(data: &Path, meta_addr: &str, storage_addrs: &str, env: &[(&str, &str)]) -> Server {
        Self::start_role(
            &["gateway", "--meta", meta_addr, "--storage", storage_addrs],
            data,
            1,
            true,
            &[],
            env,
        )
        .0
    }

    /// Starts `cairn ROLE...` (a gateway with any flags) on `data` with the test root
    /// credentials and `env`.
    pub fn start_role_with(role: &[&str], data: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_role(role, data, 1, true, &[], env).0
    }

    fn start_role(
        role: &[&str],
        data: &Path,
        disks: usize,
        root_from_env: bool,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Server, Vec<String>) {
        std::fs::create_dir_all(data).unwrap();
        let log = data.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(cairn_bin());
        cmd.args(role)
            .args(["--s3-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
            .arg("--data")
            .arg(data)
            .args(["--disks", &disks.to_string()])
            .args(extra)
            .env_remove("CAIRN_ROOT_ACCESS_KEY")
            .env_remove("CAIRN_ROOT_SECRET_KEY")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        if root_from_env {
            cmd.env("CAIRN_ROOT_ACCESS_KEY", ACCESS_KEY)
                .env("CAIRN_ROOT_SECRET_KEY", SECRET_KEY);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn cairn server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let (mut s3, mut admin) = (None, None);
        let mut printed = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    printed.push(line.clone());
                    if let Some(a) = line.strip_prefix("S3 API: ") {
                        s3 = Some(a.to_string());
                    } else if let Some(a) = line.strip_prefix("Admin API: ") {
                        admin = Some(a.to_string());
                    } else if line == "Ready." {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "server did not become ready; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        let server = Server {
            child: Some(child),
            s3: s3.expect("S3 address line"),
            admin: admin.expect("admin address line"),
            data: data.to_path_buf(),
            log,
        };
        (server, printed)
    }

    /// Runs `cairn ARGS` (an admin command) against this server's admin API, with the given
    /// environment added.
    pub fn cairn(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(cairn_bin());
        cmd.args(args)
            .env("CAIRN_ADMIN_ADDR", self.admin.trim_start_matches("http://"))
            .env_remove("CAIRN_ROOT_ACCESS_KEY")
            .env_remove("CAIRN_ROOT_SECRET_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run cairn")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// A memory figure of the server process from `/proc/PID/status`, in bytes: `VmRSS` (now)
    /// or `VmHWM` (peak resident set since it started).
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"));
        kib * 1024
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Stops the process with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let pid = c.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        c.wait().unwrap()
    }

    /// Runs aws-cli against this server with the root credentials.
    pub fn aws(&self, args: &[&str]) -> Output {
        self.aws_as(ACCESS_KEY, SECRET_KEY, args)
    }

    /// Runs aws-cli with the given credentials.
    pub fn aws_as(&self, access_key: &str, secret_key: &str, args: &[&str]) -> Output {
        Command::new("aws")
            .arg("--endpoint-url")
            .arg(&self.s3)
            .args(["--region", "us-east-1"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", secret_key)
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_PROFILE")
            .env("AWS_PAGER", "")
            .output()
            .expect("run aws (install aws-cli: pip install awscli)")
    }

    /// Runs aws-cli making one attempt per request (no retries): what a failing request
    /// answers is what the test sees.
    pub fn aws_once(&self, args: &[&str]) -> Output {
        Command::new("aws")
            .args(["--endpoint-url", &self.s3, "--region", "us-east-1"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_PROFILE")
            .env("AWS_PAGER", "")
            .output()
            .expect("run aws (install aws-cli: pip install awscli)")
    }

    /// Runs aws-cli and panics with its output unless it succeeds; returns stdout.
    pub fn aws_ok(&self, args: &[&str]) -> String {
        let out = self.aws(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a Python script of `cluster-tests/py` with the endpoint and credentials in its
    /// environment (`CAIRN_S3`, `CAIRN_ADMIN`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub fn python(&self, script: &str, args: &[&str]) -> Output {
        self.python_command(script, args).output().expect("run python3")
    }

    /// [`Server::python`], as a command to spawn (a client running alongside the test).
    pub fn python_command(&self, script: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg(py_script(script))
            .args(args)
            .env("CAIRN_S3", &self.s3)
            .env("CAIRN_ADMIN", &self.admin)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
        cmd
    }

    /// The value of an unlabelled metric on `/metrics` (0 if it was never recorded), and the
    /// whole page for failure messages.
    pub fn metric(&self, name: &str) -> (f64, String) {
        let page = reqwest::blocking::get(format!("{}/metrics", self.admin))
            .unwrap()
            .text()
            .unwrap();
        let value = page
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        (value, page)
    }

    /// GET on the admin API with root credentials; returns the JSON body.
    pub fn admin_get(&self, path: &str) -> serde_json::Value {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}{}", self.admin, path))
            .basic_auth(ACCESS_KEY, Some(SECRET_KEY))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().unwrap()
    }

    /// Payload bytes of live shards over all disks.
    pub fn live_bytes(&self) -> u64 {
        self.admin_get("/admin/v1/status")["stats"]["live_bytes"]
            .as_u64()
            .unwrap()
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts that a process succeeded, showing its output if not.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `len` deterministic pseudo-random bytes (xorshift seeded by `seed`) to `path`.
/// Different seeds give different content (the seed is mixed first: `seed | 1` alone made
/// seeds 2k and 2k+1 write the same bytes, which deduplication then stores once).
pub fn write_random_file(path: &Path, len: u64, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    // splitmix64 of the seed; never zero, which xorshift cannot leave.
    let mut x = {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) | 1
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

/// BLAKE3 of a file, for bit-exact comparisons without holding it in memory.
pub fn file_hash(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path).unwrap()).unwrap();
    h.finalize().to_hex().to_string()
}

/// The path of `cluster-tests/py/<script>`. Taken from the directory cargo runs the test in
/// (it sets `CARGO_MANIFEST_DIR` at run time too), not only the one the binary was compiled in:
/// a persistent target directory shared by several checkouts may hold a test binary built from
/// another checkout, whose directory can be gone.
pub fn py_script(script: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("py").join(script)
}

/// A temporary directory for a test's processes (data and logs), removed when the test
/// passes and kept — its path printed — when it fails, so the logs can be read.
pub struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    /// A new, empty directory.
    pub fn new() -> Self {
        Self(Some(tempfile::tempdir().unwrap()))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!("test failed: data and logs kept in {}", dir.keep().display());
            }
        }
    }
}

/// Waits until `cond` holds, polling every 100 ms; fails the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A count a client script keeps in the file `dir/name` (0 until it is written).
pub fn read_counter(dir: &Path, name: &str) -> u64 {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A listen address (`127.0.3.N:0`) on a loopback address no other process of the test uses,
/// for a node that will be restarted on the address it got: connections' ephemeral ports are
/// taken on 127.0.0.1, so while the node is down nothing can take its port.
pub fn own_loopback() -> String {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
    format!("127.0.3.{}:0", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Bytes of the files under `dir`, recursively (0 if it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// Reads a role process's stdout up to its `Ready.` line: the `Label: value` lines it
/// announced before, by label.
fn announced(child: &mut Child) -> std::collections::HashMap<String, String> {
    let mut lines = std::collections::HashMap::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "Ready." {
            break;
        }
        if let Some((label, value)) = line.split_once(": ") {
            lines.insert(label.to_string(), value.to_string());
        }
    }
    lines
}

/// The cluster secret the tests' meta-nodes and gateways share.
pub const CLUSTER_SECRET: &str = "cluster-tests-secret-0123456789";

/// A `cairn meta-node` process (log next to its data directory, killed when dropped).
pub struct MetaNode {
    child: Child,
    /// Its gRPC address.
    pub addr: String,
    /// Its `/metrics` URL.
    pub metrics: String,
}

impl MetaNode {
    /// Starts `cairn meta-node` on `data`, listening on `listen`, as member `id` of a group
    /// (or, without, a one-member group of its own); returns once it is ready.
    pub fn start(data: &Path, listen: &str, id: Option<u64>) -> MetaNode {
        Self::start_with(data, listen, id, &[])
    }

    /// [`MetaNode::start`] with more flags.
    pub fn start_with(data: &Path, listen: &str, id: Option<u64>, extra: &[&str]) -> MetaNode {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.with_extension("log"))
            .unwrap();
        let mut cmd = Command::new(cairn_bin());
        cmd.args([
            "meta-node",
            "--listen",
            listen,
            "--metrics-listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data);
        if let Some(id) = id {
            cmd.args(["--id", &id.to_string()]);
        }
        cmd.args(extra);
        let mut child = cmd
            .env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut said = announced(&mut child);
        MetaNode {
            child,
            addr: said.remove("Metadata API").expect("the meta-node printed its address"),
            metrics: said
                .remove("Metrics")
                .expect("the meta-node printed its metrics address"),
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The value of an unlabelled metric on the node's `/metrics`, if present.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let page = reqwest::blocking::get(&self.metrics).ok()?.text().ok()?;
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Starts `members` meta-nodes (ids 1..=members, data in `dir/meta{id}`, each on a
    /// loopback address of its own, with `flags`), forms them into one group and waits until
    /// it has a leader.
    pub fn start_group(dir: &Path, members: u64, flags: &[&str]) -> Vec<MetaNode> {
        let nodes: Vec<MetaNode> = (1..=members)
            .map(|id| MetaNode::start_with(&dir.join(format!("meta{id}")), &own_loopback(), Some(id), flags))
            .collect();
        let list: Vec<String> = nodes
            .iter()
            .zip(1..)
            .map(|(n, id)| format!("{id}={}", n.addr))
            .collect();
        assert_ok(
            &MetaNode::meta_cmd(&["init", "--meta", &nodes[0].addr, &list.join(",")]),
            "cairn meta init",
        );
        wait_for("a leader", Duration::from_secs(30), || {
            MetaNode::status(&nodes[0].addr).is_some_and(|(l, _)| l.is_some())
        });
        nodes
    }

    /// What `cairn meta status --meta ADDR` shows: (leader id, applied index), or `None` if
    /// the node does not answer.
    pub fn status(addr: &str) -> Option<(Option<u64>, Option<u64>)> {
        let text = Self::status_text(addr)?;
        let first = text.lines().next()?;
        let field = |name: &str| {
            first
                .split(", ")
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Some((field("leader "), field("applied ")))
    }

    /// The leader the node at `addr` knows of, if it answers.
    pub fn leader(addr: &str) -> Option<u64> {
        Self::status(addr).and_then(|(l, _)| l)
    }

    /// The snapshot line of `cairn meta status --meta ADDR`: (snapshot index, index the log is
    /// purged through).
    pub fn snapshot_status(addr: &str) -> (Option<u64>, Option<u64>) {
        let text = Self::status_text(addr).unwrap_or_default();
        let line = text.lines().find(|l| l.starts_with("snapshot at ")).unwrap_or_default();
        let num = |after: &str| {
            line.split(after)
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
        };
        (num("snapshot at "), num("purged through "))
    }

    fn status_text(addr: &str) -> Option<String> {
        let out = Self::meta_cmd(&["status", "--meta", addr]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `cairn meta ARGS` with the cluster secret.
    pub fn meta_cmd(args: &[&str]) -> Output {
        Command::new(cairn_bin())
            .arg("meta")
            .args(args)
            .env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
            .output()
            .expect("run cairn meta")
    }
}

/// A `cairn storage-node` process (killed when dropped).
pub struct StorageNode {
    child: Option<Child>,
    /// Its gRPC address.
    pub addr: String,
    /// Its id, as it printed it.
    pub node_id: String,
}

impl StorageNode {
    /// Starts `cairn storage-node` with `disks` disks on `data`, listening on `listen`, with
    /// `extra` flags (`--meta ADDR --zone Z` to register); returns once it is ready.
    pub fn start(data: &Path, disks: usize, listen: &str, extra: &[&str]) -> StorageNode {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.with_extension("log"))
            .unwrap();
        let mut child = Command::new(cairn_bin())
            .args(["storage-node", "--listen", listen, "--metrics-listen", "127.0.0.1:0"])
            .args(["--disks", &disks.to_string(), "--data"])
            .arg(data)
            .args(extra)
            .env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut said = announced(&mut child);
        StorageNode {
            child: Some(child),
            addr: said
                .remove("Shard API")
                .expect("the storage node printed its address (see its log)"),
            node_id: said.remove("Node").expect("the storage node printed its id"),
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`, ...) to the running process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for StorageNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl Drop for MetaNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
