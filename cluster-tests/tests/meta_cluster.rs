//! Three meta-node processes in one Raft group, a storage node (three disks) and a gateway
//! given all of them (its shards on the storage node over gRPC): objects written
//! before and after the leader is killed with -9 are all acknowledged and read back
//! bit-exact; the killed node, restarted on its data, rejoins and catches up; S3 clients
//! writing without pause see no failure through three leader kills in a row; the group grows
//! to five and shrinks back to three under writes. A failed test keeps its logs.

use std::time::{Duration, Instant};

use cairn_cluster_tests::{
    assert_ok, file_hash, own_loopback, read_counter, wait_for, write_random_file, MetaNode, Server, StorageNode,
    TestDir, CLUSTER_SECRET,
};

/// A storage node of three disks registered with the group at `meta`, and a gateway keeping
/// its shards there.
fn storage_and_gateway(tmp: &TestDir, meta: &str) -> (StorageNode, Server) {
    let storage = StorageNode::start(&tmp.path().join("storage"), 3, &own_loopback(), &["--meta", meta]);
    let gateway = Server::start_gateway_on(
        &tmp.path().join("gateway"),
        meta,
        &storage.addr,
        &[("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)],
    );
    (storage, gateway)
}

#[test]
fn the_group_survives_the_loss_of_its_leader_with_no_acknowledged_write_lost() {
    let tmp = TestDir::new();
    let mut nodes = MetaNode::start_group(tmp.path(), 3, &[]);
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let meta = addrs.join(",");
    let (_storage, gateway) = storage_and_gateway(&tmp, &meta);
    gateway.aws_ok(&["s3", "mb", "s3://bkt"]);
    let mut written = Vec::new();
    let put = |name: &str, seed: u64, written: &mut Vec<(String, String)>| {
        let f = tmp.path().join(name);
        write_random_file(&f, (3 << 20) + seed * 1000, seed);
        gateway.aws_ok(&["s3", "cp", f.to_str().unwrap(), &format!("s3://bkt/{name}")]);
        written.push((name.to_string(), file_hash(&f)));
    };
    for i in 0..5 {
        put(&format!("before-{i}"), i, &mut written);
    }

    // Kill the leader.
    let (leader, _) = MetaNode::status(&addrs[0]).unwrap();
    let leader = leader.unwrap() as usize;
    nodes[leader - 1].kill9();
    let others: Vec<&String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| i + 1 != leader)
        .map(|(_, a)| a)
        .collect();
    wait_for("a new leader", Duration::from_secs(30), || {
        MetaNode::status(others[0]).is_some_and(|(l, _)| l.is_some_and(|l| l as usize != leader))
    });
    for i in 0..5 {
        put(&format!("after-{i}"), 10 + i, &mut written);
    }

    // The killed node comes back on its data and catches up.
    nodes[leader - 1] = MetaNode::start(
        &tmp.path().join(format!("meta{leader}")),
        &addrs[leader - 1],
        Some(leader as u64),
    );
    wait_for("the restarted node to catch up", Duration::from_secs(30), || {
        let (Some((_, back)), Some((_, live))) = (MetaNode::status(&addrs[leader - 1]), MetaNode::status(others[0]))
        else {
            return false;
        };
        back.is_some() && back >= live
    });
    for (name, hash) in &written {
        let out = tmp.path().join(format!("{name}.back"));
        gateway.aws_ok(&["s3", "cp", &format!("s3://bkt/{name}"), out.to_str().unwrap()]);
        assert_eq!(&file_hash(&out), hash, "{name}");
    }
    let listed = gateway.aws_ok(&["s3", "ls", "s3://bkt/"]);
    assert_eq!(listed.lines().count(), written.len(), "{listed}");
    // The gateway shows the group's Raft state (admin API and `cairn admin meta`).
    let meta = gateway.admin_get("/admin/v1/meta");
    assert_eq!(meta["state"], "Leader", "{meta}");
    assert_eq!(meta["members"].as_array().map(Vec::len), Some(3), "{meta}");
    assert!(
        meta["term"].as_u64().unwrap() >= 2,
        "a second term after the kill: {meta}"
    );
    let root = [
        ("CAIRN_ROOT_ACCESS_KEY", cairn_cluster_tests::ACCESS_KEY),
        ("CAIRN_ROOT_SECRET_KEY", cairn_cluster_tests::SECRET_KEY),
    ];
    let out = gateway.cairn(&["admin", "meta"], &root);
    assert_ok(&out, "cairn admin meta");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" voter").count(), 3, "{text}");
    // Each meta-node shows its Raft state on /metrics: one leader, the same applied index.
    let leaders: f64 = nodes.iter().map(|n| n.metric("cairn_raft_is_leader").unwrap()).sum();
    assert_eq!(leaders, 1.0);
    wait_for("every member applied the same", Duration::from_secs(30), || {
        let applied: Vec<Option<f64>> = nodes.iter().map(|n| n.metric("cairn_raft_applied_index")).collect();
        applied[0].is_some_and(|a| a > 0.0) && applied.iter().all(|a| *a == applied[0])
    });
}

