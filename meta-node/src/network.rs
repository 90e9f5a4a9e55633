//! Raft between meta-nodes over gRPC (`proto/raft.proto`): [`GrpcNetwork`], the client side
//! openraft calls to reach a peer, and [`RaftService`], the server side that hands a peer's
//! calls to the local Raft node. Each peer has one HTTP/2 channel (made on first use, shared
//! by every call to it), every call carries the cluster secret, and a call that cannot reach
//! the peer is `Unreachable` (openraft backs off).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_meta::{decode, encode};
use cairn_meta_store::{IncomingSnapshot, SnapshotFile, TypeConfig};
use cairn_proto::raft::raft_client::RaftClient;
use cairn_proto::raft::raft_server::{Raft as RaftRpc, RaftServer};
use cairn_proto::raft::{RaftPayload, SnapshotPiece};
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::error::{NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{AnyError, BasicNode, OptionalSend};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::MetaRaft;

/// The request header carrying the cluster's shared secret (the metadata API's).
const SECRET_HEADER: &str = cairn_meta_client::grpc::SECRET_HEADER;

/// Largest Raft message: a batch of log entries (one command may carry the manifest of a
/// very large object). Snapshots travel in pieces of [`SNAPSHOT_PIECE_BYTES`].
pub const MAX_RAFT_MESSAGE_BYTES: usize = 1 << 30;

/// Size of one piece of a snapshot transfer: sender and receiver each hold a couple of pieces,
/// whatever the size of the snapshot.
pub const SNAPSHOT_PIECE_BYTES: usize = 1 << 20;

/// Makes a [`GrpcPeer`] for each peer openraft replicates to.
#[derive(Clone)]
pub struct GrpcNetwork {
    secret: tonic::metadata::AsciiMetadataValue,
    source_ip: Option<std::net::IpAddr>,
}

impl GrpcNetwork {
    /// A network whose calls carry the cluster `secret` (printable ASCII) and, with
    /// `source_ip`, leave from that address.
    pub fn new(secret: &str, source_ip: Option<std::net::IpAddr>) -> Result<Self, String> {
        Ok(Self {
            secret: secret
                .parse()
                .map_err(|_| "the cluster secret must be printable ASCII".to_string())?,
            source_ip,
        })
    }
}

/// The client of one peer.
pub struct GrpcPeer {
    client: Option<RaftClient<Channel>>,
    addr: String,
    secret: tonic::metadata::AsciiMetadataValue,
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = GrpcPeer;

    async fn new_client(&mut self, _target: u64, node: &BasicNode) -> Self::Network {
        let client = Endpoint::from_shared(format!("http://{}", node.addr)).ok().map(|e| {
            let channel = e
                .local_address(self.source_ip)
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .connect_lazy();
            RaftClient::new(channel)
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        });
        GrpcPeer {
            client,
            addr: node.addr.clone(),
            secret: self.secret.clone(),
        }
    }
}

fn unreachable(what: impl std::fmt::Display) -> Unreachable<TypeConfig> {
    Unreachable::new(&AnyError::error(what.to_string()))
}

impl GrpcPeer {
    /// Sends `body` with `rpc`, within `timeout`; decodes the answer.
    async fn call<T, F, Fut>(&self, body: Vec<u8>, timeout: Duration, rpc: F) -> Result<T, Unreachable<TypeConfig>>
    where
        T: DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, tonic::Request<RaftPayload>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        let client = self
            .client
            .clone()
            .ok_or_else(|| unreachable(format!("invalid peer address {:?}", self.addr)))?;
        let mut request = tonic::Request::new(RaftPayload { body });
        request.set_timeout(timeout);
        request.metadata_mut().insert(SECRET_HEADER, self.secret.clone());
        let answer = rpc(client, request)
            .await
            .map_err(|s| unreachable(format!("{}: {}: {}", self.addr, s.code(), s.message())))?;
        decode(&answer.into_inner().body).map_err(|e| unreachable(format!("{}: undecodable answer: {e}", self.addr)))
    }
}

