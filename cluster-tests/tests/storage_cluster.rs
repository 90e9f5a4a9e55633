//! A storage cluster placed by the cluster map: one meta-node, six `cairn storage-node`
//! processes in three zones (two each), and a gateway with `--cluster` writing RS 4+2 stripes,
//! one shard per node. 1,000 objects of 1 KiB to 64 MiB are written; their shards take 1.5
//! times their bytes on the nodes' disks. Two nodes killed (-9): every object reads back
//! bit-exact, and writes go on (shards whose node is down go to spare disks, recorded for
//! repair). The nodes restarted, repair brings every chunk back home (the repair queue of the
//! admin API empties); then two *other* nodes killed, everything still reads — which it could
//! not if a chunk written while the first two were down had fewer than four shards on the
//! remaining nodes. Back to six, bytes are flipped in one node's segment files: reads still
//! return the right bytes and count the damage, repair rewrites what reads found, a scrub
//! finds what nobody read (parity shards), and a second scrub after repair finds nothing.
//! Finally a node drained (`cairn admin storage drain`) takes no shard of new objects.

use std::time::Duration;

use cairn_cluster_tests::{dir_bytes, own_loopback, wait_for, MetaNode, Server, StorageNode, TestDir, CLUSTER_SECRET};

fn bulk(gateway: &Server, op: &str, prefix: &str, count: usize, seed: u64) -> String {
    bulk_in(gateway, op, prefix, count, seed, None)
}

/// [`bulk`] in a storage class.
fn bulk_in(gateway: &Server, op: &str, prefix: &str, count: usize, seed: u64, class: Option<&str>) -> String {
    let (count, seed) = (count.to_string(), seed.to_string());
    let mut args = vec![op, "bkt", prefix, &count, &seed];
    args.extend(class);
    let out = gateway.python("bulk.py", &args);
    assert!(
        out.status.success(),
        "bulk {op} {prefix}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Flips `count` bytes (XOR 0xFF) at seeded offsets in the segment files under `dir`, past
/// their first tenth (segment headers).
fn flip_bytes(dir: &std::path::Path, count: usize, seed: u64) {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "seg") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no segment file under {}", dir.display());
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..count {
        let f = &files[next() as usize % files.len()];
        let len = std::fs::metadata(f).unwrap().len();
        if len < 1024 {
            continue;
        }
        let offset = len / 10 + next() % (len - len / 10);
        let mut file = std::fs::OpenOptions::new().read(true).write(true).open(f).unwrap();
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut b = [0u8];
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.read_exact(&mut b).unwrap();
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&[b[0] ^ 0xFF]).unwrap();
    }
}

/// Runs a scrub through `cairn admin scrub start` and answers what it found (admin API).
fn scrub(gateway: &Server) -> serde_json::Value {
    let root = [
        ("CAIRN_ROOT_ACCESS_KEY", cairn_cluster_tests::ACCESS_KEY),
        ("CAIRN_ROOT_SECRET_KEY", cairn_cluster_tests::SECRET_KEY),
    ];
    let out = gateway.cairn(&["admin", "scrub", "start"], &root);
    cairn_cluster_tests::assert_ok(&out, "cairn admin scrub start");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("done"), "{text}");
    gateway.admin_get("/admin/v1/scrub")["findings"].clone()
}

/// Waits until a repair pass that began after this call has left nothing queued.
fn wait_for_repair(gateway: &Server, what: &str) {
    let (_, passes) = repair_queued(gateway);
    wait_for(what, Duration::from_secs(240), || {
        let (queued, p) = repair_queued(gateway);
        queued == 0 && p > passes + 1
    });
}

fn repair_queued(gateway: &Server) -> (u64, u64) {
    let s = gateway.admin_get("/admin/v1/repair");
    (
        s["queued"].as_u64().unwrap(),
        s["worker"]["passes"].as_u64().unwrap_or(0),
    )
}

