//! The metadata role: a Raft group (openraft) whose log and state machine live in RocksDB.
//!
//! Owns: starting and stopping the Raft node, its configuration, and the network it talks over.
//! This issue runs a single-member group; the network therefore refuses every call (there is
//! no peer to call), and the next issue replaces it with gRPC between meta-nodes.
//!
//! Must not depend on: S3, HTTP, the data path.

mod client;
pub mod network;

pub use client::{shared as local_client, LocalMetaClient};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_meta::{Command, KvRead, Response};
use cairn_meta_store::TypeConfig;
use cairn_meta_store::{StateMachine, StateReader};
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};

/// The Raft handle of this node.
pub type MetaRaft = Raft<TypeConfig, StateMachine>;

/// Why the metadata could not answer. Clients should retry: the group may be electing a
/// leader or shutting down.
#[derive(Debug, thiserror::Error)]
pub enum MetaUnavailable {
    /// Raft refused or failed the write.
    #[error("metadata unavailable: {0}")]
    Raft(String),
    /// Opening the store failed.
    #[error("metadata store: {0}")]
    Io(#[from] std::io::Error),
    /// The request cannot be done as asked (for example adding a member that is already in
    /// the group); retrying does not help.
    #[error("refused: {0}")]
    Refused(String),
    /// This node is not the leader: the request was not run here (safe to send to the
    /// leader). `leader` is its Raft address, when known.
    #[error("not the metadata leader (leader: {leader:?})")]
    NotLeader {
        /// The leader's address.
        leader: Option<String>,
    },
}

/// A failed membership change or write: `NotLeader` when refused before anything was appended.
fn write_error(
    e: openraft::error::RaftError<TypeConfig, openraft::error::ClientWriteError<TypeConfig>>,
) -> MetaUnavailable {
    use openraft::error::{ClientWriteError, RaftError};
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MetaUnavailable::NotLeader {
            leader: f.leader_node.map(|n| n.addr).filter(|a| !a.is_empty()),
        },
        e => MetaUnavailable::Raft(e.to_string()),
    }
}

/// How a meta-node makes a read linearizable before serving it from its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Raft read-index (the default): the leader confirms with a quorum that it still leads —
    /// a round of heartbeats per read — then waits until it has applied that far. Correct
    /// whatever the clocks do.
    #[default]
    ReadIndex,
    /// Leader lease: the leader serves a read without a round while its lease holds (it heard
    /// from a quorum within the last election timeout; followers elect no one else meanwhile).
    /// No network round per read, and linearizable in Cairn's partition test
    /// (`cluster-tests/tests/linearizable.rs`), but only while the members' clocks run at the
    /// same rate: a lease measured on one clock is honoured on another. A leader whose lease
    /// has lapsed refuses the read, which the client retries at the next node.
    Lease,
}

/// Raft settings of a meta-node.
#[derive(Clone, Copy, Debug)]
pub struct RaftTuning {
    /// A snapshot is built once this many entries were applied since the last one.
    pub snapshot_every_logs: u64,
    /// Entries kept in the log behind a snapshot (a follower further behind gets the snapshot).
    pub logs_kept_after_snapshot: u64,
    /// How reads are made linearizable.
    pub read_mode: ReadMode,
    /// The address this node's connections to its peers come from (its listen address's IP,
    /// so that peers and firewalls see one address per node); `None`: the system's choice.
    pub source_ip: Option<std::net::IpAddr>,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            snapshot_every_logs: 20_000,
            logs_kept_after_snapshot: 1_000,
            read_mode: ReadMode::ReadIndex,
            source_ip: None,
        }
    }
}

/// What a meta-node knows of its group (`cairn meta status`).
pub type MetaStatus = cairn_meta_client::GroupStatus;

/// A running metadata node.
#[derive(Clone)]
pub struct MetaNode {
    raft: MetaRaft,
    reader: StateReader,
    /// The database's directory.
    dir: std::path::PathBuf,
    admission: Arc<Admission>,
    /// The cluster secret, presented to peers' administration services. Never logged.
    secret: Arc<str>,
    read_mode: ReadMode,
}

/// Whether this node answers its group's Raft calls (see [`MetaNode::admit`]).
pub struct Admission {
    log: cairn_meta_store::LogStore,
    admitted: std::sync::atomic::AtomicBool,
    refused_once: std::sync::atomic::AtomicBool,
}