/// A peer's refusal, as a network error: openraft retries.
fn remote<E: std::fmt::Display>(e: E) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&AnyError::error(format!("the peer refused: {e}"))))
}

/// Reads `file` in pieces into `tx`, the header first; stops when the receiver is gone.
fn send_pieces(file: Arc<SnapshotFile>, header: Vec<u8>, tx: tokio::sync::mpsc::Sender<SnapshotPiece>) {
    let first = SnapshotPiece {
        header,
        data: Vec::new(),
    };
    if tx.blocking_send(first).is_err() {
        return;
    }
    let mut at = 0u64;
    loop {
        let mut data = vec![0u8; SNAPSHOT_PIECE_BYTES];
        let n = match file.read_at(&mut data, at) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                // Ending the stream early: the receiver's check of the file refuses it.
                tracing::warn!(error = %e, "reading a snapshot to send");
                return;
            }
        };
        data.truncate(n);
        at += n as u64;
        if tx
            .blocking_send(SnapshotPiece {
                header: Vec::new(),
                data,
            })
            .is_err()
        {
            return;
        }
    }
}

impl RaftNetworkV2<TypeConfig> for GrpcPeer {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let answer: Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> = self
            .call(encode(&rpc), option.hard_ttl(), |mut c, r| async move {
                c.append_entries(r).await
            })
            .await?;
        answer.map_err(remote)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let answer: Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>> = self
            .call(
                encode(&rpc),
                option.hard_ttl(),
                |mut c, r| async move { c.vote(r).await },
            )
            .await?;
        answer.map_err(remote)
    }

    /// Streams the snapshot file in pieces of [`SNAPSHOT_PIECE_BYTES`], read off the async
    /// threads; no deadline on the whole transfer (its size is unbounded), but a dead peer is
    /// found by HTTP/2 keep-alive, and `cancel` (replication closed) stops it.
    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self
            .client
            .clone()
            .ok_or_else(|| unreachable(format!("invalid peer address {:?}", self.addr)))?;
        let header = encode(&(vote, snapshot.meta));
        let file = Arc::new(snapshot.snapshot);
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let reader = tokio::task::spawn_blocking(move || send_pieces(file, header, tx));
        let pieces = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut request = tonic::Request::new(pieces);
        request.metadata_mut().insert(SECRET_HEADER, self.secret.clone());
        let sent = tokio::select! {
            sent = client.install_snapshot(request) => sent,
            closed = cancel => {
                reader.abort();
                return Err(StreamingError::Closed(closed));
            }
        };
        let answer = sent.map_err(|s| unreachable(format!("{}: {}: {}", self.addr, s.code(), s.message())))?;
        let answer: Result<SnapshotResponse<TypeConfig>, openraft::error::Fatal<TypeConfig>> =
            decode(&answer.into_inner().body)
                .map_err(|e| unreachable(format!("{}: undecodable answer: {e}", self.addr)))?;
        answer.map_err(|e| StreamingError::Unreachable(unreachable(format!("the peer failed: {e}"))))
    }
}

/// The server side of Raft between meta-nodes: hands each call to the local node.
pub struct RaftService {
    raft: MetaRaft,
    admission: Arc<crate::Admission>,
    /// Where snapshots being received are written.
    snapshot_dir: PathBuf,
}

/// The Raft service behind the check of the cluster secret.
pub type SecuredRaft =
    tonic::service::interceptor::InterceptedService<RaftServer<RaftService>, cairn_meta_client::grpc::SecretCheck>;

impl RaftService {
    /// The service for `raft`, answering only calls that carry the cluster `secret`.
    /// Calls are refused (`FAILED_PRECONDITION`) until the node is admitted to a group.
    pub fn new(raft: MetaRaft, admission: Arc<crate::Admission>, snapshot_dir: PathBuf, secret: &str) -> SecuredRaft {
        let server = RaftServer::new(Self {
            raft,
            admission,
            snapshot_dir,
        })
        .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        tonic::service::interceptor::InterceptedService::new(server, cairn_meta_client::grpc::SecretCheck::new(secret))
    }
}

