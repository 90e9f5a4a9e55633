//! Space reclamation on the real server: after overwrites, deletes, an aborted multipart upload
//! and uploads cut by kill -9, the workers bring the disks back to the live data's size, every
//! live object reads back bit-exact, and the metrics and `cairn admin gc status` say what was
//! reclaimed. And kill -9 in the middle of a compaction loses nothing. And the same across six
//! storage nodes, one of them down while the collector deletes: caught up when it returns.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_cluster_tests::{
    assert_ok, dir_bytes, own_loopback, wait_for, MetaNode, Server, StorageNode, TestDir, ACCESS_KEY, CLUSTER_SECRET,
    SECRET_KEY,
};

/// A short grace period, small segments and a low compaction threshold, so that the disks end
/// close to the live data within the test.
const ENV: [(&str, &str); 4] = [
    ("CAIRN_GC_GRACE", "1s"),
    ("CAIRN_SEGMENT_BYTES", "2097152"),
    ("CAIRN_COMPACTION_DEAD_RATIO", "0.05"),
    ("CAIRN_COMPACTION_MAX_BYTES_PER_SEC", "0"),
];

/// Bytes of every file under the data directory's disks (segments and their index files).
fn disk_bytes(data: &Path) -> u64 {
    dir_bytes(&data.join("disks"))
}

/// What the live objects take in shards with erasure 2+1 (3 disks) or 4+2 (six storage
/// nodes): 1.5 times their size, for every object too large to be kept inline in the metadata.
fn stored_size(work: &Path) -> u64 {
    let expect: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("expect.json")).unwrap()).unwrap();
    expect
        .as_object()
        .unwrap()
        .values()
        .map(|v| v[0].as_u64().unwrap())
        .filter(|size| *size > 16 * 1024)
        .map(|size| size * 3 / 2)
        .sum()
}

/// Starts `reclaim_client.py stall` for `key`: a PUT that sends `sent` of `size` bytes and
/// holds the connection. Returns once the bytes are sent.
fn stall(server: &Server, key: &str, size: u64, sent: u64) -> Child {
    let mut child = Command::new("python3")
        .arg(cairn_cluster_tests::py_script("reclaim_client.py"))
        .args(["stall", key, &size.to_string(), &sent.to_string()])
        .env("CAIRN_S3", &server.s3)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "sent", "the stalled upload did not start");
    child
}

const ROOT: [(&str, &str); 2] = [
    ("CAIRN_ROOT_ACCESS_KEY", ACCESS_KEY),
    ("CAIRN_ROOT_SECRET_KEY", SECRET_KEY),
];

fn gc_run(server: &Server) -> String {
    let out = server.cairn(&["admin", "gc", "run"], &ROOT);
    assert_ok(&out, "cairn admin gc run");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start(data: &Path) -> Server {
    Server::start_env(data, 3, true, &[], &ENV).0
}

#[test]
fn reclamation_brings_the_disks_back_to_the_live_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut server = start(&data);
    let out = server.python("reclaim_client.py", &["load", work.to_str().unwrap()]);
    assert_ok(&out, "load");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    // The metadata's Raft state is on /metrics too.
    let (leader, page) = server.metric("cairn_raft_is_leader");
    assert_eq!(leader, 1.0, "{page}");
    assert!(server.metric("cairn_raft_applied_index").0 > 100.0, "{page}");
    // The collector frees the overwritten, deleted and aborted data once the grace period
    // has passed since it first saw it.
    let collector = "cairn_worker_bytes_reclaimed_total{worker=\"collector\"}";
    wait_for("the collector to reclaim", Duration::from_secs(60), || {
        gc_run(&server);
        server.metric(collector).0 > 0.0
    });
    let (chunks_before, _) = server.metric("cairn_chunks_written_total");
    // Two uploads in flight when the server dies: their chunks are on disk, never committed.
    let mut stalls = vec![
        stall(&server, "cut-1", 64 << 20, 24 << 20),
        stall(&server, "cut-2", 64 << 20, 24 << 20),
    ];
    wait_for("the cut uploads' chunks to be written", Duration::from_secs(60), || {
        server.metric("cairn_chunks_written_total").0 >= chunks_before + 8.0
    });
    server.kill9();
    for s in &mut stalls {
        s.kill().unwrap();
        s.wait().unwrap();
    }
    let server = start(&data);
    let live = stored_size(&work);
    // The grace period runs from when this process first sees the garbage: run until the
    // disks are back to the live data, or fail.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut status = String::new();
    while disk_bytes(&data) > live + live / 10 {
        assert!(
            Instant::now() < deadline,
            "disks hold {} bytes, live data {live}; last status:\n{status}\nlog:\n{}",
            disk_bytes(&data),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(500));
        status = gc_run(&server);
    }
    eprintln!("disks: {} bytes for {live} bytes of live shards", disk_bytes(&data));
    let out = server.python("reclaim_client.py", &["verify", work.to_str().unwrap()]);
    assert_ok(&out, "verify");
    // What was reclaimed: by the collector before the crash, by the sweep and compaction after.
    for worker in ["orphan-sweep", "compaction"] {
        let name = format!("cairn_worker_bytes_reclaimed_total{{worker=\"{worker}\"}}");
        let (bytes, page) = server.metric(&name);
        assert!(bytes > 0.0, "{worker} reclaimed nothing:\n{page}");
    }
    let out = server.cairn(&["admin", "gc", "status"], &ROOT);
    assert_ok(&out, "cairn admin gc status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("orphan-sweep") && text.contains("compaction"), "{text}");
    assert!(!text.contains("bytes reclaimed since start: 0 B"), "{text}");
    let gc = server.admin_get("/admin/v1/gc");
    let sweep = gc["workers"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["name"] == "orphan-sweep"))
        .unwrap_or_else(|| panic!("no orphan-sweep worker in {gc}"));
    assert!(sweep["total_items"].as_u64() >= Some(2), "{sweep}");
    assert!(sweep["last_error"].is_null(), "{sweep}");
}

