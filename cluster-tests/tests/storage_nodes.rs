//! Shards on storage nodes: a meta-node, three `cairn storage-node` processes (one disk each:
//! stripes of 2+1) and a gateway keeping every shard on them over gRPC (`--storage`). Objects
//! round-trip through aws-cli and their bytes are on the storage nodes, not the gateway; with a
//! storage node killed (-9) every object still reads back (rebuilt from parity) and a write
//! still succeeds (the dead node's shard goes to another node's disk, recorded for repair);
//! restarted on its data, the node is the same node and writes go on; a gateway given the nodes in another order refuses to
//! start rather than look for shards in the wrong places; with a node stopped (SIGSTOP) reads go
//! on, from parity after the hedging delay. Each node registers itself with the
//! metadata (id, address, zone, disks) and a restarted one reports again under its id.

use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_cluster_tests::{
    cairn_bin, file_hash, own_loopback, wait_for, write_random_file, MetaNode, Server, StorageNode, TestDir,
    CLUSTER_SECRET,
};

#[test]
fn a_gateway_keeps_its_shards_on_storage_nodes() {
    let tmp = TestDir::new();
    let meta = MetaNode::start(&tmp.path().join("meta"), &own_loopback(), None);
    let zone = |i: usize| format!("zone-{i}");
    let start = |i: usize, listen: &str| {
        StorageNode::start(
            &tmp.path().join(format!("storage{i}")),
            1,
            listen,
            &["--meta", &meta.addr, "--zone", &zone(i)],
        )
    };
    let mut nodes: Vec<StorageNode> = (0..3).map(|i| start(i, &own_loopback())).collect();
    let storage = nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>().join(",");
    let env = [("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)];
    let mut gateway = Server::start_gateway_on(&tmp.path().join("gateway"), &meta.addr, &storage, &env);
    gateway.aws_ok(&["s3", "mb", "s3://bkt"]);
    // Each node registered itself with the metadata: id, address, zone, its disk.
    let registered = |gateway: &Server| gateway.admin_get("/admin/v1/storage");
    let listed = registered(&gateway);
    let mut want: Vec<(String, String, String)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.node_id.clone(), n.addr.clone(), zone(i)))
        .collect();
    want.sort();
    let got: Vec<(String, String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["disks"].as_array().unwrap().len(), 1, "{n}");
            assert!(n["disks"][0]["capacity_total"].as_u64().unwrap() > 0, "{n}");
            let s = |f: &str| n[f].as_str().unwrap().to_string();
            (s("id"), s("addr"), s("zone"))
        })
        .collect();
    assert_eq!(got, want);
    let root = [
        ("CAIRN_ROOT_ACCESS_KEY", cairn_cluster_tests::ACCESS_KEY),
        ("CAIRN_ROOT_SECRET_KEY", cairn_cluster_tests::SECRET_KEY),
    ];
    let out = gateway.cairn(&["admin", "storage"], &root);
    cairn_cluster_tests::assert_ok(&out, "cairn admin storage");
    let text = String::from_utf8_lossy(&out.stdout);
    for (id, addr, zone) in &want {
        assert!(
            text.lines()
                .any(|l| l.starts_with(id.as_str()) && l.contains(addr.as_str()) && l.contains(zone.as_str())),
            "{text}"
        );
    }

    let mut files = Vec::new();
    for (i, size) in [0u64, 1000, 300_000, 12 << 20].into_iter().enumerate() {
        let f = tmp.path().join(format!("f{i}"));
        write_random_file(&f, size, 40 + i as u64);
        gateway.aws_ok(&["s3", "cp", f.to_str().unwrap(), &format!("s3://bkt/f{i}")]);
        files.push(f);
    }
    let read_back = |gateway: &Server, what: &str| {
        for (i, f) in files.iter().enumerate() {
            let back = tmp.path().join(format!("back{i}"));
            gateway.aws_ok(&["s3", "cp", &format!("s3://bkt/f{i}"), back.to_str().unwrap()]);
            assert_eq!(file_hash(&back), file_hash(f), "f{i} {what}");
        }
    };
    read_back(&gateway, "as written");
    // The shards are on the storage nodes (12 MiB in 2+1 stripes: ~6 MiB each), none on the
    // gateway.
    for i in 0..3 {
        let held = cairn_cluster_tests::dir_bytes(&tmp.path().join(format!("storage{i}/disks")));
        assert!(held > 5 << 20, "storage node {i} holds {held} bytes");
    }
    assert_eq!(cairn_cluster_tests::dir_bytes(&tmp.path().join("gateway/disks")), 0);

    // A storage node dies: every object still reads back, rebuilt from parity; a write puts
    // the dead node's shard on another node (moved, queued for repair) and succeeds.
    let (addr, id) = (nodes[1].addr.clone(), nodes[1].node_id.clone());
    nodes[1].kill9();
    read_back(&gateway, "with a storage node down");
    // (New bytes: a body of known chunks, or one small enough to live in the metadata, writes
    // no shard.)
    let fresh = tmp.path().join("fresh");
    write_random_file(&fresh, 1 << 20, 99);
    gateway.aws_ok(&["s3", "cp", fresh.to_str().unwrap(), "s3://bkt/during"]);
    let during = tmp.path().join("during");
    gateway.aws_ok(&["s3", "cp", "s3://bkt/during", during.to_str().unwrap()]);
    assert_eq!(file_hash(&during), file_hash(&fresh));
    assert!(gateway.metric("cairn_chunks_written_degraded_total").0 > 0.0);

    // Back on its data: the same node, and writes go on.
    let before = registered(&gateway);
    let heartbeat_of = |listed: &serde_json::Value| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id.as_str())
            .map(|n| (n["registered"].as_i64().unwrap(), n["heartbeat"].as_i64().unwrap()))
            .unwrap()
    };
    nodes[1] = start(1, &addr);
    assert_eq!(nodes[1].node_id, id, "a restarted storage node keeps its id");
    // It reported itself again (a later heartbeat), under the same id, and kept its first
    // registration; still three nodes.
    let after = registered(&gateway);
    assert_eq!(after.as_array().unwrap().len(), 3);
    let ((reg0, beat0), (reg1, beat1)) = (heartbeat_of(&before), heartbeat_of(&after));
    assert_eq!(reg1, reg0);
    assert!(beat1 > beat0, "{beat1} after {beat0}");
    wait_for("writes to succeed again", Duration::from_secs(30), || {
        gateway
            .aws_once(&["s3", "cp", fresh.to_str().unwrap(), "s3://bkt/after"])
            .status
            .success()
    });
    read_back(&gateway, "after the restart");

    // A node stopped (SIGSTOP: connections open, nothing answered) does not stall reads: the
    // gateway asks the parity shards after its hedging delay (100 ms) instead of waiting out
    // the 30 s deadline. aws-cli gives up after 10 s without a byte: a read that waited on the
    // stopped node would fail here.
    nodes[0].signal("STOP");
    for (i, f) in files.iter().enumerate() {
        let back = tmp.path().join(format!("stopped{i}"));
        let out = gateway.aws_once(&[
            "--cli-read-timeout",
            "10",
            "s3",
            "cp",
            &format!("s3://bkt/f{i}"),
            back.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "f{i}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(file_hash(&back), file_hash(f), "f{i} with a node stopped");
    }
    nodes[0].signal("CONT");

    // The gateway restarted with the nodes in another order is refused: it would look for every
    // shard on the wrong node.
    gateway.stop();
    let reordered = [&nodes[1].addr, &nodes[0].addr, &nodes[2].addr]
        .map(|s| s.as_str())
        .join(",");
    let mut refused = Command::new(cairn_bin())
        .args(["gateway", "--meta", &meta.addr, "--storage", &reordered])
        .args(["--s3-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("gateway"))
        .env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
        .env("CAIRN_ROOT_ACCESS_KEY", cairn_cluster_tests::ACCESS_KEY)
        .env("CAIRN_ROOT_SECRET_KEY", cairn_cluster_tests::SECRET_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_for("the reordered gateway to exit", Duration::from_secs(30), || {
        status = refused.try_wait().unwrap();
        status.is_some()
    });
    let mut err = String::new();
    std::io::Read::read_to_string(refused.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.unwrap().success());
    assert!(err.contains("same order"), "{err}");
}
