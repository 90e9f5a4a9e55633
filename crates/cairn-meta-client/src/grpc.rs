//! The metadata API over gRPC (`proto/meta.proto`): [`GrpcMetaClient`], a [`MetaClient`] that
//! calls a meta-node, and [`MetadataService`], the server side, which answers every call with
//! any other `MetaClient` (on a meta-node: the in-process one).
//!
//! Arguments and answers are Cairn's versioned encoding (`cairn_meta::encode`) inside the
//! protobuf `Payload`/`Reply`; errors keep their kind in `Failure.kind`. A call that fails in
//! transport (connection refused, deadline) is [`MetaClientError::Unavailable`]: retryable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_meta::{decode, encode, Command, MetaError};
use cairn_proto::meta::failure::Kind;
use cairn_proto::meta::metadata_client::MetadataClient;
use cairn_proto::meta::metadata_server::{Metadata, MetadataServer};
use cairn_proto::meta::{reply, Failure, Payload, Reply};
use cairn_types::ChunkId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::{ChunkState, InBucket, ListQuery, MetaClient, MetaClientError, Result};

pub use cairn_proto::auth::{SecretCheck, SECRET_HEADER};

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is not a valid endpoint.
    #[error("invalid metadata address: {0}")]
    Address(tonic::transport::Error),
    /// The secret is not printable ASCII.
    #[error("the cluster secret must be printable ASCII")]
    Secret,
    /// No address was given.
    #[error("no meta-node address given")]
    NoAddress,
}

/// Most bytes of one metadata message (a listing page of 1,000 large records, a batch of
/// manifest pages); tonic's default of 4 MiB is below what a page of 64 manifest pages can be.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A [`MetaClient`] calling the metadata API of a group of meta-nodes. It sends to the node it
/// believes leads; a node that does not lead names the leader (`NotLeader`) and the call goes
/// there. Reads are also retried, with backoff, at the next node when one cannot be reached;
/// writes are retried only when the node refused them before appending (`NotLeader`), since
/// any other failure may have committed them (the S3 client then retries the request). One
/// HTTP/2 connection per node, shared by every call (cheap to clone); each call has a deadline.
#[derive(Clone)]
pub struct GrpcMetaClient {
    nodes: Arc<std::sync::Mutex<Nodes>>,
    timeout: Duration,
    /// Sent with every call: the cluster's shared secret.
    secret: tonic::metadata::AsciiMetadataValue,
    /// Whether the last call reached a node that takes writes.
    ready: Arc<AtomicBool>,
}

/// The meta-nodes a client knows, and which one it calls.
struct Nodes {
    addrs: Vec<String>,
    clients: Vec<MetadataClient<Channel>>,
    current: usize,
}

/// Attempts of one call, leader redirections and retries included.
const ATTEMPTS: u32 = 8;