fn payload<T: Serialize>(t: &T) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
    Ok(tonic::Response::new(RaftPayload { body: encode(t) }))
}

fn storage_failed(e: std::io::Error) -> tonic::Status {
    tonic::Status::unavailable(format!("receiving a snapshot: {e}"))
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, tonic::Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .map_err(storage_failed)
}

fn bad_request(e: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::invalid_argument(format!("undecodable Raft message: {e}"))
}

impl RaftService {
    fn check_admitted(&self) -> Result<(), tonic::Status> {
        if self.admission.is_admitted() {
            return Ok(());
        }
        self.admission.refused();
        Err(tonic::Status::failed_precondition(
            "this meta-node holds no data of any group (new or lost data directory): remove it and add it again",
        ))
    }
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        req: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        self.check_admitted()?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&req.into_inner().body).map_err(bad_request)?;
        payload(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: tonic::Request<RaftPayload>) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        self.check_admitted()?;
        let rpc: VoteRequest<TypeConfig> = decode(&req.into_inner().body).map_err(bad_request)?;
        payload(&self.raft.vote(rpc).await)
    }

    /// Writes the pieces to a file of the snapshot directory (one piece in memory at a time),
    /// checks the whole file, then installs it.
    async fn install_snapshot(
        &self,
        req: tonic::Request<tonic::Streaming<SnapshotPiece>>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        self.check_admitted()?;
        let mut pieces = req.into_inner();
        let first = pieces
            .message()
            .await?
            .ok_or_else(|| bad_request("an empty snapshot stream"))?;
        let (vote, meta): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>) =
            decode(&first.header).map_err(bad_request)?;
        let dir = self.snapshot_dir.clone();
        let mut incoming = blocking(move || IncomingSnapshot::create(&dir)).await?;
        incoming.write(&first.data).map_err(storage_failed)?;
        while let Some(piece) = pieces.message().await? {
            incoming = blocking(move || incoming.write(&piece.data).map(|()| incoming)).await?;
        }
        let file = blocking(move || incoming.finish())
            .await
            .map_err(|e| tonic::Status::data_loss(e.message().to_string()))?;
        let snapshot = SnapshotOf::<TypeConfig, SnapshotFile> { meta, snapshot: file };
        payload(&self.raft.install_full_snapshot(vote, snapshot).await)
    }
}

/// The administration service of a meta-node (`proto/raft.proto`, `MetaAdmin`).
pub struct AdminService {
    node: crate::MetaNode,
}

/// The administration service behind the check of the cluster secret.
pub type SecuredAdmin = tonic::service::interceptor::InterceptedService<
    cairn_proto::raft::meta_admin_server::MetaAdminServer<AdminService>,
    cairn_meta_client::grpc::SecretCheck,
>;

impl AdminService {
    /// The service for `node`, answering only calls that carry the cluster `secret`.
    pub fn new(node: crate::MetaNode, secret: &str) -> SecuredAdmin {
        tonic::service::interceptor::InterceptedService::new(
            cairn_proto::raft::meta_admin_server::MetaAdminServer::new(Self { node }),
            cairn_meta_client::grpc::SecretCheck::new(secret),
        )
    }
}

#[tonic::async_trait]
impl cairn_proto::raft::meta_admin_server::MetaAdmin for AdminService {
    async fn initialize(
        &self,
        req: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let members: std::collections::BTreeMap<u64, String> = decode(&req.into_inner().body).map_err(bad_request)?;
        let done: Result<(), String> = self.node.initialize(members).await.map_err(|e| e.to_string());
        payload(&done)
    }

