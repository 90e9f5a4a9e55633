//! The gRPC shard store against a real tonic server over TCP on 127.0.0.1: the shard store's
//! conformance suite (the same one `SegmentStore` and `MemStore` pass), then what only a
//! network adds: a wrong secret, an unreachable node, an unknown disk, bytes damaged on the
//! node's disk or on the way, and hostile puts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::auth::SECRET_HEADER;
use cairn_proto::shard::shards_client::ShardsClient;
use cairn_proto::shard::{self as pb, put_piece};
use cairn_shard_client::{connect, ShardService, MAX_SHARD_BYTES};
use cairn_shard_store::{SegmentStore, SegmentStoreOptions, ShardKey, ShardStore, ShardStoreError};
use cairn_types::ChunkId;

const SECRET: &str = "conformance-secret-0123";

/// A node serving `disks` SegmentStores under `dir` on an OS-chosen port; its address.
async fn serve(dir: &std::path::Path, disks: usize) -> String {
    let stores: Vec<Arc<dyn ShardStore>> = (0..disks)
        .map(|i| {
            Arc::new(SegmentStore::open(dir.join(format!("{i:02}")), SegmentStoreOptions::default()).unwrap())
                as Arc<dyn ShardStore>
        })
        .collect();
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap().to_string();
    let service = ShardService::new("node-under-test".into(), stores, SECRET);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    addr
}

fn key(n: u8, index: u8) -> ShardKey {
    ShardKey {
        chunk: ChunkId([n; 32]),
        index,
    }
}

#[tokio::test]
async fn grpc_store_passes_the_shard_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(dir.path(), 2).await;
    let node = connect(&addr, SECRET, Duration::from_secs(10)).await.unwrap();
    assert_eq!(node.node_id, "node-under-test");
    assert_eq!(node.disks.len(), 2);
    cairn_shard_store::conformance::suite(node.disks[1].clone()).await;
    // The suite ran on disk 1 only: disk 0 holds nothing.
    assert_eq!(node.disks[0].health().await.unwrap().stats.shards, 0);
    let health = node.disks[1].health().await.unwrap();
    let capacity = health.capacity.expect("a disk on a file system reports its capacity");
    assert!(capacity.total > 0 && capacity.free <= capacity.total);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_a_dead_node_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(dir.path(), 1).await;
    match connect(&addr, "another-secret-0123456", Duration::from_secs(5)).await {
        Err(ShardStoreError::Refused(m)) => assert!(m.contains("secret"), "{m}"),
        other => panic!("expected Refused, got {:?}", other.map(|n| n.node_id)),
    }
    // A port nobody listens on (bound, then closed).
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    match connect(&free.to_string(), SECRET, Duration::from_secs(5)).await {
        Err(ShardStoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {:?}", other.map(|n| n.node_id)),
    }
}