#[test]
fn kill_nine_during_compaction_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // Nothing is collected while the garbage is made (an hour's grace period).
    let keep = [("CAIRN_GC_GRACE", "1h"), ("CAIRN_SEGMENT_BYTES", "2097152")];
    let mut server = Server::start_env(&data, 3, true, &[], &keep).0;
    let out = server.python("reclaim_client.py", &["load", work.to_str().unwrap()]);
    assert_ok(&out, "load");
    // Restarted with a grace period of 0: the first run collects the garbage at once, and
    // compaction, throttled, rewrites what lives in the segments it left mostly dead.
    server.stop();
    let collect_now = [
        ("CAIRN_GC_GRACE", "0s"),
        ("CAIRN_SEGMENT_BYTES", "2097152"),
        ("CAIRN_COMPACTION_DEAD_RATIO", "0.05"),
        ("CAIRN_COMPACTION_MAX_BYTES_PER_SEC", "4194304"),
    ];
    let mut server = Server::start_env(&data, 3, true, &[], &collect_now).0;
    wait_for(
        "a compaction under way, one segment done",
        Duration::from_secs(120),
        || {
            let gc = server.admin_get("/admin/v1/gc");
            gc["workers"].as_array().is_some_and(|ws| {
                ws.iter().any(|w| {
                    w["name"] == "compaction" && w["state"] == "running" && w["progress_done"].as_u64() >= Some(1)
                })
            })
        },
    );
    server.kill9();
    let server = Server::start_env(&data, 3, true, &[], &ENV).0;
    let out = server.python("reclaim_client.py", &["verify", work.to_str().unwrap()]);
    assert_ok(&out, "verify after the kill");
    // Compaction finishes after the restart and the data is still whole.
    gc_run(&server);
    let live = stored_size(&work);
    assert!(disk_bytes(&data) <= live + live / 10, "{} vs {live}", disk_bytes(&data));
    let out = server.python("reclaim_client.py", &["verify", work.to_str().unwrap()]);
    assert_ok(&out, "verify after compaction");
}

#[test]
fn reclamation_across_storage_nodes_catches_up_a_node_that_was_down() {
    let tmp = TestDir::new();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let meta = MetaNode::start(&tmp.path().join("meta"), &own_loopback(), None);
    let start = |i: usize, listen: &str| {
        StorageNode::start(
            &tmp.path().join(format!("storage{i}")),
            1,
            listen,
            &[
                "--meta",
                &meta.addr,
                "--zone",
                &format!("zone-{}", i / 2),
                "--segment-bytes",
                "2097152",
            ],
        )
    };
    let mut nodes: Vec<StorageNode> = (0..6).map(|i| start(i, &own_loopback())).collect();
    // Nothing is collected while the garbage is made (an hour's grace period)...
    let gateway_with = |env: &[(&str, &str)]| {
        let mut all = vec![("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)];
        all.extend(env);
        Server::start_role_with(
            &["gateway", "--meta", &meta.addr, "--cluster"],
            &tmp.path().join("gateway"),
            &all,
        )
    };
    let mut gateway = gateway_with(&[("CAIRN_GC_GRACE", "1h")]);
    let held = |i: usize| dir_bytes(&tmp.path().join(format!("storage{i}/disks")));
    let all = || (0..6).map(held).sum::<u64>();
    let out = gateway.python("reclaim_client.py", &["load", work.to_str().unwrap()]);
    assert_ok(&out, "load");

    // ... and node 3 dies before the collector runs (a gateway with a short grace period):
    // its shards of the collected chunks stay, and the collector goes on without it.
    let addr = nodes[3].addr.clone();
    nodes[3].kill9();
    gateway.stop();
    let gateway = gateway_with(&ENV);
    let collector = "cairn_worker_bytes_reclaimed_total{worker=\"collector\"}";
    wait_for("the collector to reclaim", Duration::from_secs(90), || {
        gc_run(&gateway);
        gateway.metric(collector).0 > 0.0
    });
    let (skipped, page) = gateway.metric("cairn_gc_disks_unreachable_total");
    assert!(skipped > 0.0, "the collector did not notice the node down:\n{page}");
    let down = held(3);

    // Back: the orphan sweep deletes what it missed, compaction gives the space back, on every
    // node, until the nodes hold the live data's shards.
    nodes[3] = start(3, &addr);
    let live = stored_size(&work);
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut status = String::new();
    while all() > live + live / 10 {
        assert!(
            Instant::now() < deadline,
            "the nodes hold {} bytes, live data {live}; last status:\n{status}",
            all()
        );
        std::thread::sleep(Duration::from_millis(500));
        status = gc_run(&gateway);
    }
    eprintln!("storage nodes: {} bytes for {live} bytes of live shards", all());
    assert!(
        held(3) < down,
        "node 3 held {down} bytes when it came back, {} now",
        held(3)
    );
    let share = held(3) as f64 / all() as f64;
    assert!((0.12..0.22).contains(&share), "node 3 holds {share:.3} of the shards");
    let out = gateway.python("reclaim_client.py", &["verify", work.to_str().unwrap()]);
    assert_ok(&out, "verify");
    for worker in ["orphan-sweep", "compaction"] {
        let name = format!("cairn_worker_bytes_reclaimed_total{{worker=\"{worker}\"}}");
        let (bytes, page) = gateway.metric(&name);
        assert!(bytes > 0.0, "{worker} reclaimed nothing:\n{page}");
    }
}
