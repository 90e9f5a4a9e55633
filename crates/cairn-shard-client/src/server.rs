//! [`ShardService`]: the server side of the shard API, answering for a node's disks.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cairn_proto::auth::SecretCheck;
use cairn_proto::shard::shards_server::{Shards, ShardsServer};
use cairn_proto::shard::{self as pb, get_piece, put_piece};
use cairn_shard_store::{CompactOptions, CompactProgress, ShardKey, ShardStore, ShardStoreError};
use futures::{Stream, StreamExt};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status, Streaming};

use crate::wire::{failure, key_from_pb, key_to_pb, refused};
use crate::PIECE_BYTES;

/// Largest shard the service stores: a shard of the largest chunk (4 MiB) with one data
/// shard, with ample room.
pub const MAX_SHARD_BYTES: usize = 16 << 20;

/// Bytes that all puts in flight together may hold in memory; a put waits for its share
/// before it reads its data.
pub const PUT_BUDGET_BYTES: usize = 256 << 20;

/// The shard API of one node's disks (see the crate's guarantees).
pub struct ShardService {
    node_id: String,
    disks: Vec<Arc<dyn ShardStore>>,
    /// One permit per KiB of [`PUT_BUDGET_BYTES`].
    put_budget: Arc<Semaphore>,
}

/// The shard service behind its check of the cluster secret.
pub type SecuredShards = tonic::service::interceptor::InterceptedService<ShardsServer<ShardService>, SecretCheck>;

type Answer<S> = Result<Response<S>, Status>;
type PieceStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl ShardService {
    /// A service answering for `disks` of the node `node_id` the calls that carry the cluster's
    /// `secret` (others get `UNAUTHENTICATED` before their message is read), ready to add to a
    /// tonic server.
    pub fn new(node_id: String, disks: Vec<Arc<dyn ShardStore>>, secret: &str) -> SecuredShards {
        let server = ShardsServer::new(Self {
            node_id,
            disks,
            put_budget: Arc::new(Semaphore::new(PUT_BUDGET_BYTES >> 10)),
        })
        .max_decoding_message_size(2 * PIECE_BYTES)
        .max_encoding_message_size(2 * PIECE_BYTES);
        tonic::service::interceptor::InterceptedService::new(server, SecretCheck::new(secret))
    }

    fn disk(&self, disk: u32) -> Result<&Arc<dyn ShardStore>, pb::Failure> {
        self.disks
            .get(disk as usize)
            .ok_or_else(|| refused(format!("no disk {disk} on this node ({} disks)", self.disks.len())))
    }

    fn disk_and_key(&self, r: &pb::KeyRequest) -> Result<(&Arc<dyn ShardStore>, ShardKey), pb::Failure> {
        Ok((self.disk(r.disk)?, key_from_pb(r.key.as_ref()).map_err(refused)?))
    }

    /// Reads a put's pieces after its header; the shard once it is whole and its CRC matches.
    async fn receive(&self, header: pb::PutHeader, mut pieces: Streaming<pb::PutPiece>) -> Result<(), pb::Failure> {
        let disk = self.disk(header.disk)?.clone();
        let key = key_from_pb(header.key.as_ref()).map_err(refused)?;
        let len = usize::try_from(header.len)
            .ok()
            .filter(|l| *l <= MAX_SHARD_BYTES)
            .ok_or_else(|| failure(&ShardStoreError::TooLarge(header.len as usize)))?;
        let _held = self
            .put_budget
            .acquire_many(len.div_ceil(1024).max(1) as u32)
            .await
            .map_err(|_| failure(&ShardStoreError::Closed))?;
        let mut buf = BytesMut::with_capacity(len);
        while let Some(piece) = pieces.next().await {
            match piece
                .map_err(|s| refused(format!("the put's stream failed: {}", s.message())))?
                .piece
            {
                Some(put_piece::Piece::Data(d)) if buf.len() + d.len() <= len => buf.extend_from_slice(&d),
                Some(put_piece::Piece::Data(_)) => return Err(refused("more data than the header announced")),
                _ => return Err(refused("a second header")),
            }
        }
        if buf.len() != len {
            return Err(refused(format!("{} bytes received, {len} announced", buf.len())));
        }
        if crc32fast::hash(&buf) != header.crc32 {
            // Damaged on the way: nothing is stored, the writer sees a corrupt shard.
            return Err(failure(&ShardStoreError::Corrupt {
                chunk: key.chunk,
                index: key.index,
                reason: crate::wire::CORRUPT_IN_TRANSFER,
            }));
        }
        disk.put(key, buf.freeze()).await.map_err(|e| failure(&e))
    }
}