#[test]
fn the_group_grows_to_five_and_shrinks_back_to_three_under_traffic() {
    let tmp = TestDir::new();
    let mut nodes: Vec<Option<MetaNode>> = (1..=5)
        .map(|id| {
            Some(MetaNode::start(
                &tmp.path().join(format!("meta{id}")),
                &own_loopback(),
                Some(id),
            ))
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().addr.clone()).collect();
    let members = format!("1={},2={},3={}", addrs[0], addrs[1], addrs[2]);
    assert_ok(
        &MetaNode::meta_cmd(&["init", "--meta", &addrs[0], &members]),
        "cairn meta init",
    );
    wait_for("a leader", Duration::from_secs(30), || {
        MetaNode::status(&addrs[0]).is_some_and(|(l, _)| l.is_some())
    });
    let gateway = Server::start_gateway(
        &tmp.path().join("gateway"),
        1,
        &addrs.join(","),
        &[("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)],
    );
    gateway.aws_ok(&["s3", "mb", "s3://bkt"]);
    // Clients write without pause through every change.
    let work = tmp.path().join("traffic");
    std::fs::create_dir(&work).unwrap();
    let clients = gateway
        .python_command("traffic.py", &["run", work.to_str().unwrap(), "3"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let advance = |what: &str| {
        let at = read_counter(&work, "progress");
        wait_for(what, Duration::from_secs(60), || {
            read_counter(&work, "progress") >= at + 20
        });
    };
    advance("traffic to flow");
    let mut written = Vec::new();
    let put = |name: &str, seed: u64, written: &mut Vec<(String, String)>| {
        let f = tmp.path().join(name);
        write_random_file(&f, 200_000 + seed * 1000, seed);
        gateway.aws_ok(&["s3", "cp", f.to_str().unwrap(), &format!("s3://bkt/{name}")]);
        written.push((name.to_string(), file_hash(&f)));
        advance(&format!("traffic after {name}"));
    };
    put("a", 1, &mut written);
    // Grow: asked of a follower, the change is made at the leader.
    for id in [4usize, 5] {
        let member = format!("{id}={}", addrs[id - 1]);
        assert_ok(
            &MetaNode::meta_cmd(&["add", "--meta", &addrs[1], &member]),
            "cairn meta add",
        );
        put(&format!("after-add-{id}"), id as u64, &mut written);
    }
    let out = MetaNode::meta_cmd(&["status", "--meta", &addrs[4]]);
    assert_ok(&out, "cairn meta status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" voter").count(), 5, "{text}");
    // The leader leaves the group, then its process stops; then one more member goes.
    let (leader, _) = MetaNode::status(&addrs[0]).unwrap();
    let leader = leader.unwrap() as usize;
    let other = if leader == 1 { 2 } else { 1 };
    assert_ok(
        &MetaNode::meta_cmd(&["remove", "--meta", &addrs[other - 1], &leader.to_string()]),
        "cairn meta remove (leader)",
    );
    nodes[leader - 1].take().unwrap().kill9();
    put("after-leader-left", 7, &mut written);
    let next = (1..=5).find(|i| *i != leader && *i != other).unwrap();
    assert_ok(
        &MetaNode::meta_cmd(&["remove", "--meta", &addrs[other - 1], &next.to_string()]),
        "cairn meta remove",
    );
    nodes[next - 1].take().unwrap().kill9();
    put("after-shrink", 8, &mut written);
    let out = MetaNode::meta_cmd(&["status", "--meta", &addrs[other - 1]]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" voter").count(), 3, "{text}");
    std::fs::write(work.join("stop"), b"").unwrap();
    let out = clients.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "traffic script failed: {stderr}");
    assert!(!stderr.contains("gave up"), "a client gave up: {stderr}");
    let verified = gateway.python("traffic.py", &["verify", work.to_str().unwrap()]);
    assert_ok(&verified, "verify the journal against the store");
    let summary: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(summary["unknown"], 0, "{summary}");
    for (name, hash) in &written {
        let out = tmp.path().join(format!("{name}.back"));
        gateway.aws_ok(&["s3", "cp", &format!("s3://bkt/{name}"), out.to_str().unwrap()]);
        assert_eq!(&file_hash(&out), hash, "{name}");
    }
}

/// Several S3 clients PUT, overwrite and DELETE without pause while the leader is killed with
/// -9 three times in a row (each time restarted on its data): no client gives up, and
/// afterwards every key holds what its last acknowledged operation left.
#[test]
fn continuous_traffic_survives_three_leader_kills() {
    const WORKERS: u64 = 4;
    let kills: usize = std::env::var("CAIRN_LEADER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let tmp = TestDir::new();
    let mut nodes = MetaNode::start_group(tmp.path(), 3, &[]);
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let (_storage, gateway) = storage_and_gateway(&tmp, &addrs.join(","));
    let work = tmp.path().join("traffic");
    std::fs::create_dir(&work).unwrap();
    let clients = gateway
        .python_command("traffic.py", &["run", work.to_str().unwrap(), &WORKERS.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("traffic to flow", Duration::from_secs(60), || {
        read_counter(&work, "progress") >= 30
    });

    let mut failovers = Vec::new();
    for round in 0..kills {
        let leader = (0..3)
            .find_map(|i| MetaNode::status(&addrs[i]).and_then(|(l, _)| l))
            .expect("a leader") as usize;
        let before = read_counter(&work, "progress");
        let killed_at = Instant::now();
        nodes[leader - 1].kill9();
        // More acknowledgements than operations that were in flight at the kill: at least
        // one write was accepted after it.
        wait_for("writes to resume", Duration::from_secs(60), || {
            read_counter(&work, "progress") > before + WORKERS
        });
        failovers.push(killed_at.elapsed());
        let other = &addrs[leader % 3];
        wait_for("a new leader", Duration::from_secs(30), || {
            MetaNode::status(other).is_some_and(|(l, _)| l.is_some_and(|l| l as usize != leader))
        });
        nodes[leader - 1] = MetaNode::start(
            &tmp.path().join(format!("meta{leader}")),
            &addrs[leader - 1],
            Some(leader as u64),
        );
        // Traffic goes on: catching up means reaching what was applied when it came back.
        let target = MetaNode::status(other)
            .and_then(|(_, a)| a)
            .expect("the leader's applied index");
        wait_for("the restarted member to catch up", Duration::from_secs(60), || {
            MetaNode::status(&addrs[leader - 1]).is_some_and(|(_, back)| back.is_some_and(|b| b >= target))
        });
        let at = read_counter(&work, "progress");
        wait_for("traffic after the restart", Duration::from_secs(60), || {
            read_counter(&work, "progress") > at + 10
        });
        eprintln!(
            "kill {round}: leader {leader}, writes resumed after {:?}",
            failovers[round]
        );
    }
    std::fs::write(work.join("stop"), b"").unwrap();
    let out = clients.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "traffic script failed: {stderr}");
    assert!(!stderr.contains("gave up"), "a client gave up: {stderr}");

    let verified = gateway.python("traffic.py", &["verify", work.to_str().unwrap()]);
    assert_ok(&verified, "verify the journal against the store");
    let summary: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(summary["unknown"], 0, "{summary}");
    assert!(summary["acked"].as_u64().unwrap() > 100, "{summary}");
    let mut sorted = failovers.clone();
    sorted.sort();
    eprintln!(
        "failover (kill -9 of the leader -> writes resume): median {:?}, max {:?}, over {} kills; {summary}",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        sorted.len()
    );
}

/// A follower killed while the group writes past its snapshot threshold and purges its log
/// comes back on its data and catches up by a snapshot sent by the leader.
#[test]
fn a_follower_back_after_the_log_moved_on_catches_up_by_snapshot() {
    let tmp = TestDir::new();
    let flags = ["--snapshot-every", "100"];
    let mut nodes = MetaNode::start_group(tmp.path(), 3, &flags);
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let leader = MetaNode::status(&addrs[0]).unwrap().0.unwrap() as usize;
    let follower = leader % 3; // index of another member
    nodes[follower].kill9();
    let (_, before) = MetaNode::status(&addrs[leader - 1]).unwrap();

    // 1,000 commits: ten snapshots' worth; the leader's log is purged far past the follower.
    let live: Vec<&str> = (0..3).filter(|i| *i != follower).map(|i| addrs[i].as_str()).collect();
    let load = std::process::Command::new(cairn_cluster_tests::sibling_bin("cairn-meta-load"))
        .args(["--meta", &live.join(","), "--writers", "16", "--objects", "1000"])
        .env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
        .output()
        .unwrap();
    assert_ok(&load, "cairn-meta-load");
    wait_for(
        "the leader to purge its log past the follower",
        Duration::from_secs(30),
        || MetaNode::snapshot_status(&addrs[leader - 1]).1.unwrap_or(0) > before.unwrap_or(0) + 100,
    );
    let (_, target) = MetaNode::status(&addrs[leader - 1]).unwrap();

    nodes[follower] = MetaNode::start_with(
        &tmp.path().join(format!("meta{}", follower + 1)),
        &addrs[follower],
        Some(follower as u64 + 1),
        &flags,
    );
    wait_for("the follower to catch up", Duration::from_secs(60), || {
        MetaNode::status(&addrs[follower]).is_some_and(|(_, a)| a >= target)
    });
    assert_eq!(
        nodes[follower].metric("cairn_raft_snapshots_installed_total"),
        Some(1.0),
        "caught up without installing a snapshot"
    );
    let (snapshot, _) = MetaNode::snapshot_status(&addrs[follower]);
    assert!(snapshot.unwrap_or(0) > before.unwrap_or(0) + 100, "{snapshot:?}");
}
