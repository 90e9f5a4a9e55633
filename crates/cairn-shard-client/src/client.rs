//! [`GrpcShardStore`]: one disk of a storage node, reached over gRPC.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cairn_proto::auth::SECRET_HEADER;
use cairn_proto::shard::shards_client::ShardsClient;
use cairn_proto::shard::{self as pb, get_piece, put_piece};
use cairn_shard_store::{
    Capacity, CompactOptions, CompactProgress, CompactionReport, DiskHealth, ShardKey, ShardStore, ShardStoreError,
    StoreStats,
};
use futures::StreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::wire::{from_failure, from_status, key_from_pb, key_to_pb, CORRUPT_IN_TRANSFER};
use crate::{MAX_SHARD_BYTES, PIECE_BYTES};

/// A storage node as a client sees it: its stable id and one [`ShardStore`] per disk, all
/// sharing one HTTP/2 connection.
pub struct RemoteNode {
    /// The node's id (kept in its data directory: the same after a restart).
    pub node_id: String,
    /// Its disks, in their order on the node.
    pub disks: Vec<Arc<dyn ShardStore>>,
}

/// Connects to the storage node at `addr` (`host:port`), proving itself with the cluster's
/// `secret`, and asks it who it is. Every later call fails after `timeout`.
pub async fn connect(addr: &str, secret: &str, timeout: Duration) -> Result<RemoteNode, ShardStoreError> {
    let secret: tonic::metadata::AsciiMetadataValue = secret
        .parse()
        .map_err(|_| ShardStoreError::Refused("the cluster secret must be printable ASCII".into()))?;
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| ShardStoreError::Refused(format!("invalid storage node address {addr}: {e}")))?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        // HTTP/2's default 64 KiB windows would make every shard wait for window updates.
        .initial_stream_window_size(crate::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(crate::CONNECTION_WINDOW_BYTES)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(timeout)
        .connect_lazy();
    let client = ShardsClient::new(channel)
        .max_decoding_message_size(2 * PIECE_BYTES)
        .max_encoding_message_size(2 * PIECE_BYTES);
    let base = GrpcShardStore {
        client,
        disk: 0,
        secret,
        timeout,
        addr: Arc::from(addr),
    };
    let node = base
        .client
        .clone()
        .node(base.request(pb::NodeRequest {}))
        .await
        .map_err(from_status)?
        .into_inner();
    let disks = (0..node.disks)
        .map(|disk| Arc::new(GrpcShardStore { disk, ..base.clone() }) as Arc<dyn ShardStore>)
        .collect();
    Ok(RemoteNode {
        node_id: node.node_id,
        disks,
    })
}

/// One disk of a storage node, reached over gRPC (see the crate's guarantees). Cheap to clone.
#[derive(Clone)]
pub struct GrpcShardStore {
    client: ShardsClient<Channel>,
    disk: u32,
    secret: tonic::metadata::AsciiMetadataValue,
    timeout: Duration,
    addr: Arc<str>,
}

impl std::fmt::Debug for GrpcShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GrpcShardStore({}, disk {})", self.addr, self.disk)
    }
}

impl GrpcShardStore {
    /// `message` with the cluster secret and the deadline.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.metadata_mut().insert(SECRET_HEADER, self.secret.clone());
        r.set_timeout(self.timeout);
        r
    }

    fn key_request(&self, key: ShardKey) -> tonic::Request<pb::KeyRequest> {
        self.request(pb::KeyRequest {
            disk: self.disk,
            key: Some(key_to_pb(key)),
        })
    }

    /// Context for an error: which node and disk.
    fn at(&self, e: ShardStoreError) -> ShardStoreError {
        match e {
            ShardStoreError::Unavailable(m) => {
                ShardStoreError::Unavailable(format!("storage node {} disk {}: {m}", self.addr, self.disk))
            }
            e => e,
        }
    }
}

fn check(failure: Option<pb::Failure>, key: Option<ShardKey>) -> Result<(), ShardStoreError> {
    match failure {
        None => Ok(()),
        Some(f) => Err(from_failure(f, key)),
    }
}

