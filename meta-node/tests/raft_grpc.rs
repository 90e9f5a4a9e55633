//! Three meta-nodes in one group, Raft over real gRPC on OS-chosen ports: a write through the
//! leader is applied on every member; with the leader stopped, the two others elect a new one
//! that has every acknowledged write and takes new ones; a follower that was down while the
//! leader snapshotted and purged its log catches up by a snapshot sent over gRPC.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_meta::{query, BucketRecord, Command, Response};
use cairn_meta_node::MetaNode;

const SECRET: &str = "raft-test-cluster-secret";

struct Member {
    node: MetaNode,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn member(id: u64) -> (Member, String) {
    let dir = tempfile::tempdir().unwrap();
    let node = MetaNode::open(dir.path(), id, SECRET).await.unwrap();
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .with_nodelay(Some(true));
    let addr = incoming.local_addr().unwrap().to_string();
    let service = node.raft_service(SECRET);
    let admin = cairn_meta_node::network::AdminService::new(node.clone(), SECRET);
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .add_service(admin)
            .serve_with_incoming(incoming)
            .await;
    });
    (
        Member {
            node,
            server,
            _dir: dir,
        },
        addr,
    )
}

/// Waits (bounded) until `cond` holds, yielding to the runtime in between.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn bucket(name: &str) -> Command {
    Command::CreateBucket {
        bucket: BucketRecord {
            name: name.into(),
            owner: "me".into(),
            created: 1,
        },
    }
}

fn has_bucket(node: &MetaNode, name: &str) -> bool {
    query::bucket(&*node.reader(), name).unwrap().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_and_survive_the_loss_of_their_leader() {
    let mut members = Vec::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3 {
        let (m, addr) = member(id).await;
        members.push(m);
        addrs.insert(id, addr);
    }
    members[0].node.initialize(addrs).await.unwrap();
    wait_for("a leader known to all", || {
        let l = members[0].node.leader();
        l.is_some() && members.iter().all(|m| m.node.leader() == l)
    })
    .await;
    let leader = members[0].node.leader().unwrap();
    let li = (leader - 1) as usize;
    assert_eq!(members[li].node.propose(bucket("first")).await.unwrap(), Response::Done);
    wait_for("the write applied on every member", || {
        members.iter().all(|m| has_bucket(&m.node, "first"))
    })
    .await;
    // The leader reports each member's lag, down to nothing once replicated.
    wait_for("no member behind the leader", || {
        let lag = members[li].node.status().lag;
        lag.len() == 3 && lag.iter().all(|(_, behind)| *behind == Some(0))
    })
    .await;

    // The leader goes away.
    let gone = members.remove(li);
    gone.node.shutdown().await;
    gone.server.abort();
    wait_for("a new leader among the two left", || {
        let l = members[0].node.leader();
        l.is_some_and(|l| l != leader) && members.iter().all(|m| m.node.leader() == l)
    })
    .await;
    let new_leader = members[0].node.leader().unwrap();
    let next = members
        .iter()
        .find(|m| m.node.is_leader())
        .expect("the new leader is a member");
    assert!(
        has_bucket(&next.node, "first"),
        "the new leader lost an acknowledged write"
    );
    assert_eq!(next.node.propose(bucket("second")).await.unwrap(), Response::Done);
    wait_for("the new write on both members", || {
        members.iter().all(|m| has_bucket(&m.node, "second"))
    })
    .await;
    assert_ne!(new_leader, leader);
    for m in members {
        m.node.shutdown().await;
        m.server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_secret_gets_no_vote() {
    let (a, addr_a) = member(1).await;
    let dir = tempfile::tempdir().unwrap();
    // Node 2 knows a different secret: node 1 refuses its calls, so no group forms and node 2
    // cannot become leader of a group holding node 1.
    let stranger = MetaNode::open(dir.path(), 2, "another-secret-entirely").await.unwrap();
    let mut members = BTreeMap::new();
    members.insert(1, addr_a);
    members.insert(2, "127.0.0.1:1".to_string());
    let refused = stranger.initialize(members).await.unwrap_err();
    assert!(refused.to_string().contains("secret"), "{refused}");
    assert!(!a.node.is_admitted(), "admitted by a peer without the secret");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!stranger.is_leader(), "elected without a majority");
    assert_eq!(a.node.leader(), None);
    stranger.shutdown().await;
    a.node.shutdown().await;
    a.server.abort();
}

/// A member serving on a given address (a restart on the address the group knows), and the
/// switch that stops its server, closing its connections as a process exit would.
async fn member_at(
    dir: &std::path::Path,
    id: u64,
    addr: &str,
    tuning: cairn_meta_node::RaftTuning,
) -> (MetaNode, Stop) {
    let node = MetaNode::open_with(dir, id, SECRET, tuning).await.unwrap();
    let incoming = tonic::transport::server::TcpIncoming::bind(addr.parse().unwrap()).unwrap();
    let service = node.raft_service(SECRET);
    let admin = cairn_meta_node::network::AdminService::new(node.clone(), SECRET);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .add_service(admin)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
    });
    (node, Stop { tx, task })
}