#[test]
fn six_nodes_in_three_zones_survive_two_down_and_repair() {
    let tmp = TestDir::new();
    let meta = MetaNode::start(&tmp.path().join("meta"), &own_loopback(), None);
    let start = |i: usize, listen: &str| {
        StorageNode::start(
            &tmp.path().join(format!("storage{i}")),
            1,
            listen,
            &["--meta", &meta.addr, "--zone", &format!("zone-{}", i / 2)],
        )
    };
    let mut nodes: Vec<StorageNode> = (0..6).map(|i| start(i, &own_loopback())).collect();
    let gateway = Server::start_role_with(
        &["gateway", "--meta", &meta.addr, "--cluster"],
        &tmp.path().join("gateway"),
        &[
            ("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET),
            ("CAIRN_SCRUB_MAX_BYTES_PER_SEC", "0"),
            ("CAIRN_REPAIR_MAX_BYTES_PER_SEC", "0"),
        ],
    );
    assert_eq!(gateway.admin_get("/admin/v1/storage").as_array().unwrap().len(), 6);

    let written = bulk(&gateway, "put", "a", 1000, 1);
    let chunked: u64 = written.split_whitespace().nth(1).unwrap().parse().unwrap();
    // RS 4+2: 1.5 times the chunk bytes on the nodes' disks (record headers and indexes
    // add little), none on the gateway.
    let on_disk: u64 = (0..6)
        .map(|i| dir_bytes(&tmp.path().join(format!("storage{i}/disks"))))
        .sum();
    let ratio = on_disk as f64 / chunked as f64;
    eprintln!("{chunked} chunk bytes take {on_disk} bytes on the storage nodes: {ratio:.3}x");
    assert!(
        (1.5..=1.575).contains(&ratio),
        "overhead {ratio:.3}x, not within 5% of 1.5x"
    );
    assert_eq!(dir_bytes(&tmp.path().join("gateway/disks")), 0);
    // One shard per node: each holds a sixth.
    for i in 0..6 {
        let held = dir_bytes(&tmp.path().join(format!("storage{i}/disks"))) as f64;
        let share = held / on_disk as f64;
        assert!(
            (0.12..0.22).contains(&share),
            "storage node {i} holds {share:.3} of the shards"
        );
    }
    bulk(&gateway, "check", "a", 1000, 1);

    // Two nodes of two zones die: every object reads back, and writes go on.
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    nodes[1].kill9();
    nodes[4].kill9();
    bulk(&gateway, "check", "a", 1000, 1);
    bulk(&gateway, "put", "b", 100, 2);
    bulk(&gateway, "check", "b", 100, 2);
    let (degraded, _) = gateway.metric("cairn_chunks_written_degraded_total");
    assert!(degraded > 0.0, "no chunk was written degraded");
    wait_for("repair to count the degraded chunks", Duration::from_secs(60), || {
        repair_queued(&gateway).0 > 0
    });

    // Back: repair brings every chunk home.
    nodes[1] = start(1, &addrs[1]);
    nodes[4] = start(4, &addrs[4]);
    let (_, passes) = repair_queued(&gateway);
    wait_for("repair to empty its queue", Duration::from_secs(240), || {
        let (queued, p) = repair_queued(&gateway);
        queued == 0 && p > passes
    });
    let (restored, _) = gateway.metric("cairn_repair_shards_restored_total");
    assert!(restored > 0.0);
    let root = [
        ("CAIRN_ROOT_ACCESS_KEY", cairn_cluster_tests::ACCESS_KEY),
        ("CAIRN_ROOT_SECRET_KEY", cairn_cluster_tests::SECRET_KEY),
    ];
    let out = gateway.cairn(&["admin", "repair", "status", "--watch"], &root);
    cairn_cluster_tests::assert_ok(&out, "cairn admin repair status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("chunks queued for repair: 0"), "{text}");

    // Two other nodes die: had repair not written the missing shards home, chunks written
    // while 1 and 4 were down would now have fewer than four.
    nodes[0].kill9();
    nodes[3].kill9();
    bulk(&gateway, "check", "b", 100, 2);
    bulk(&gateway, "check", "a", 1000, 1);

    // Back to six; bytes flipped on one node's disk. Reads return the right bytes and count
    // the damage (the node's CRCs catch it; the chunk is rebuilt from the others).
    nodes[0] = start(0, &addrs[0]);
    nodes[3] = start(3, &addrs[3]);
    let (errors_before, _) = gateway.metric("cairn_shard_read_errors_total");
    flip_bytes(&tmp.path().join("storage2/disks"), 40, 7);
    bulk(&gateway, "check", "a", 1000, 1);
    let (errors, _) = gateway.metric("cairn_shard_read_errors_total");
    assert!(errors > errors_before, "the damage was not counted");
    wait_for_repair(&gateway, "repair of what reads found");
    // A scrub finds the damage no read touched (parity shards are read only when needed)...
    let found = scrub(&gateway);
    eprintln!("first scrub: {found}");
    assert!(found["shards_bad"].as_u64().unwrap() > 0, "{found}");
    assert_eq!(found["chunks_unreadable"], 0, "{found}");
    wait_for_repair(&gateway, "repair of what the scrub found");
    // ... and after repair, another finds every shard right.
    let clean = scrub(&gateway);
    eprintln!("second scrub: {clean}");
    assert!(clean["chunks"].as_u64().unwrap() > 1000, "{clean}");
    assert_eq!(clean["shards_bad"], 0, "{clean}");
    assert_eq!(clean["shards_unreachable"], 0, "{clean}");
    assert_eq!(
        clean["shards_ok"].as_u64().unwrap(),
        6 * clean["chunks"].as_u64().unwrap(),
        "{clean}"
    );
    bulk(&gateway, "check", "b", 100, 2);

    // Drained, a node takes no new shards (a new epoch of the map); undrained, it does again.
    let root = [
        ("CAIRN_ROOT_ACCESS_KEY", cairn_cluster_tests::ACCESS_KEY),
        ("CAIRN_ROOT_SECRET_KEY", cairn_cluster_tests::SECRET_KEY),
    ];
    let epoch = |g: &Server| g.admin_get("/admin/v1/cluster-map")["epoch"].as_u64().unwrap();
    let before = epoch(&gateway);
    let drained = nodes[5].node_id.clone();
    let out = gateway.cairn(&["admin", "storage", "drain", &drained], &root);
    cairn_cluster_tests::assert_ok(&out, "cairn admin storage drain");
    assert_eq!(epoch(&gateway), before + 1);
    let out = gateway.cairn(&["admin", "storage"], &root);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with(drained.as_str()) && l.ends_with("draining")),
        "{text}"
    );
    // Five nodes for stripes of six: STANDARD is written 4+1 meanwhile, and the status says so
    // (once the gateway has read the new epoch: at most a second).
    let status = |g: &Server| String::from_utf8_lossy(&g.cairn(&["admin", "status"], &root).stdout).into_owned();
    wait_for("the status to warn of STANDARD 4+1", Duration::from_secs(30), || {
        let text = status(&gateway);
        text.contains("WARNING: storage class STANDARD") && text.contains("written 4+1")
    });
    let held = |i: usize| dir_bytes(&tmp.path().join(format!("storage{i}/disks")));
    // The gateway reads the epoch at most once a second: wait until a write shows it.
    wait_for("the gateway to place by the new epoch", Duration::from_secs(30), || {
        let b = held(5);
        bulk(&gateway, "put", "c", 20, 3);
        held(5) == b
    });
    let (b5, b0) = (held(5), held(0));
    bulk(&gateway, "put", "d", 50, 4);
    assert_eq!(held(5), b5, "a drained node took new shards");
    assert!(held(0) > b0);
    bulk(&gateway, "check", "d", 50, 4);
    let out = gateway.cairn(&["admin", "storage", "undrain", &drained], &root);
    cairn_cluster_tests::assert_ok(&out, "cairn admin storage undrain");
    assert_eq!(epoch(&gateway), before + 2);
    wait_for("the warning to go", Duration::from_secs(30), || {
        !status(&gateway).contains("WARNING")
    });
    let out = gateway.cairn(&["admin", "storage", "drain", "no-such-node"], &root);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"), "{out:?}");

    // REDUCED_REDUNDANCY: two copies on two nodes, twice the bytes; one node down, all read.
    let all = || -> u64 {
        (0..6)
            .map(|i| dir_bytes(&tmp.path().join(format!("storage{i}/disks"))))
            .sum()
    };
    let before = all();
    let written = bulk_in(&gateway, "put", "r", 60, 5, Some("REDUCED_REDUNDANCY"));
    let chunked: u64 = written.split_whitespace().nth(1).unwrap().parse().unwrap();
    let ratio = (all() - before) as f64 / chunked as f64;
    eprintln!("REDUCED_REDUNDANCY: {chunked} chunk bytes take {ratio:.3}x");
    assert!((2.0..=2.1).contains(&ratio), "two replicas take {ratio:.3}x");
    nodes[2].kill9();
    bulk(&gateway, "check", "r", 60, 5);
}
