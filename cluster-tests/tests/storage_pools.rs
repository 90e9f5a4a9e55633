//! Storage pools: a storage class placed in a pool has its shards on that pool's storage nodes
//! only, and the other classes never put a shard there. One meta-node, three `cairn
//! storage-node`s in the default pool (three zones) and two with `--pool archive`, a gateway
//! with `--cluster --erasure 2+1` and a class `COLD` of two replicas in pool `archive`:
//! STANDARD objects grow the default pool's disks only, COLD objects the archive nodes' only
//! (two replicas: each archive node holds one copy); with an archive node killed, every object
//! still reads, and a COLD write keeps both copies on the archive node left rather than put
//! one outside the pool (repair brings it home when the node is back). A class
//! whose pool has no node is refused with 503 before its body is read, and `cairn admin status`
//! says why; draining one archive node makes COLD degrade to what the pool can honour, with a
//! warning; a scrub finds every shard of both classes where its pool put it.

use std::time::Duration;

use cairn_cluster_tests::{
    assert_ok, dir_bytes, own_loopback, wait_for, MetaNode, Server, StorageNode, TestDir, CLUSTER_SECRET,
};

/// Runs `bulk.py OP bkt PREFIX COUNT SEED [CLASS]`; answers its output (for `put`: the bytes
/// written, then those stored as chunks).
fn bulk(gateway: &Server, op: &str, prefix: &str, count: usize, seed: u64, class: Option<&str>) -> String {
    let (count, seed) = (count.to_string(), seed.to_string());
    let mut args = vec![op, "bkt", prefix, &count, &seed];
    args.extend(class);
    let out = gateway.python("bulk.py", &args);
    assert_ok(&out, &format!("bulk {op} {prefix}"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn chunk_bytes(put_output: &str) -> u64 {
    put_output.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Most bytes a node's disks may grow by without holding shards (segment headers, indexes).
const NOT_A_SHARD: u64 = 64 << 10;

#[test]
fn a_class_placed_in_a_pool_stays_on_its_nodes() {
    let tmp = TestDir::new();
    let meta = MetaNode::start(&tmp.path().join("meta"), &own_loopback(), None);
    // Nodes 0..3: default pool, zones 0..3; nodes 3 and 4: pool archive, zones 0 and 1.
    let start = |i: usize| {
        let zone = format!("zone-{}", i % 3);
        let mut flags = vec!["--meta", &meta.addr, "--zone", &zone];
        if i >= 3 {
            flags.extend(["--pool", "archive"]);
        }
        StorageNode::start(&tmp.path().join(format!("storage{i}")), 1, &own_loopback(), &flags)
    };
    let mut nodes: Vec<StorageNode> = (0..5).map(start).collect();
    let config = tmp.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[storage_classes]\n\
         REDUCED_REDUNDANCY = \"2 replicas\"\n\
         COLD = { redundancy = \"2 replicas\", pool = \"archive\" }\n\
         NOWHERE = { redundancy = \"1+1\", pool = \"nowhere\" }\n",
    )
    .unwrap();
    let gateway = Server::start_role_with(
        &[
            "gateway",
            "--meta",
            &meta.addr,
            "--cluster",
            "--erasure",
            "2+1",
            "--config",
            config.to_str().unwrap(),
        ],
        &tmp.path().join("gateway"),
        &[("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)],
    );
    let root = [
        ("CAIRN_ROOT_ACCESS_KEY", cairn_cluster_tests::ACCESS_KEY),
        ("CAIRN_ROOT_SECRET_KEY", cairn_cluster_tests::SECRET_KEY),
    ];
    let admin = |args: &[&str]| {
        let out = gateway.cairn(args, &root);
        assert_ok(&out, &format!("cairn {args:?}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = admin(&["admin", "storage"]);
    let archive_rows = text.lines().filter(|l| l.contains(" archive ")).count();
    assert_eq!(archive_rows, 2, "{text}");
    let text = admin(&["admin", "status"]);
    assert!(text.contains("COLD 1+1 (pool archive)"), "{text}");
    assert!(
        text.contains("WARNING: storage class NOWHERE: no storage node of pool nowhere takes shards"),
        "{text}"
    );
    assert!(!text.contains("storage class COLD:"), "{text}");
    assert!(!text.contains("storage class STANDARD:"), "{text}");

    let held = |i: usize| dir_bytes(&tmp.path().join(format!("storage{i}/disks")));
    let all = || (0..5).map(held).collect::<Vec<u64>>();

    // STANDARD (RS 2+1): the three default-pool nodes, 1.5 times the chunk bytes.
    let before = all();
    let chunked = chunk_bytes(&bulk(&gateway, "put", "s", 40, 1, None));
    let after = all();
    let grown: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    for i in 3..5 {
        assert!(
            grown[i] < NOT_A_SHARD,
            "archive node {i} took STANDARD shards: {grown:?}"
        );
    }
    let ratio = grown[..3].iter().sum::<u64>() as f64 / chunked as f64;
    assert!((1.5..1.6).contains(&ratio), "RS 2+1 took {ratio:.3}x: {grown:?}");

    // COLD (two replicas in pool archive): one copy on each archive node, none elsewhere.
    let before = after;
    let chunked = chunk_bytes(&bulk(&gateway, "put", "c", 40, 2, Some("COLD")));
    let after = all();
    let grown: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    for i in 0..3 {
        assert!(
            grown[i] < NOT_A_SHARD,
            "default-pool node {i} took COLD shards: {grown:?}"
        );
    }
    for i in 3..5 {
        let share = grown[i] as f64 / chunked as f64;
        assert!(
            (1.0..1.05).contains(&share),
            "archive node {i} holds {share:.3}x: {grown:?}"
        );
    }
    eprintln!("COLD: {chunked} chunk bytes, archive nodes grew {:?}", &grown[3..]);

    // A class whose pool has no node: 503 before the body is read, and nothing stored.
    let file = tmp.path().join("small");
    std::fs::write(&file, vec![7u8; 100 << 10]).unwrap();
    let put_once = |key: &str, class: &str| {
        let body = file.to_str().unwrap();
        let args = ["s3api", "put-object", "--bucket", "bkt", "--key", key, "--body", body];
        gateway.aws_once(&[&args[..], &["--storage-class", class]].concat())
    };
    let out = put_once("nowhere", "NOWHERE");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ServiceUnavailable") || err.contains("503"), "{err}");
    assert_eq!(all(), after, "a refused write stored something");

    // An archive node killed: COLD objects read from the other copy, STANDARD ones as before.
    // A COLD write goes on with both copies on the archive node left (recorded for repair),
    // none in the default pool; back, the node gets its copy home from repair.
    nodes[3].kill9();
    bulk(&gateway, "check", "c", 40, 2, None);
    bulk(&gateway, "check", "s", 40, 1, None);
    let before = all();
    let out = put_once("cold-while-down", "COLD");
    assert_ok(&out, "a COLD put with an archive node down");
    let after = all();
    for i in 0..3 {
        assert!(
            after[i] - before[i] < NOT_A_SHARD,
            "node {i} took a COLD shard: {before:?} -> {after:?}"
        );
    }
    assert!(after[4] - before[4] >= 2 * (100 << 10), "{before:?} -> {after:?}");
    let passes = || {
        gateway.admin_get("/admin/v1/repair")["worker"]["passes"]
            .as_u64()
            .unwrap_or(0)
    };
    let queued = || gateway.admin_get("/admin/v1/repair")["queued"].as_u64().unwrap();
    let first = passes();
    wait_for("the repair queue to hold the chunk", Duration::from_secs(30), || {
        passes() > first && queued() > 0
    });
    nodes[3] = start(3);
    let back = passes();
    wait_for("repair to bring the copy home", Duration::from_secs(60), || {
        passes() > back + 1 && queued() == 0
    });
    assert!(held(3) - after[3] >= 100 << 10, "node 3 got no copy back");
    let got = tmp.path().join("got");
    gateway.aws_ok(&["s3", "cp", "s3://bkt/cold-while-down", got.to_str().unwrap()]);
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&file).unwrap());

    // The other archive node drained: the pool has one node taking shards, and COLD is written
    // as one copy meanwhile (the status says so); STANDARD is not concerned.
    admin(&["admin", "storage", "drain", &nodes[4].node_id.clone()]);
    wait_for("the COLD warning", Duration::from_secs(30), || {
        let text = admin(&["admin", "status"]);
        text.contains("WARNING: storage class COLD: 1+1 needs 2 failure domains")
            && text.contains("1 nodes of pool archive take shards")
            && text.contains("written 1+0")
    });
    assert!(!admin(&["admin", "status"]).contains("storage class STANDARD:"));

    // A scrub places every chunk by its pool: every shard of both classes is found right.
    let text = admin(&["admin", "scrub", "start"]);
    assert!(text.contains("done"), "{text}");
    let found = gateway.admin_get("/admin/v1/scrub")["findings"].clone();
    let n = |f: &str| found[f].as_u64().unwrap();
    assert!(n("chunks") > 0 && n("shards_ok") > 0, "{found}");
    let wrong = ["shards_bad", "shards_unreachable", "chunks_unreadable"].map(n);
    assert_eq!(wrong, [0, 0, 0], "{found}");
}