    async fn admit(&self, _req: tonic::Request<RaftPayload>) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let done: Result<(), String> = self.node.admit().await.map_err(|e| e.to_string());
        payload(&done)
    }

    async fn status(&self, _req: tonic::Request<RaftPayload>) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        payload(&self.node.status())
    }

    async fn add_member(
        &self,
        req: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let (id, addr): (u64, String) = decode(&req.into_inner().body).map_err(bad_request)?;
        payload(&admin_answer(self.node.add_member(id, addr).await))
    }

    async fn remove_member(
        &self,
        req: tonic::Request<RaftPayload>,
    ) -> Result<tonic::Response<RaftPayload>, tonic::Status> {
        let id: u64 = decode(&req.into_inner().body).map_err(bad_request)?;
        payload(&admin_answer(self.node.remove_member(id).await))
    }
}

/// The outcome of a membership change, as the administration API answers it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum AdminAnswer {
    /// Done.
    Done,
    /// Ask the leader (its address, when known).
    NotLeader(Option<String>),
    /// Failed.
    Failed(String),
}

fn admin_answer(r: Result<(), crate::MetaUnavailable>) -> AdminAnswer {
    match r {
        Ok(()) => AdminAnswer::Done,
        Err(crate::MetaUnavailable::NotLeader { leader }) => AdminAnswer::NotLeader(leader),
        Err(e) => AdminAnswer::Failed(e.to_string()),
    }
}

/// A client of a meta-node's administration service.
pub struct AdminClient {
    client: cairn_proto::raft::meta_admin_client::MetaAdminClient<Channel>,
    secret: tonic::metadata::AsciiMetadataValue,
}

impl AdminClient {
    /// Connects to the meta-node at `addr`.
    pub async fn connect(addr: &str, secret: &str) -> Result<Self, String> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        Ok(Self {
            client: cairn_proto::raft::meta_admin_client::MetaAdminClient::new(channel),
            secret: secret
                .parse()
                .map_err(|_| "the cluster secret must be printable ASCII".to_string())?,
        })
    }

    fn request<T: Serialize>(&self, t: &T) -> tonic::Request<RaftPayload> {
        let mut r = tonic::Request::new(RaftPayload { body: encode(t) });
        r.metadata_mut().insert(SECRET_HEADER, self.secret.clone());
        r
    }

    /// Forms a new group of `members` (id -> address).
    pub async fn initialize(&mut self, members: std::collections::BTreeMap<u64, String>) -> Result<(), String> {
        let r = self.request(&members);
        let answer = self.client.initialize(r).await.map_err(|s| s.message().to_string())?;
        decode::<Result<(), String>>(&answer.into_inner().body).map_err(|e| e.to_string())?
    }

    /// Adds member `id` at `addr` (learner, then voter). Must reach the leader.
    pub async fn add_member(&mut self, id: u64, addr: String) -> Result<AdminAnswer, String> {
        let r = self.request(&(id, addr));
        let answer = self.client.add_member(r).await.map_err(|s| s.message().to_string())?;
        decode(&answer.into_inner().body).map_err(|e| e.to_string())
    }

    /// Removes member `id`. Must reach the leader.
    pub async fn remove_member(&mut self, id: u64) -> Result<AdminAnswer, String> {
        let r = self.request(&id);
        let answer = self
            .client
            .remove_member(r)
            .await
            .map_err(|s| s.message().to_string())?;
        decode(&answer.into_inner().body).map_err(|e| e.to_string())
    }

    /// Admits the node to a group: from now on it answers the group's Raft calls.
    pub async fn admit(&mut self) -> Result<(), String> {
        let r = self.request(&());
        let answer = self.client.admit(r).await.map_err(|s| s.message().to_string())?;
        decode::<Result<(), String>>(&answer.into_inner().body).map_err(|e| e.to_string())?
    }

    /// What the node knows of its group.
    pub async fn status(&mut self) -> Result<crate::MetaStatus, String> {
        let r = self.request(&());
        let answer = self.client.status(r).await.map_err(|s| s.message().to_string())?;
        decode(&answer.into_inner().body).map_err(|e| e.to_string())
    }
}