impl Admission {
    /// Whether this node was admitted to a group.
    pub fn is_admitted(&self) -> bool {
        self.admitted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Notes a refused Raft call: logged once, not once per heartbeat.
    pub(crate) fn refused(&self) {
        if !self.refused_once.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::error!(
                "a peer calls this meta-node as a member, but its data directory holds no group: \
                 it was lost or replaced. It answers no Raft call until removed (`cairn meta remove ID`) \
                 and added again (`cairn meta add ID=ADDR`)"
            );
        }
    }
}

/// Id of the only member of a single-node group.
pub const SINGLE_NODE_ID: u64 = 1;

impl MetaNode {
    /// Opens the metadata in `dir` and starts a single-member Raft group on it, initialising the
    /// group on first start. Returns once this node is leader and has applied everything it
    /// had committed before a restart.
    pub async fn open_single(dir: &Path) -> Result<Self, MetaUnavailable> {
        // A one-member group never calls a peer; the network is there for the type only.
        let node = Self::start(
            dir,
            SINGLE_NODE_ID,
            "single-node-group-has-no-peers",
            (150, 300),
            RaftTuning::default(),
        )
        .await?;
        node.admit().await?;
        let fresh = !node
            .raft
            .is_initialized()
            .await
            .map_err(|e| MetaUnavailable::Raft(e.to_string()))?;
        if fresh {
            let members = std::collections::BTreeMap::from([(SINGLE_NODE_ID, BasicNode::default())]);
            node.raft
                .initialize(members)
                .await
                .map_err(|e| MetaUnavailable::Raft(e.to_string()))?;
        }
        node.raft
            .wait(Some(Duration::from_secs(30)))
            .state(ServerState::Leader, "single node becomes leader")
            .await
            .map_err(|e| MetaUnavailable::Raft(e.to_string()))?;
        node.raft
            .wait_for_recovery(Some(Duration::from_secs(60)))
            .await
            .map_err(|e| MetaUnavailable::Raft(e.to_string()))?;
        Ok(node)
    }

    /// Opens the metadata in `dir` as member `id` of a group whose members talk gRPC with the
    /// cluster `secret`. Does not form a group: a new group is formed once, on one member,
    /// with [`MetaNode::initialize`]; a member restarted on its data rejoins by itself.
    pub async fn open(dir: &Path, id: u64, secret: &str) -> Result<Self, MetaUnavailable> {
        Self::open_with(dir, id, secret, RaftTuning::default()).await
    }

    /// [`MetaNode::open`] with Raft settings other than the defaults (tests use frequent
    /// snapshots).
    pub async fn open_with(dir: &Path, id: u64, secret: &str, tuning: RaftTuning) -> Result<Self, MetaUnavailable> {
        // Several processes share the machine's cores: a longer timeout than a lone node's
        // keeps a busy peer from being voted out between two heartbeats.
        Self::start(dir, id, secret, (300, 600), tuning).await
    }

