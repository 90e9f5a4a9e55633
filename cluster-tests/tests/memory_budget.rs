//! The memory budget bounds what many clients can make the server hold: 2,000 concurrent
//! 1 MiB uploads, then 2,000 concurrent downloads of them, against a server whose budget is
//! 64 MiB. Every request succeeds (the load generator checks each body's BLAKE3), and the
//! server's peak resident memory stays under its idle size plus the budget plus a fixed
//! allowance per connection. Without the budget the same load peaks at gigabytes.

use std::process::Command;

use cairn_cluster_tests::{assert_ok, sibling_bin, Server, ACCESS_KEY, SECRET_KEY};

const BUDGET: u64 = 64 << 20;
const CLIENTS: u64 = 2000;

#[test]
fn two_thousand_concurrent_uploads_and_downloads_stay_within_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let budget = BUDGET.to_string();
    let (server, _) = Server::start_env(
        &tmp.path().join("data"),
        1,
        true,
        &[],
        &[
            ("CAIRN_MEMORY_BUDGET_BYTES", budget.as_str()),
            // Every client in flight at once (the default in-flight cap would turn half away).
            ("CAIRN_MAX_INFLIGHT_REQUESTS", "4096"),
            // The last client waits while the others stream through the budget (below the
            // 60 s idle timeout, which would cut a waiting upload).
            ("CAIRN_MEMORY_BUDGET_WAIT_SECS", "55"),
        ],
    );
    let idle = server.memory("VmRSS");
    let out = Command::new(sibling_bin("cairn-load"))
        .args(["--endpoint", &server.s3, "--bucket", "budget", "--size", "1MiB"])
        .args(["--concurrency", &CLIENTS.to_string(), "--duration", "10"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_ok(&out, "cairn-load");
    let peak = server.memory("VmHWM");
    // Beyond the budget: per connection, hyper's buffers (up to 64 KiB), the request's state
    // and what glibc's per-thread arenas keep after freeing (measured ≈ 150 KiB a connection
    // in all), plus the runtime's and RocksDB's growth under load. Without the budget this
    // load peaks at ≈ 2.4 GiB (docs/PERFORMANCE.md).
    let allowance = BUDGET + CLIENTS * (192 << 10) + (160 << 20);
    let mib = |b: u64| b >> 20;
    println!(
        "idle {} MiB, peak {} MiB, allowed {} MiB\n{}",
        mib(idle),
        mib(peak),
        mib(idle + allowance),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        peak < idle + allowance,
        "peak RSS {} MiB exceeds idle {} MiB + budget {} MiB + allowance",
        mib(peak),
        mib(idle),
        mib(BUDGET)
    );
}
