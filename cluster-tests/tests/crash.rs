//! kill -9 during concurrent uploads: every acknowledged object survives bit-exact, and no
//! object is ever partially visible.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_cluster_tests::{assert_ok, Server, ACCESS_KEY, SECRET_KEY};

fn acked(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("ack "))
        .count()
}

/// Waits until `cond` holds, polling; fails after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_nine_during_uploads_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("client");
    std::fs::create_dir_all(&work).unwrap();
    let log = work.join("log.txt");

    for round in 1..=2 {
        // Phase: load against a fresh process on the same data.
        let mut server = Server::start(&data, 3);
        let mut load = Command::new("python3")
            .arg(cairn_cluster_tests::py_script("crash_client.py"))
            .arg("load")
            .arg(&work)
            .arg(format!("r{round}-"))
            .env("CAIRN_S3", &server.s3)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let target = acked(&log) + 40;
        wait_for("40 more acknowledged uploads", Duration::from_secs(300), || {
            acked(&log) >= target
        });

        // Phase: crash in the middle of the traffic.
        server.kill9();
        load.kill().unwrap();
        load.wait().unwrap();

        // Phase: restart and check every object the client ever started.
        let server = Server::start(&data, 3);
        let out = server.python("crash_client.py", &["verify", work.to_str().unwrap()]);
        assert_ok(&out, &format!("verification after crash {round}"));
        eprintln!("round {round}: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
}