    async fn start(
        dir: &Path,
        id: u64,
        secret: &str,
        election_ms: (u64, u64),
        tuning: RaftTuning,
    ) -> Result<Self, MetaUnavailable> {
        let network = network::GrpcNetwork::new(secret, tuning.source_ip).map_err(MetaUnavailable::Raft)?;
        let dir = dir.to_path_buf();
        let at = dir.clone();
        let (log, sm, reader, admitted) = tokio::task::spawn_blocking(move || {
            let (log, sm, reader) = cairn_meta_store::open(at)?;
            let admitted = log.is_admitted()?;
            Ok::<_, std::io::Error>((log, sm, reader, admitted))
        })
        .await
        .map_err(|e| MetaUnavailable::Raft(e.to_string()))??;
        let admission = Arc::new(Admission {
            log: log.clone(),
            admitted: admitted.into(),
            refused_once: false.into(),
        });
        let config = Config {
            cluster_name: "cairn-meta".into(),
            heartbeat_interval: 100,
            election_timeout_min: election_ms.0,
            election_timeout_max: election_ms.1,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every_logs),
            max_in_snapshot_log_to_keep: tuning.logs_kept_after_snapshot,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(|e| MetaUnavailable::Raft(e.to_string()))?);
        let raft = Raft::new(id, config, network, log, sm)
            .await
            .map_err(|e| MetaUnavailable::Raft(e.to_string()))?;
        Ok(Self {
            raft,
            reader,
            dir,
            admission,
            secret: secret.into(),
            read_mode: tuning.read_mode,
        })
    }

    /// Admits this node to a group, durably: from now on it answers the group's Raft calls.
    /// Done by [`MetaNode::initialize`] on every member and by [`MetaNode::add_member`] on
    /// the new one; a node whose data directory was lost is therefore refused until it is
    /// removed and added again.
    pub async fn admit(&self) -> Result<(), MetaUnavailable> {
        let admission = self.admission.clone();
        tokio::task::spawn_blocking(move || admission.log.admit())
            .await
            .map_err(|e| MetaUnavailable::Raft(e.to_string()))??;
        self.admission
            .admitted
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Whether this node answers its group's Raft calls (see [`MetaNode::admit`]).
    pub fn is_admitted(&self) -> bool {
        self.admission.is_admitted()
    }

    /// Admits the meta-node at `addr` through its administration service.
    async fn admit_peer(&self, addr: &str) -> Result<(), MetaUnavailable> {
        let mut peer = network::AdminClient::connect(addr, &self.secret)
            .await
            .map_err(MetaUnavailable::Raft)?;
        peer.admit().await.map_err(MetaUnavailable::Raft)
    }

    /// Forms a new group of `members` (id → gRPC address of its Raft service). Run once, on
    /// one member, once every member runs: admits each (so that each answers Raft), then
    /// writes the first membership. Fails if this node already belongs to a group.
    pub async fn initialize(&self, members: std::collections::BTreeMap<u64, String>) -> Result<(), MetaUnavailable> {
        if self
            .raft
            .is_initialized()
            .await
            .map_err(|e| MetaUnavailable::Raft(e.to_string()))?
        {
            return Err(MetaUnavailable::Refused("this node already belongs to a group".into()));
        }
        let me = self.raft.metrics().borrow_watched().id;
        for (id, addr) in &members {
            if *id == me {
                self.admit().await?;
            } else {
                self.admit_peer(addr).await?;
            }
        }
        let members = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect::<std::collections::BTreeMap<_, _>>();
        self.raft
            .initialize(members)
            .await
            .map_err(|e| MetaUnavailable::Raft(e.to_string()))
    }

    /// What this node knows of the group.
    pub fn status(&self) -> MetaStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let voters: std::collections::BTreeSet<u64> = m.membership_config.voter_ids().collect();
        MetaStatus {
            id: m.id,
            state: format!("{:?}", m.state),
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            admitted: self.is_admitted(),
            members: m
                .membership_config
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone(), voters.contains(id)))
                .collect(),
            lag: m
                .replication
                .iter()
                .flatten()
                .map(|(id, matched)| {
                    let behind = matched.map(|l| m.last_log_index.unwrap_or(0).saturating_sub(l.index));
                    (*id, behind)
                })
                .collect(),
        }
    }

    /// Index of the last log entry purged (folded into a snapshot), if any.
    pub fn purged_index(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().purged.map(|l| l.index)
    }

    /// Index of the last entry in this node's current snapshot (built or installed), if any.
    pub fn snapshot_index(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().snapshot.map(|l| l.index)
    }

    /// Publishes this node's Raft state as metrics (`cairn_raft_*`: term, leader or not, last
    /// log, applied and snapshot index, and on the leader each member's lag), updated on every
    /// change until the node stops. The process's metrics recorder shows them (`/metrics` of
    /// `cairn server`).
    pub fn publish_metrics(&self) -> tokio::task::JoinHandle<()> {
        let mut rx = self.raft.metrics();
        tokio::spawn(async move {
            loop {
                let m = rx.borrow_watched().clone();
                metrics::gauge!("cairn_raft_term").set(m.current_term as f64);
                metrics::gauge!("cairn_raft_is_leader").set(f64::from(u8::from(m.state == ServerState::Leader)));
                metrics::gauge!("cairn_raft_last_log_index").set(m.last_log_index.unwrap_or(0) as f64);
                metrics::gauge!("cairn_raft_applied_index").set(m.last_applied.map_or(0, |l| l.index) as f64);
                metrics::gauge!("cairn_raft_snapshot_index").set(m.snapshot.map_or(0, |l| l.index) as f64);
                for (id, matched) in m.replication.iter().flatten() {
                    let behind = m
                        .last_log_index
                        .unwrap_or(0)
                        .saturating_sub(matched.map_or(0, |l| l.index));
                    metrics::gauge!("cairn_raft_member_lag", "member" => id.to_string()).set(behind as f64);
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// The leader this node knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// The gRPC service peers call to reach this node's Raft, answering only calls with the
    /// cluster `secret`.
    pub fn raft_service(&self, secret: &str) -> network::SecuredRaft {
        network::RaftService::new(
            self.raft.clone(),
            self.admission.clone(),
            self.dir.join(cairn_meta_store::SNAPSHOT_DIR),
            secret,
        )
    }

    /// Adds node `id`, listening at `addr`, to the group: first as a learner, returning once it
    /// has caught up with the log, then as a voter. Run on the leader (elsewhere:
    /// [`MetaUnavailable::NotLeader`]).
    pub async fn add_member(&self, id: u64, addr: String) -> Result<(), MetaUnavailable> {
        let known = {
            let m = self.raft.metrics().borrow_watched().clone();
            if m.state != ServerState::Leader {
                let leader = m.current_leader.and_then(|l| {
                    m.membership_config
                        .nodes()
                        .find(|(n, _)| **n == l)
                        .map(|(_, n)| n.addr.clone())
                });
                return Err(MetaUnavailable::NotLeader { leader });
            }
            let known = m.membership_config.nodes().any(|(n, _)| *n == id);
            known
        };
        if known {
            // Admitting it again could let a member that lost its data vote as if it had not.
            return Err(MetaUnavailable::Refused(format!(
                "member {id} is already in the group: remove it first"
            )));
        }
        self.admit_peer(&addr).await?;
        self.raft
            .add_learner(id, BasicNode { addr }, true)
            .await
            .map_err(write_error)?;
        let voters = std::collections::BTreeSet::from([id]);
        self.raft
            .change_membership(openraft::ChangeMembers::AddVoterIds(voters), false)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    /// Removes member `id` from the group (the leader itself included: it hands over). Run on
    /// the leader.
    pub async fn remove_member(&self, id: u64) -> Result<(), MetaUnavailable> {
        let ids = std::collections::BTreeSet::from([id]);
        self.raft
            .change_membership(openraft::ChangeMembers::RemoveVoters(ids), false)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    /// Replicates `cmd` and returns its outcome once it is committed and applied. On a node
    /// that is not the leader, fails with [`MetaUnavailable::NotLeader`] before anything is
    /// appended; any other failure may or may not have committed the command.
    pub async fn propose(&self, cmd: Command) -> Result<Response, MetaUnavailable> {
        self.raft.client_write(cmd).await.map(|r| r.data).map_err(write_error)
    }

    /// Returns once every write acknowledged before the call is applied here, so that a read
    /// of [`MetaNode::reader`] that follows is linearizable (by the node's [`ReadMode`]: Raft
    /// read-index — the leader confirms with a quorum that it still leads — or its lease). On a node that is not the leader, fails
    /// with [`MetaUnavailable::NotLeader`]. A single-member group skips the round: its one
    /// member applies every write before acknowledging it.
    pub async fn linearize(&self) -> Result<(), MetaUnavailable> {
        use openraft::error::{LinearizableReadError, RaftError};
        let voters = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .voter_ids()
            .count();
        if voters <= 1 && self.is_leader() {
            return Ok(());
        }
        let policy = match self.read_mode {
            ReadMode::ReadIndex => openraft::raft::ReadPolicy::ReadIndex,
            ReadMode::Lease => openraft::raft::ReadPolicy::LeaseRead,
        };
        match self.raft.ensure_linearizable(policy).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => Err(MetaUnavailable::NotLeader {
                leader: f.leader_node.map(|n| n.addr).filter(|a| !a.is_empty()),
            }),
            Err(e) => Err(MetaUnavailable::Raft(e.to_string())),
        }
    }

    /// A reader of the applied state. On a single-member group every acknowledged write is
    /// applied before it is acknowledged, so reads through it see every acknowledged write.
    /// Its calls block: run them in `spawn_blocking`.
    pub fn reader(&self) -> Arc<dyn KvRead + Send + Sync> {
        Arc::new(self.reader.clone())
    }

    /// Whether this node is the leader (ready to take writes).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}