/// Stops a member's server.
struct Stop {
    tx: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Stop {
    async fn stop(self) {
        let _ = self.tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_catches_up_by_snapshot() {
    let tuning = cairn_meta_node::RaftTuning {
        snapshot_every_logs: 50,
        logs_kept_after_snapshot: 5,
        ..Default::default()
    };
    let (dirs, addrs) = places(3);
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(member_at(dirs[i].path(), i as u64 + 1, &addrs[i], tuning).await);
    }
    let members: BTreeMap<u64, String> = (0..3).map(|i| (i as u64 + 1, addrs[i].clone())).collect();
    nodes[0].0.initialize(members).await.unwrap();
    wait_for("a leader", || nodes.iter().all(|(n, _)| n.leader().is_some())).await;
    let leader = nodes[0].0.leader().unwrap() as usize - 1;
    // A follower stops.
    let behind = (leader + 1) % 3;
    let (stopped, server) = nodes.remove(behind);
    stopped.shutdown().await;
    server.stop().await;
    drop(stopped);
    let lead = nodes
        .iter()
        .find(|(n, _)| n.is_leader())
        .map(|(n, _)| n.clone())
        .unwrap();
    // 200 records of 20 KB: a snapshot of several transfer pieces.
    let owner = "o".repeat(20_000);
    for i in 0..200 {
        let cmd = Command::CreateBucket {
            bucket: BucketRecord {
                name: format!("b{i:03}"),
                owner: owner.clone(),
                created: 1,
            },
        };
        assert_eq!(lead.propose(cmd).await.unwrap(), Response::Done);
    }
    wait_for("the leader to snapshot and purge its log", || {
        let s = lead.status();
        s.applied_index.is_some_and(|a| a >= 200) && lead.purged_index().is_some_and(|p| p > 50)
    })
    .await;
    // Back on its data: the entries it misses are gone from the leader's log.
    let (back, server) = member_at(dirs[behind].path(), behind as u64 + 1, &addrs[behind], tuning).await;
    wait_for("the follower to install the snapshot", || has_bucket(&back, "b199")).await;
    let first = query::bucket(&*back.reader(), "b000").unwrap().unwrap();
    assert_eq!(first.owner, owner);
    assert!(back.snapshot_index().is_some(), "caught up without a snapshot");
    let snapshots = dirs[behind].path().join(cairn_meta_store::SNAPSHOT_DIR);
    let files: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one snapshot file: {files:?}");
    let size = std::fs::metadata(&files[0]).unwrap().len() as usize;
    assert!(
        size > 3 * cairn_meta_node::network::SNAPSHOT_PIECE_BYTES,
        "the snapshot ({size} B) travelled in several pieces"
    );
    back.shutdown().await;
    server.stop().await;
    for (n, s) in nodes {
        n.shutdown().await;
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_grows_to_five_loses_its_leader_and_shrinks_back_to_three() {
    let tuning = cairn_meta_node::RaftTuning::default();
    let (dirs, addrs) = places(5);
    let mut nodes = BTreeMap::new();
    for i in 0..5 {
        nodes.insert(
            i as u64 + 1,
            member_at(dirs[i].path(), i as u64 + 1, &addrs[i], tuning).await,
        );
    }
    let first: BTreeMap<u64, String> = (0..3).map(|i| (i as u64 + 1, addrs[i].clone())).collect();
    nodes[&1].0.initialize(first).await.unwrap();
    wait_for("a leader", || leader_of(&nodes).is_some()).await;
    write(&nodes, "w001").await;

    // Grow: 4 and 5 join as learners, catch up, become voters. A follower refuses to do it.
    let follower = nodes.values().find(|(n, _)| !n.is_leader()).unwrap().0.clone();
    assert!(matches!(
        follower.add_member(4, addrs[3].clone()).await,
        Err(cairn_meta_node::MetaUnavailable::NotLeader { leader: Some(_) })
    ));
    for id in [4u64, 5] {
        leader_of(&nodes)
            .unwrap()
            .add_member(id, addrs[id as usize - 1].clone())
            .await
            .unwrap();
        write(&nodes, &format!("w00{id}")).await;
    }
    let voters = |node: &MetaNode| node.status().members.iter().filter(|m| m.2).count();
    wait_for("five voters everywhere", || nodes.values().all(|(n, _)| voters(n) == 5)).await;

    // The leader is removed from the group; another takes over.
    let old = leader_of(&nodes).unwrap();
    let old_id = old.status().id;
    old.remove_member(old_id).await.unwrap();
    wait_for("a leader among the four left", || {
        nodes.iter().any(|(id, (n, _))| *id != old_id && n.is_leader())
    })
    .await;
    let (gone, server) = nodes.remove(&old_id).unwrap();
    gone.shutdown().await;
    server.stop().await;
    write(&nodes, "w006").await;

    // Shrink back to three.
    let extra = *nodes
        .keys()
        .find(|id| !leader_of(&nodes).unwrap().status().id.eq(id))
        .unwrap();
    leader_of(&nodes).unwrap().remove_member(extra).await.unwrap();
    let (gone, server) = nodes.remove(&extra).unwrap();
    gone.shutdown().await;
    server.stop().await;
    wait_for("three voters everywhere", || {
        nodes.values().all(|(n, _)| voters(n) == 3)
    })
    .await;
    write(&nodes, "w007").await;
    // Every member holds every write.
    wait_for("all writes on all members", || {
        nodes
            .values()
            .all(|(n, _)| [1, 4, 5, 6, 7].iter().all(|i| has_bucket(n, &format!("w{i:03}"))))
    })
    .await;
    for (_, (n, s)) in nodes {
        n.shutdown().await;
        s.stop().await;
    }
}

fn leader_of(nodes: &BTreeMap<u64, (MetaNode, Stop)>) -> Option<MetaNode> {
    nodes.values().find(|(n, _)| n.is_leader()).map(|(n, _)| n.clone())
}

/// Proposes bucket `name` at whichever member leads, as the gateway's client does: again
/// where a refusal before append (`NotLeader`) points, while leadership moves.
async fn write(nodes: &BTreeMap<u64, (MetaNode, Stop)>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(leader) = leader_of(nodes) {
            match leader.propose(bucket(name)).await {
                Ok(r) => {
                    assert_eq!(r, Response::Done, "{name}");
                    return;
                }
                Err(cairn_meta_node::MetaUnavailable::NotLeader { .. }) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert!(Instant::now() < deadline, "no leader took {name}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` data directories and `n` free addresses on 127.0.0.1, chosen by the OS.
fn places(n: usize) -> (Vec<tempfile::TempDir>, Vec<String>) {
    // Each call gets a loopback address of its own (127.0.2.x): a port picked there and
    // released cannot be taken meanwhile by the ephemeral port of a connection (those are on
    // 127.0.0.1) or by another test, so a member can bind it — and bind it again on restart.
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
    let ip = format!("127.0.2.{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let dirs = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs = (0..n)
        .map(|_| {
            let l = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
            l.local_addr().unwrap().to_string()
        })
        .collect();
    (dirs, addrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_data_is_lost_is_refused_until_removed_and_added_again() {
    let tuning = cairn_meta_node::RaftTuning::default();
    let (dirs, addrs) = places(3);
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(member_at(dirs[i].path(), i as u64 + 1, &addrs[i], tuning).await);
    }
    let members: BTreeMap<u64, String> = (0..3).map(|i| (i as u64 + 1, addrs[i].clone())).collect();
    nodes[0].0.initialize(members).await.unwrap();
    wait_for("a leader", || nodes.iter().all(|(n, _)| n.leader().is_some())).await;
    let lead = |nodes: &[(MetaNode, Stop)]| nodes.iter().find(|(n, _)| n.is_leader()).map(|(n, _)| n.clone());
    // A new leader may refuse a write until a quorum has acknowledged it (its lease): retry at
    // whichever node leads, bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        if let Some(l) = lead(&nodes) {
            match l.propose(bucket("before")).await {
                Ok(r) => {
                    assert_eq!(r, Response::Done);
                    break l;
                }
                Err(e) => assert!(Instant::now() < deadline, "no leader took the write: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // A follower loses its data directory and comes back on the same address, empty.
    let lost = (leader.status().id as usize) % 3;
    let lost_id = lost as u64 + 1;
    let (node, server) = nodes.remove(lost);
    node.shutdown().await;
    server.stop().await;
    drop(node);
    let fresh = tempfile::tempdir().unwrap();
    let (back, server) = member_at(fresh.path(), lost_id, &addrs[lost], tuning).await;
    assert!(!back.is_admitted());
    assert_eq!(leader.propose(bucket("while-out")).await.unwrap(), Response::Done);
    // It answers no Raft call: no entry, no vote, nothing applied, while the group goes on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = back.status();
    assert_eq!((s.last_log_index, s.applied_index, s.term), (None, None, 0), "{s:?}");
    assert!(!has_bucket(&back, "before"));
    // Adding it while it is still a member is refused.
    let refused = leader.add_member(lost_id, addrs[lost].clone()).await.unwrap_err();
    assert!(refused.to_string().contains("already in the group"), "{refused}");

    // Removed, then added again: it catches up with everything.
    leader.remove_member(lost_id).await.unwrap();
    leader.add_member(lost_id, addrs[lost].clone()).await.unwrap();
    assert!(back.is_admitted());
    wait_for("the re-added member to catch up", || has_bucket(&back, "while-out")).await;
    assert!(has_bucket(&back, "before"));
    assert!(leader
        .status()
        .members
        .iter()
        .any(|(id, _, voter)| *id == lost_id && *voter));

    back.shutdown().await;
    server.stop().await;
    for (n, s) in nodes {
        n.shutdown().await;
        s.stop().await;
    }
}
