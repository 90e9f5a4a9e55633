//! Three meta-node processes in one Raft group, a gateway given all three: objects written
//! before and after the leader is killed with -9 are all acknowledged and read back
//! bit-exact; the killed node, restarted on its data, rejoins and catches up.

use std::time::{Duration, Instant};

use cairn_cluster_tests::{assert_ok, file_hash, write_random_file, MetaNode, Server, CLUSTER_SECRET};

/// Waits until `cond` holds, polling; fails after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cairn meta status` of the node at `addr`: (leader id, applied index), if it answers.
fn status(addr: &str) -> Option<(Option<u64>, Option<u64>)> {
    let out = MetaNode::meta_cmd(&["status", "--meta", addr]);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = text.lines().next()?;
    let field = |name: &str| {
        first
            .split(", ")
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("leader "), field("applied ")))
}

#[test]
fn the_group_survives_the_loss_of_its_leader_with_no_acknowledged_write_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes: Vec<MetaNode> = (1..=3)
        .map(|id| MetaNode::start(&tmp.path().join(format!("meta{id}")), "127.0.0.1:0", Some(id)))
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let members = format!("1={},2={},3={}", addrs[0], addrs[1], addrs[2]);
    assert_ok(
        &MetaNode::meta_cmd(&["init", "--meta", &addrs[0], &members]),
        "cairn meta init",
    );
    wait_for("a leader", Duration::from_secs(30), || {
        status(&addrs[0]).is_some_and(|(l, _)| l.is_some())
    });
    let meta = addrs.join(",");
    let gateway = Server::start_gateway(
        &tmp.path().join("gateway"),
        3,
        &meta,
        &[("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)],
    );
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
    let (leader, _) = status(&addrs[0]).unwrap();
    let leader = leader.unwrap() as usize;
    nodes[leader - 1].kill9();
    let others: Vec<&String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| i + 1 != leader)
        .map(|(_, a)| a)
        .collect();
    wait_for("a new leader", Duration::from_secs(30), || {
        status(others[0]).is_some_and(|(l, _)| l.is_some_and(|l| l as usize != leader))
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
        let (Some((_, back)), Some((_, live))) = (status(&addrs[leader - 1]), status(others[0])) else {
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
}

#[test]
fn the_group_grows_to_five_and_shrinks_back_to_three_under_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Option<MetaNode>> = (1..=5)
        .map(|id| {
            Some(MetaNode::start(
                &tmp.path().join(format!("meta{id}")),
                "127.0.0.1:0",
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
        status(&addrs[0]).is_some_and(|(l, _)| l.is_some())
    });
    let gateway = Server::start_gateway(
        &tmp.path().join("gateway"),
        1,
        &addrs.join(","),
        &[("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)],
    );
    gateway.aws_ok(&["s3", "mb", "s3://bkt"]);
    let mut written = Vec::new();
    let put = |name: &str, seed: u64, written: &mut Vec<(String, String)>| {
        let f = tmp.path().join(name);
        write_random_file(&f, 200_000 + seed * 1000, seed);
        gateway.aws_ok(&["s3", "cp", f.to_str().unwrap(), &format!("s3://bkt/{name}")]);
        written.push((name.to_string(), file_hash(&f)));
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
    let (leader, _) = status(&addrs[0]).unwrap();
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
    for (name, hash) in &written {
        let out = tmp.path().join(format!("{name}.back"));
        gateway.aws_ok(&["s3", "cp", &format!("s3://bkt/{name}"), out.to_str().unwrap()]);
        assert_eq!(&file_hash(&out), hash, "{name}");
    }
}