fn pieces_of(data: Bytes) -> impl Iterator<Item = Result<pb::GetPiece, Status>> {
    let n = data.len().div_ceil(PIECE_BYTES);
    (0..n).map(move |i| {
        let end = ((i + 1) * PIECE_BYTES).min(data.len());
        Ok(pb::GetPiece {
            piece: Some(get_piece::Piece::Data(data.slice(i * PIECE_BYTES..end))),
        })
    })
}

fn one<T: Send + 'static>(item: T) -> PieceStream<T> {
    Box::pin(futures::stream::iter([Ok(item)]))
}

#[tonic::async_trait]
impl Shards for ShardService {
    async fn node(&self, _: Request<pb::NodeRequest>) -> Answer<pb::NodeReply> {
        Ok(Response::new(pb::NodeReply {
            node_id: self.node_id.clone(),
            disks: self.disks.len() as u32,
        }))
    }

    async fn put(&self, request: Request<Streaming<pb::PutPiece>>) -> Answer<pb::Done> {
        let mut pieces = request.into_inner();
        let header = match pieces.next().await {
            Some(Ok(pb::PutPiece {
                piece: Some(put_piece::Piece::Header(h)),
            })) => h,
            Some(Err(s)) => return Err(s),
            _ => return Err(Status::invalid_argument("a put starts with its header")),
        };
        let failure = self.receive(header, pieces).await.err();
        Ok(Response::new(pb::Done {
            failure,
            existed: false,
        }))
    }

    type GetStream = PieceStream<pb::GetPiece>;

    async fn get(&self, request: Request<pb::KeyRequest>) -> Answer<Self::GetStream> {
        let fail = |f| {
            Ok(Response::new(one(pb::GetPiece {
                piece: Some(get_piece::Piece::Failure(f)),
            })))
        };
        let (disk, key) = match self.disk_and_key(request.get_ref()) {
            Ok(dk) => dk,
            Err(f) => return fail(f),
        };
        match disk.get(key).await {
            Ok(None) => Ok(Response::new(one(pb::GetPiece {
                piece: Some(get_piece::Piece::Header(pb::GetHeader {
                    found: false,
                    len: 0,
                    crc32: 0,
                })),
            }))),
            Ok(Some(data)) => {
                let header = pb::GetPiece {
                    piece: Some(get_piece::Piece::Header(pb::GetHeader {
                        found: true,
                        len: data.len() as u64,
                        crc32: crc32fast::hash(&data),
                    })),
                };
                let stream = futures::stream::iter(std::iter::once(Ok(header)).chain(pieces_of(data)));
                Ok(Response::new(Box::pin(stream)))
            }
            Err(e) => fail(failure(&e)),
        }
    }

    async fn delete(&self, request: Request<pb::KeyRequest>) -> Answer<pb::Done> {
        let done = match self.disk_and_key(request.get_ref()) {
            Err(f) => pb::Done {
                failure: Some(f),
                existed: false,
            },
            Ok((disk, key)) => match disk.delete(key).await {
                Ok(existed) => pb::Done { failure: None, existed },
                Err(e) => pb::Done {
                    failure: Some(failure(&e)),
                    existed: false,
                },
            },
        };
        Ok(Response::new(done))
    }

