//! Linearizability of the metadata under faults: four S3 clients run GET, PUT, conditional PUT
//! and DELETE on three keys through two gateways (one only reads: it stays on a deposed leader
//! for as long as that leader answers it) while the meta-node group's leader is cut off from
//! its peers (twice; clients still reach it: a deposed leader must not answer as if it still
//! led) and killed with -9 (once). Every key's history must be linearizable
//! (`cairn_cluster_tests::linearizability`, which has its own tests of histories it rejects).

use std::time::Duration;

use cairn_cluster_tests::faults::{node_ip, Partitions, Proxy};
use cairn_cluster_tests::linearizability::{check, Event, Outcome};
use cairn_cluster_tests::{assert_ok, read_counter, wait_for, MetaNode, Server, TestDir, CLUSTER_SECRET};

#[test]
fn histories_stay_linearizable_through_leader_partitions_and_kills() {
    run(&[]);
}

#[test]
fn lease_reads_stay_linearizable_through_leader_partitions_and_kills() {
    run(&["--read-mode", "lease"]);
}

fn run(flags: &[&str]) {
    let tmp = TestDir::new();
    let partitions = Partitions::new();
    let mut nodes: Vec<MetaNode> = (1..=3u64)
        .map(|id| {
            MetaNode::start_with(
                &tmp.path().join(format!("meta{id}")),
                &format!("{}:0", node_ip(id)),
                Some(id),
                flags,
            )
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let proxies: Vec<Proxy> = addrs
        .iter()
        .map(|a| Proxy::start(a.parse().unwrap(), &partitions))
        .collect();
    // Peers know each other by their proxies.
    let members = format!("1={},2={},3={}", proxies[0].addr, proxies[1].addr, proxies[2].addr);
    assert_ok(
        &MetaNode::meta_cmd(&["init", "--meta", &addrs[0], &members]),
        "cairn meta init",
    );
    wait_for("a leader", Duration::from_secs(30), || {
        MetaNode::leader(&addrs[0]).is_some()
    });
    let gateway = Server::start_gateway(
        &tmp.path().join("gateway"),
        3,
        &addrs.join(","),
        &[("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)],
    );
    let reads_gateway = Server::start_gateway(
        &tmp.path().join("reads-gateway"),
        3,
        &addrs.join(","),
        &[("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)],
    );
    let work = tmp.path().join("linear");
    std::fs::create_dir(&work).unwrap();
    let clients = gateway
        .python_command("linear.py", &["run", work.to_str().unwrap(), "4"])
        .env("CAIRN_S3_READS", &reads_gateway.s3)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Waits until `by` more writes got a definite answer.
    let advance = |what: &str, by: u64| {
        let at = read_counter(&work, "writes");
        wait_for(what, Duration::from_secs(120), || {
            read_counter(&work, "writes") >= at + by
        });
    };
    advance("traffic", 30);

    for round in 0..2 {
        let leader = (0..3).find_map(|i| MetaNode::leader(&addrs[i])).expect("a leader");
        partitions.isolate(node_ip(leader));
        let other = &addrs[(leader as usize) % 3];
        wait_for("a leader among the others", Duration::from_secs(30), || {
            MetaNode::leader(other).is_some_and(|l| l != leader)
        });
        // The main gateway leaves the old leader once a write there times out; writes
        // acknowledged by the new leader follow, while the reading gateway may still be on
        // the old one.
        advance("writes while the old leader is cut off", 30);
        partitions.heal();
        wait_for(
            "the old leader to learn it was deposed",
            Duration::from_secs(30),
            || MetaNode::leader(&addrs[leader as usize - 1]).is_some_and(|l| l != leader),
        );
        advance("writes after healing", 20);
        eprintln!("partition {round}: leader {leader} cut off and healed");
    }
    let leader = (0..3).find_map(|i| MetaNode::leader(&addrs[i])).expect("a leader") as usize;
    nodes[leader - 1].kill9();
    let other = &addrs[leader % 3];
    wait_for("a new leader", Duration::from_secs(30), || {
        MetaNode::leader(other).is_some_and(|l| l as usize != leader)
    });
    advance("writes without the killed leader", 20);
    nodes[leader - 1] = MetaNode::start_with(
        &tmp.path().join(format!("meta{leader}")),
        &addrs[leader - 1],
        Some(leader as u64),
        flags,
    );
    advance("writes after the restart", 20);

    std::fs::write(work.join("stop"), b"").unwrap();
    let out = clients.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut by_key: std::collections::BTreeMap<String, Vec<Event>> = Default::default();
    for entry in std::fs::read_dir(&work).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("history-") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let e: Event = serde_json::from_str(line).unwrap_or_else(|err| panic!("{line}: {err}"));
                by_key.entry(e.key.clone()).or_default().push(e);
            }
        }
    }
    let mut reads = 0;
    for (key, history) in &by_key {
        let definite = history.iter().filter(|e| e.outcome != Outcome::Unknown).count();
        reads += history
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Found { .. }))
            .count();
        eprintln!(
            "key {key}: {} operations, {definite} with a known outcome",
            history.len()
        );
        assert!(check(None, history), "the history of {key} is not linearizable");
    }
    assert_eq!(by_key.len(), 3);
    assert!(
        reads > 50,
        "too few reads found a value ({reads}) for the check to mean much"
    );
}