fn channel(addr: &str, timeout: Duration) -> std::result::Result<MetadataClient<Channel>, ConnectError> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(ConnectError::Address)?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(timeout)
        .connect_lazy();
    Ok(MetadataClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CallKind {
    Read,
    Write,
}

impl GrpcMetaClient {
    /// A client of the meta-nodes at `addrs` (`host:port`, at least one), connecting on first
    /// use, each attempt failing after `timeout`, proving itself with the cluster's `secret`
    /// (printable ASCII).
    pub fn new(addrs: &[&str], timeout: Duration, secret: &str) -> std::result::Result<Self, ConnectError> {
        let secret = secret.parse().map_err(|_| ConnectError::Secret)?;
        if addrs.is_empty() {
            return Err(ConnectError::NoAddress);
        }
        let clients = addrs
            .iter()
            .map(|a| channel(a, timeout))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self {
            nodes: Arc::new(std::sync::Mutex::new(Nodes {
                addrs: addrs.iter().map(|a| a.to_string()).collect(),
                clients,
                current: 0,
            })),
            timeout,
            secret,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the meta-node it calls whether it takes writes (and remembers the answer for
    /// [`MetaClient::is_ready`]).
    pub async fn check_ready(&self) -> Result<bool> {
        let ready: bool = self
            .call(CallKind::Read, |mut c, p| async move { c.ready(p).await }, &())
            .await?;
        self.ready.store(ready, Ordering::Relaxed);
        if !ready {
            // A node that does not lead: look for the leader elsewhere next time.
            let mut n = self.nodes();
            n.current = (n.current + 1) % n.addrs.len();
        }
        Ok(ready)
    }

    async fn call<A, T, F, Fut>(&self, kind: CallKind, rpc: F, args: &A) -> Result<T>
    where
        A: Serialize,
        T: DeserializeOwned,
        F: Fn(MetadataClient<Channel>, tonic::Request<Payload>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<Reply>, tonic::Status>>,
    {
        let body = encode(args);
        let mut delay = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            let (at, client) = {
                let n = self.nodes();
                (n.current, n.clients[n.current].clone())
            };
            let mut request = tonic::Request::new(Payload { body: body.clone() });
            request.metadata_mut().insert(SECRET_HEADER, self.secret.clone());
            let sent = std::time::Instant::now();
            let answer = match rpc(client, request).await {
                Ok(r) => from_reply(r.into_inner()),
                Err(status) => Err(from_status(status)),
            };
            if let Err(e) = &answer {
                tracing::debug!(node = at, attempt, took_ms = sent.elapsed().as_millis() as u64, error = %e, "metadata call failed");
            }
            let retry = match &answer {
                Ok(_) => {
                    self.ready.store(true, Ordering::Relaxed);
                    return answer;
                }
                Err(MetaClientError::NotLeader { leader }) => {
                    self.follow(at, leader.as_deref());
                    true
                }
                Err(MetaClientError::Unavailable(_)) => {
                    self.ready.store(false, Ordering::Relaxed);
                    self.follow(at, None);
                    kind == CallKind::Read
                }
                Err(_) => false,
            };
            if !retry || attempt >= ATTEMPTS {
                if matches!(answer, Err(MetaClientError::NotLeader { .. })) {
                    self.ready.store(false, Ordering::Relaxed);
                }
                return answer;
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// After a call to node `at` failed: call `leader` next if known (learning its address),
    /// else the node after `at`.
    fn follow(&self, at: usize, leader: Option<&str>) {
        let mut n = self.nodes();
        if n.current != at {
            return; // another call moved on already
        }
        match leader {
            Some(addr) => match n.addrs.iter().position(|a| a == addr) {
                Some(i) => n.current = i,
                None => {
                    if let Ok(c) = channel(addr, self.timeout) {
                        n.addrs.push(addr.to_string());
                        n.clients.push(c);
                        n.current = n.addrs.len() - 1;
                    }
                }
            },
            None => n.current = (at + 1) % n.addrs.len(),
        }
    }
}

fn from_status(status: tonic::Status) -> MetaClientError {
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied | tonic::Code::Unimplemented => {
            MetaClientError::Refused(status.message().to_string())
        }
        code => MetaClientError::Unavailable(format!("metadata call failed: {code}: {}", status.message())),
    }
}

fn from_reply<T: DeserializeOwned>(reply: Reply) -> Result<T> {
    match reply.outcome {
        Some(reply::Outcome::Ok(body)) => decode(&body)
            .map_err(|e| MetaClientError::Meta(MetaError::CorruptRecord(format!("undecodable answer: {e}")))),
        Some(reply::Outcome::Failure(f)) => Err(from_failure(f)),
        None => Err(MetaClientError::Unavailable("empty metadata reply".into())),
    }
}

fn from_failure(f: Failure) -> MetaClientError {
    match Kind::try_from(f.kind) {
        Ok(Kind::NotLeader) => MetaClientError::NotLeader {
            leader: (!f.leader.is_empty()).then_some(f.leader),
        },
        Ok(Kind::Meta) => match decode::<MetaError>(&f.meta_error) {
            Ok(e) => MetaClientError::Meta(e),
            Err(e) => MetaClientError::Meta(MetaError::CorruptRecord(format!("undecodable error: {e}"))),
        },
        Ok(Kind::Invalid) => MetaClientError::Meta(MetaError::CorruptRecord(format!(
            "the meta-node could not read the request: {}",
            f.message
        ))),
        Ok(Kind::Unavailable) | Err(_) => MetaClientError::Unavailable(f.message),
    }
}

/// Calls `$rpc` with `$args` encoded.
macro_rules! rpc {
    ($self:ident, $rpc:ident, $args:expr) => {
        $self
            .call(CallKind::Read, |mut c, p| async move { c.$rpc(p).await }, &$args)
            .await
    };
}

#[async_trait::async_trait]
impl MetaClient for GrpcMetaClient {
    async fn propose(&self, cmd: Command) -> Result<cairn_meta::Response> {
        self.call(CallKind::Write, |mut c, p| async move { c.propose(p).await }, &cmd)
            .await
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    async fn shutdown(&self) {}

    async fn bucket(&self, name: &str) -> Result<Option<cairn_meta::BucketRecord>> {
        rpc!(self, bucket, name)
    }

    async fn buckets(&self) -> Result<Vec<cairn_meta::BucketRecord>> {
        rpc!(self, buckets, ())
    }

    async fn object(&self, bucket: &str, key: &str) -> Result<InBucket<cairn_meta::ObjectRecord>> {
        rpc!(self, object, (bucket, key))
    }

    async fn list_objects(&self, bucket: &str, query: &ListQuery) -> Result<Option<cairn_meta::query::ListPage>> {
        rpc!(self, list_objects, (bucket, query))
    }

    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<InBucket<cairn_meta::UploadRecord>> {
        rpc!(self, upload, (bucket, key, upload_id))
    }

    async fn uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: usize,
    ) -> Result<Vec<cairn_meta::UploadRecord>> {
        rpc!(
            self,
            uploads,
            (bucket, prefix, key_marker, upload_id_marker, limit as u64)
        )
    }

    async fn parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<cairn_meta::PartRecord>> {
        rpc!(self, parts, (upload_id, after, limit as u64))
    }

    async fn part_extent(&self, version: &str, number: u32) -> Result<Option<cairn_meta::PartExtent>> {
        rpc!(self, part_extent, (version, number))
    }

    async fn manifest_pages(&self, version: &str, offset: u64, limit: usize) -> Result<Vec<cairn_meta::ManifestPage>> {
        rpc!(self, manifest_pages, (version, offset, limit as u64))
    }

    async fn access_key(&self, access_key: &str) -> Result<Option<cairn_meta::KeyRecord>> {
        rpc!(self, access_key, access_key)
    }

    async fn access_keys(&self) -> Result<Vec<cairn_meta::KeyRecord>> {
        rpc!(self, access_keys, ())
    }

    async fn storage_nodes(&self) -> Result<Vec<cairn_meta::StorageNodeRecord>> {
        rpc!(self, storage_nodes, ())
    }

    async fn access_version(&self) -> Result<u64> {
        rpc!(self, access_version, ())
    }

    async fn cluster_map(&self, epoch: Option<u64>) -> Result<Option<cairn_meta::ClusterMapRecord>> {
        rpc!(self, cluster_map, epoch)
    }

    async fn repair_queue(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<ChunkState>> {
        rpc!(self, repair_queue, (after, limit as u64))
    }

    async fn chunks(&self, ids: Vec<ChunkId>) -> Result<Vec<ChunkState>> {
        rpc!(self, chunks, ids)
    }

    async fn chunk_page(
        &self,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<(ChunkId, cairn_meta::ChunkRecord)>> {
        rpc!(self, chunk_page, (after, limit as u64))
    }

    async fn gc_info(&self) -> Result<cairn_meta::GcInfo> {
        rpc!(self, gc_info, ())
    }

    async fn group_status(&self) -> Result<crate::GroupStatus> {
        rpc!(self, group_status, ())
    }

    async fn gc_marks(&self, after: Option<ChunkId>, limit: usize) -> Result<Vec<(ChunkId, cairn_meta::GcMark)>> {
        rpc!(self, gc_marks, (after, limit as u64))
    }

    async fn retired(&self, after: &str, limit: usize) -> Result<Vec<(String, cairn_meta::PagedManifest)>> {
        rpc!(self, retired, (after, limit as u64))
    }

    async fn completed_uploads(&self, after: &str, limit: usize) -> Result<Vec<(String, cairn_meta::CompletedUpload)>> {
        rpc!(self, completed_uploads, (after, limit as u64))
    }
}

/// The server side of the metadata API: answers each call with `meta`.
pub struct MetadataService {
    meta: Arc<dyn MetaClient>,
}

/// The metadata service behind its check of the cluster secret.
pub type SecuredMetadata =
    tonic::service::interceptor::InterceptedService<MetadataServer<MetadataService>, SecretCheck>;

impl MetadataService {
    /// A service answering with `meta` the calls that carry the cluster's `secret` (others get
    /// `UNAUTHENTICATED` before their message is read), ready to add to a tonic server.
    pub fn new(meta: Arc<dyn MetaClient>, secret: &str) -> SecuredMetadata {
        let server = MetadataServer::new(Self { meta })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        tonic::service::interceptor::InterceptedService::new(server, SecretCheck::new(secret))
    }
}

fn to_reply<T: Serialize>(answer: Result<T>) -> Reply {
    let outcome = match answer {
        Ok(t) => reply::Outcome::Ok(encode(&t)),
        Err(e) => reply::Outcome::Failure(match e {
            MetaClientError::Refused(m) => Failure {
                kind: Kind::Invalid as i32,
                message: m,
                ..Default::default()
            },
            MetaClientError::Unavailable(m) => Failure {
                kind: Kind::Unavailable as i32,
                message: m,
                ..Default::default()
            },
            MetaClientError::NotLeader { leader } => Failure {
                kind: Kind::NotLeader as i32,
                message: "not the leader".into(),
                leader: leader.unwrap_or_default(),
                ..Default::default()
            },
            MetaClientError::Meta(m) => Failure {
                kind: Kind::Meta as i32,
                message: m.to_string(),
                meta_error: encode(&m),
                ..Default::default()
            },
        }),
    };
    Reply { outcome: Some(outcome) }
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Reply {
    Reply {
        outcome: Some(reply::Outcome::Failure(Failure {
            kind: Kind::Invalid as i32,
            message: format!("{what}: {e}"),
            ..Default::default()
        })),
    }
}

type Answer = std::result::Result<tonic::Response<Reply>, tonic::Status>;

/// Decodes a request's arguments as `A`, runs `f` on them and encodes its answer.
async fn answer<A, T, F, Fut>(name: &str, req: tonic::Request<Payload>, f: F) -> Answer
where
    A: DeserializeOwned,
    T: Serialize,
    F: FnOnce(A) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let reply = match decode::<A>(&req.into_inner().body) {
        Ok(args) => to_reply(f(args).await),
        Err(e) => invalid(name, e),
    };
    Ok(tonic::Response::new(reply))
}

#[tonic::async_trait]
impl Metadata for MetadataService {
    async fn propose(&self, req: tonic::Request<Payload>) -> Answer {
        answer("propose", req, |cmd: Command| self.meta.propose(cmd)).await
    }

    async fn bucket(&self, req: tonic::Request<Payload>) -> Answer {
        answer(
            "bucket",
            req,
            |name: String| async move { self.meta.bucket(&name).await },
        )
        .await
    }

    async fn buckets(&self, req: tonic::Request<Payload>) -> Answer {
        answer("buckets", req, |(): ()| self.meta.buckets()).await
    }

    async fn object(&self, req: tonic::Request<Payload>) -> Answer {
        answer("object", req, |(b, k): (String, String)| async move {
            self.meta.object(&b, &k).await
        })
        .await
    }

    async fn list_objects(&self, req: tonic::Request<Payload>) -> Answer {
        answer("list_objects", req, |(b, q): (String, ListQuery)| async move {
            self.meta.list_objects(&b, &q).await
        })
        .await
    }

    async fn upload(&self, req: tonic::Request<Payload>) -> Answer {
        answer("upload", req, |(b, k, u): (String, String, String)| async move {
            self.meta.upload(&b, &k, &u).await
        })
        .await
    }

    async fn uploads(&self, req: tonic::Request<Payload>) -> Answer {
        answer(
            "uploads",
            req,
            |(b, p, km, um, limit): (String, String, String, String, u64)| async move {
                self.meta.uploads(&b, &p, &km, &um, limit as usize).await
            },
        )
        .await
    }

    async fn parts(&self, req: tonic::Request<Payload>) -> Answer {
        answer("parts", req, |(u, after, limit): (String, u32, u64)| async move {
            self.meta.parts(&u, after, limit as usize).await
        })
        .await
    }

    async fn part_extent(&self, req: tonic::Request<Payload>) -> Answer {
        answer("part_extent", req, |(v, n): (String, u32)| async move {
            self.meta.part_extent(&v, n).await
        })
        .await
    }

    async fn manifest_pages(&self, req: tonic::Request<Payload>) -> Answer {
        answer(
            "manifest_pages",
            req,
            |(v, offset, limit): (String, u64, u64)| async move {
                self.meta.manifest_pages(&v, offset, limit as usize).await
            },
        )
        .await
    }

    async fn access_key(&self, req: tonic::Request<Payload>) -> Answer {
        answer(
            "access_key",
            req,
            |a: String| async move { self.meta.access_key(&a).await },
        )
        .await
    }

    async fn access_keys(&self, req: tonic::Request<Payload>) -> Answer {
        answer("access_keys", req, |(): ()| self.meta.access_keys()).await
    }

    async fn storage_nodes(&self, req: tonic::Request<Payload>) -> Answer {
        answer("storage_nodes", req, |(): ()| self.meta.storage_nodes()).await
    }

    async fn access_version(&self, req: tonic::Request<Payload>) -> Answer {
        answer("access_version", req, |(): ()| self.meta.access_version()).await
    }

    async fn cluster_map(&self, req: tonic::Request<Payload>) -> Answer {
        answer("cluster_map", req, |epoch: Option<u64>| self.meta.cluster_map(epoch)).await
    }

    async fn repair_queue(&self, req: tonic::Request<Payload>) -> Answer {
        answer("repair_queue", req, |(after, limit): (Option<ChunkId>, u64)| {
            self.meta.repair_queue(after, limit as usize)
        })
        .await
    }

    async fn chunks(&self, req: tonic::Request<Payload>) -> Answer {
        answer("chunks", req, |ids: Vec<ChunkId>| self.meta.chunks(ids)).await
    }

    async fn chunk_page(&self, req: tonic::Request<Payload>) -> Answer {
        answer("chunk_page", req, |(after, limit): (Option<ChunkId>, u64)| {
            self.meta.chunk_page(after, limit as usize)
        })
        .await
    }

    async fn gc_info(&self, req: tonic::Request<Payload>) -> Answer {
        answer("gc_info", req, |(): ()| self.meta.gc_info()).await
    }

    async fn gc_marks(&self, req: tonic::Request<Payload>) -> Answer {
        answer("gc_marks", req, |(after, limit): (Option<ChunkId>, u64)| {
            self.meta.gc_marks(after, limit as usize)
        })
        .await
    }

    async fn retired(&self, req: tonic::Request<Payload>) -> Answer {
        answer("retired", req, |(after, limit): (String, u64)| async move {
            self.meta.retired(&after, limit as usize).await
        })
        .await
    }

    async fn completed_uploads(&self, req: tonic::Request<Payload>) -> Answer {
        answer("completed_uploads", req, |(after, limit): (String, u64)| async move {
            self.meta.completed_uploads(&after, limit as usize).await
        })
        .await
    }

    async fn group_status(&self, req: tonic::Request<Payload>) -> Answer {
        answer("group_status", req, |(): ()| self.meta.group_status()).await
    }

    async fn ready(&self, req: tonic::Request<Payload>) -> Answer {
        answer("ready", req, |(): ()| async { Ok(self.meta.is_ready()) }).await
    }
}