    async fn stat(&self, request: Request<pb::KeyRequest>) -> Answer<pb::StatReply> {
        let reply = match self.disk_and_key(request.get_ref()) {
            Err(f) => pb::StatReply {
                failure: Some(f),
                ..Default::default()
            },
            Ok((disk, key)) => match disk.stat(key).await {
                Ok(len) => pb::StatReply {
                    failure: None,
                    found: len.is_some(),
                    len: len.unwrap_or(0),
                },
                Err(e) => pb::StatReply {
                    failure: Some(failure(&e)),
                    ..Default::default()
                },
            },
        };
        Ok(Response::new(reply))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Answer<pb::ListReply> {
        let r = request.into_inner();
        let listed = async {
            let disk = self.disk(r.disk)?;
            let after = match &r.after {
                None => None,
                Some(k) => Some(key_from_pb(Some(k)).map_err(refused)?),
            };
            disk.list(after, r.limit as usize).await.map_err(|e| failure(&e))
        };
        Ok(Response::new(list_reply(listed.await)))
    }

    async fn damaged(&self, request: Request<pb::DiskRequest>) -> Answer<pb::ListReply> {
        let listed = async {
            let disk = self.disk(request.get_ref().disk)?;
            let keys = disk.damaged().await.map_err(|e| failure(&e))?;
            Ok(keys.into_iter().map(|k| (k, 0)).collect())
        };
        Ok(Response::new(list_reply(listed.await)))
    }

    async fn health(&self, request: Request<pb::DiskRequest>) -> Answer<pb::HealthReply> {
        let health = async {
            let disk = self.disk(request.get_ref().disk)?;
            disk.health().await.map_err(|e| failure(&e))
        };
        let reply = match health.await {
            Err(f) => pb::HealthReply {
                failure: Some(f),
                ..Default::default()
            },
            Ok(h) => pb::HealthReply {
                failure: None,
                shards: h.stats.shards,
                live_bytes: h.stats.live_bytes,
                disk_bytes: h.stats.disk_bytes,
                writable: h.writable,
                damaged: h.damaged,
                has_capacity: h.capacity.is_some(),
                capacity_total: h.capacity.map_or(0, |c| c.total),
                capacity_free: h.capacity.map_or(0, |c| c.free),
            },
        };
        Ok(Response::new(reply))
    }

    type CompactStream = PieceStream<pb::CompactUpdate>;

    async fn compact(&self, request: Request<pb::CompactRequest>) -> Answer<Self::CompactStream> {
        let r = request.into_inner();
        let disk = match self.disk(r.disk) {
            Ok(d) => d.clone(),
            Err(f) => {
                return Ok(Response::new(one(pb::CompactUpdate {
                    failure: Some(f),
                    ..Default::default()
                })))
            }
        };
        if !(r.min_dead_ratio > 0.0 && r.min_dead_ratio <= 1.0) {
            return Err(Status::invalid_argument("min_dead_ratio must be in (0, 1]"));
        }
        let opts = CompactOptions {
            min_dead_ratio: r.min_dead_ratio,
            max_bytes_per_sec: r.max_bytes_per_sec,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            let progress = CompactProgress::default();
            let update = |p: &CompactProgress| pb::CompactUpdate {
                failure: None,
                finished: false,
                segments_total: p.segments_total.load(Relaxed),
                segments_done: p.segments_done.load(Relaxed),
                bytes_rewritten: p.bytes_rewritten.load(Relaxed),
                bytes_reclaimed: p.bytes_reclaimed.load(Relaxed),
            };
            let run = disk.compact(&opts, &progress);
            tokio::pin!(run);
            let last = loop {
                tokio::select! {
                    r = &mut run => break r,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {
                        // A caller gone does not stop the pass: it is safe to finish.
                        let _ = tx.send(Ok(update(&progress))).await;
                    }
                }
            };
            let last = match last {
                Ok(report) => pb::CompactUpdate {
                    failure: None,
                    finished: true,
                    segments_total: progress.segments_total.load(Relaxed),
                    segments_done: report.segments_removed,
                    bytes_rewritten: report.bytes_rewritten,
                    bytes_reclaimed: report.bytes_reclaimed,
                },
                Err(e) => pb::CompactUpdate {
                    failure: Some(failure(&e)),
                    ..update(&progress)
                },
            };
            let _ = tx.send(Ok(last)).await;
        });
        Ok(Response::new(Box::pin(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
        ))))
    }
}

fn list_reply(listed: Result<Vec<(ShardKey, u32)>, pb::Failure>) -> pb::ListReply {
    match listed {
        Ok(shards) => pb::ListReply {
            failure: None,
            shards: shards
                .into_iter()
                .map(|(k, len)| pb::Listed {
                    key: Some(key_to_pb(k)),
                    len,
                })
                .collect(),
        },
        Err(f) => pb::ListReply {
            failure: Some(f),
            shards: Vec::new(),
        },
    }
}