#[async_trait::async_trait]
impl ShardStore for GrpcShardStore {
    async fn put(&self, key: ShardKey, data: Bytes) -> Result<(), ShardStoreError> {
        if data.len() > MAX_SHARD_BYTES {
            return Err(ShardStoreError::TooLarge(data.len()));
        }
        let header = pb::PutPiece {
            piece: Some(put_piece::Piece::Header(pb::PutHeader {
                disk: self.disk,
                key: Some(key_to_pb(key)),
                len: data.len() as u64,
                crc32: crc32fast::hash(&data),
            })),
        };
        let mut pieces = vec![header];
        let mut at = 0;
        while at < data.len() {
            let end = (at + PIECE_BYTES).min(data.len());
            pieces.push(pb::PutPiece {
                piece: Some(put_piece::Piece::Data(data.slice(at..end))),
            });
            at = end;
        }
        let done = self
            .client
            .clone()
            .put(self.request(futures::stream::iter(pieces)))
            .await
            .map_err(|s| self.at(from_status(s)))?
            .into_inner();
        check(done.failure, Some(key))
    }

    async fn get(&self, key: ShardKey) -> Result<Option<Bytes>, ShardStoreError> {
        let mut stream = self
            .client
            .clone()
            .get(self.key_request(key))
            .await
            .map_err(|s| self.at(from_status(s)))?
            .into_inner();
        let next =
            |m: Option<Result<pb::GetPiece, tonic::Status>>| -> Result<Option<get_piece::Piece>, ShardStoreError> {
                match m {
                    None => Ok(None),
                    Some(Ok(p)) => Ok(p.piece),
                    Some(Err(s)) => Err(self.at(from_status(s))),
                }
            };
        let header = match next(stream.next().await)? {
            Some(get_piece::Piece::Header(h)) => h,
            Some(get_piece::Piece::Failure(f)) => return Err(from_failure(f, Some(key))),
            _ => {
                return Err(self.at(ShardStoreError::Unavailable(
                    "the answer ended before its header".into(),
                )))
            }
        };
        if !header.found {
            return Ok(None);
        }
        let len = usize::try_from(header.len)
            .ok()
            .filter(|l| *l <= MAX_SHARD_BYTES)
            .ok_or(ShardStoreError::TooLarge(header.len as usize))?;
        let first = match next(stream.next().await)? {
            Some(get_piece::Piece::Data(d)) => Some(d),
            Some(get_piece::Piece::Failure(f)) => return Err(from_failure(f, Some(key))),
            Some(get_piece::Piece::Header(_)) => return Err(corrupt(key)),
            None => None,
        };
        // A shard that came in one piece is used as it came, without a copy.
        if let Some(d) = first.as_ref().filter(|d| d.len() == len) {
            if next(stream.next().await)?.is_some() || crc32fast::hash(d) != header.crc32 {
                return Err(corrupt(key));
            }
            return Ok(first);
        }
        let mut buf = BytesMut::with_capacity(len);
        buf.extend_from_slice(first.as_deref().unwrap_or_default());
        if buf.len() > len {
            return Err(corrupt(key));
        }
        loop {
            match next(stream.next().await)? {
                Some(get_piece::Piece::Data(d)) => {
                    if buf.len() + d.len() > len {
                        return Err(corrupt(key));
                    }
                    buf.extend_from_slice(&d);
                }
                Some(get_piece::Piece::Failure(f)) => return Err(from_failure(f, Some(key))),
                Some(get_piece::Piece::Header(_)) => return Err(corrupt(key)),
                None => break,
            }
        }
        if buf.len() != len || crc32fast::hash(&buf) != header.crc32 {
            return Err(corrupt(key));
        }
        Ok(Some(buf.freeze()))
    }

    async fn delete(&self, key: ShardKey) -> Result<bool, ShardStoreError> {
        let done = self
            .client
            .clone()
            .delete(self.key_request(key))
            .await
            .map_err(|s| self.at(from_status(s)))?
            .into_inner();
        check(done.failure, Some(key))?;
        Ok(done.existed)
    }