#[tokio::test]
async fn bytes_damaged_on_the_node_are_corrupt_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(dir.path(), 1).await;
    let disk = connect(&addr, SECRET, Duration::from_secs(10)).await.unwrap().disks[0].clone();
    let data = Bytes::from(vec![7u8; 100_000]);
    disk.put(key(1, 3), data.clone()).await.unwrap();
    // Flip a byte inside the record's data in the segment file.
    let seg = std::fs::read_dir(dir.path().join("00"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .expect("a segment file");
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() - 50_000;
    bytes[at] ^= 0x40;
    std::fs::write(&seg, bytes).unwrap();
    match disk.get(key(1, 3)).await {
        Err(ShardStoreError::Corrupt { chunk, index: 3, .. }) => assert_eq!(chunk, key(1, 3).chunk),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(disk.damaged().await.unwrap(), vec![key(1, 3)]);
    assert_eq!(disk.health().await.unwrap().damaged, 1);
    // Rewriting the shard heals it.
    disk.put(key(1, 3), data.clone()).await.unwrap();
    assert_eq!(disk.get(key(1, 3)).await.unwrap(), Some(data));
}

/// A raw client, to send what `GrpcShardStore` never would.
async fn raw(addr: &str) -> ShardsClient<tonic::transport::Channel> {
    ShardsClient::connect(format!("http://{addr}")).await.unwrap()
}

fn with_secret<T>(m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut().insert(SECRET_HEADER, SECRET.parse().unwrap());
    r
}

fn put_pieces(header: pb::PutHeader, data: Vec<Bytes>) -> Vec<pb::PutPiece> {
    std::iter::once(pb::PutPiece {
        piece: Some(put_piece::Piece::Header(header)),
    })
    .chain(data.into_iter().map(|d| pb::PutPiece {
        piece: Some(put_piece::Piece::Data(d)),
    }))
    .collect()
}

fn header(k: ShardKey, len: u64, crc32: u32) -> pb::PutHeader {
    pb::PutHeader {
        disk: 0,
        key: Some(pb::ShardKey {
            chunk: Bytes::copy_from_slice(&k.chunk.0),
            index: u32::from(k.index),
        }),
        len,
        crc32,
    }
}

#[tokio::test]
async fn hostile_or_damaged_puts_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(dir.path(), 1).await;
    let disk = connect(&addr, SECRET, Duration::from_secs(10)).await.unwrap().disks[0].clone();
    let mut c = raw(&addr).await;
    let data = Bytes::from(vec![9u8; 3000]);
    let crc = crc32fast::hash(&data);
    let failure_of = |d: tonic::Response<pb::Done>| d.into_inner().failure.map(|f| (f.kind, f.message));

    // Damaged on the way: the CRC does not match. Nothing stored.
    let mut damaged = data.to_vec();
    damaged[10] ^= 1;
    let r = c
        .put(with_secret(futures::stream::iter(put_pieces(
            header(key(2, 0), 3000, crc),
            vec![Bytes::from(damaged)],
        ))))
        .await
        .unwrap();
    assert_eq!(failure_of(r).map(|f| f.0), Some(pb::failure::Kind::Corrupt as i32));
    // More data than announced, less data than announced, a size above the limit, a bad key,
    // an unknown disk: each refused, nothing stored.
    let cases = [
        put_pieces(header(key(2, 0), 2000, crc), vec![data.clone()]),
        put_pieces(header(key(2, 0), 4000, crc), vec![data.clone()]),
        put_pieces(header(key(2, 0), MAX_SHARD_BYTES as u64 + 1, crc), vec![data.clone()]),
        put_pieces(
            pb::PutHeader {
                key: Some(pb::ShardKey {
                    chunk: Bytes::from_static(b"short"),
                    index: 0,
                }),
                ..header(key(2, 0), 3000, crc)
            },
            vec![data.clone()],
        ),
        put_pieces(
            pb::PutHeader {
                disk: 5,
                ..header(key(2, 0), 3000, crc)
            },
            vec![data.clone()],
        ),
    ];
    for (i, pieces) in cases.into_iter().enumerate() {
        let r = c.put(with_secret(futures::stream::iter(pieces))).await.unwrap();
        assert!(failure_of(r).is_some(), "case {i} was accepted");
    }
    // A stream without a header.
    let r = c
        .put(with_secret(futures::stream::iter(vec![pb::PutPiece {
            piece: Some(put_piece::Piece::Data(data.clone())),
        }])))
        .await;
    assert_eq!(r.unwrap_err().code(), tonic::Code::InvalidArgument);
    assert_eq!(disk.stat(key(2, 0)).await.unwrap(), None);
    assert_eq!(disk.health().await.unwrap().stats.shards, 0);

    // Without the secret nothing is read at all.
    let r = c
        .put(tonic::Request::new(futures::stream::iter(put_pieces(
            header(key(2, 0), 3000, crc),
            vec![data.clone()],
        ))))
        .await;
    assert_eq!(r.unwrap_err().code(), tonic::Code::Unauthenticated);

    // The honest put of the same bytes, in several pieces, lands.
    let r = c
        .put(with_secret(futures::stream::iter(put_pieces(
            header(key(2, 0), 3000, crc),
            vec![data.slice(..1000), data.slice(1000..)],
        ))))
        .await
        .unwrap();
    assert_eq!(failure_of(r), None);
    assert_eq!(disk.get(key(2, 0)).await.unwrap(), Some(data));
}