    async fn stat(&self, key: ShardKey) -> Result<Option<u32>, ShardStoreError> {
        let r = self
            .client
            .clone()
            .stat(self.key_request(key))
            .await
            .map_err(|s| self.at(from_status(s)))?
            .into_inner();
        check(r.failure, Some(key))?;
        Ok(r.found.then_some(r.len))
    }

    async fn list(&self, after: Option<ShardKey>, limit: usize) -> Result<Vec<(ShardKey, u32)>, ShardStoreError> {
        let limit = limit.min(cairn_shard_store::MAX_LIST) as u32;
        let r = self
            .client
            .clone()
            .list(self.request(pb::ListRequest {
                disk: self.disk,
                after: after.map(key_to_pb),
                limit,
            }))
            .await
            .map_err(|s| self.at(from_status(s)))?
            .into_inner();
        check(r.failure, None)?;
        listed(r.shards)
    }

    async fn damaged(&self) -> Result<Vec<ShardKey>, ShardStoreError> {
        let r = self
            .client
            .clone()
            .damaged(self.request(pb::DiskRequest { disk: self.disk }))
            .await
            .map_err(|s| self.at(from_status(s)))?
            .into_inner();
        check(r.failure, None)?;
        Ok(listed(r.shards)?.into_iter().map(|(k, _)| k).collect())
    }

    async fn health(&self) -> Result<DiskHealth, ShardStoreError> {
        let r = self
            .client
            .clone()
            .health(self.request(pb::DiskRequest { disk: self.disk }))
            .await
            .map_err(|s| self.at(from_status(s)))?
            .into_inner();
        check(r.failure, None)?;
        Ok(DiskHealth {
            stats: StoreStats {
                shards: r.shards,
                live_bytes: r.live_bytes,
                disk_bytes: r.disk_bytes,
            },
            writable: r.writable,
            damaged: r.damaged,
            capacity: r.has_capacity.then_some(Capacity {
                total: r.capacity_total,
                free: r.capacity_free,
            }),
        })
    }

    async fn compact(
        &self,
        opts: &CompactOptions,
        progress: &CompactProgress,
    ) -> Result<CompactionReport, ShardStoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut request = self.request(pb::CompactRequest {
            disk: self.disk,
            min_dead_ratio: opts.min_dead_ratio,
            max_bytes_per_sec: opts.max_bytes_per_sec,
        });
        // A throttled pass over a large disk takes as long as it takes: the node reports
        // progress every few hundred milliseconds, and keep-alive finds a dead one.
        request.set_timeout(Duration::from_secs(24 * 3600));
        let mut updates = self
            .client
            .clone()
            .compact(request)
            .await
            .map_err(|s| self.at(from_status(s)))?
            .into_inner();
        while let Some(u) = updates.next().await {
            let u = u.map_err(|s| self.at(from_status(s)))?;
            check(u.failure, None)?;
            progress.segments_total.store(u.segments_total, Relaxed);
            progress.segments_done.store(u.segments_done, Relaxed);
            progress.bytes_rewritten.store(u.bytes_rewritten, Relaxed);
            progress.bytes_reclaimed.store(u.bytes_reclaimed, Relaxed);
            if u.finished {
                return Ok(CompactionReport {
                    segments_removed: u.segments_done,
                    bytes_reclaimed: u.bytes_reclaimed,
                    bytes_rewritten: u.bytes_rewritten,
                });
            }
        }
        Err(self.at(ShardStoreError::Unavailable(
            "the compaction's answer ended early".into(),
        )))
    }
}

fn corrupt(key: ShardKey) -> ShardStoreError {
    ShardStoreError::Corrupt {
        chunk: key.chunk,
        index: key.index,
        reason: CORRUPT_IN_TRANSFER,
    }
}

fn listed(shards: Vec<pb::Listed>) -> Result<Vec<(ShardKey, u32)>, ShardStoreError> {
    shards
        .into_iter()
        .map(|l| Ok((key_from_pb(l.key.as_ref()).map_err(ShardStoreError::Refused)?, l.len)))
        .collect()
}
