//! The behaviour every [`MetaClient`] must show, run against a fresh, empty metadata group:
//! `run(&client).await` panics at the first difference. Each implementation's tests call it.

use cairn_meta::{
    Body, BucketRecord, ChunkRef, Command, GcMark, KeyRecord, MetaError, ObjectRecord, PartRecord, Response,
    UploadRecord, WriteFence,
};
use cairn_types::{ChunkId, ErasureScheme};

use crate::{InBucket, ListQuery, MetaClient};

fn chunk(n: u32) -> ChunkRef {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_le_bytes());
    id[31] = 0xC0;
    ChunkRef {
        id: ChunkId(id),
        len: 100,
    }
}

fn object(version: &str, chunks: &[ChunkRef]) -> ObjectRecord {
    ObjectRecord {
        version_id: version.into(),
        size: chunks.iter().map(|c| u64::from(c.len)).sum(),
        etag: format!("etag-{version}"),
        last_modified: 1_000,
        attrs: Default::default(),
        checksums: Default::default(),
        body: Body::Chunks(chunks.to_vec()),
        parts: Vec::new(),
        owner: "owner".into(),
        storage_class: Some("REDUCED_REDUNDANCY".into()),
    }
}

async fn ok(client: &dyn MetaClient, cmd: Command) -> Response {
    let what = cmd.to_string();
    match client.propose(cmd).await {
        Ok(Response::Failed(e)) => panic!("{what} was refused: {e}"),
        Ok(r) => r,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn put(bucket: &str, key: &str, object: ObjectRecord, written: Vec<ChunkId>) -> Command {
    Command::Fenced {
        fence: WriteFence::default(),
        command: Box::new(Command::PutObject {
            bucket: bucket.into(),
            key: key.into(),
            object: Box::new(object),
            written,
            scheme: ErasureScheme::new(1, 0).expect("valid scheme"),
            if_none_match: false,
            if_match: None,
        }),
    }
}

/// Runs the suite against `client`, which must reach an empty metadata group that takes writes.
pub async fn run(client: &dyn MetaClient) {
    assert!(client.is_ready(), "a client of a running group is ready");
    let status = client.group_status().await.unwrap();
    assert_eq!(status.state, "Leader", "{status:?}");
    assert_eq!(status.leader, Some(status.id), "{status:?}");
    assert!(
        status.members.iter().any(|(id, _, voter)| *id == status.id && *voter),
        "{status:?}"
    );
    assert!(status.admitted && status.term > 0, "{status:?}");
    buckets(client).await;
    objects(client).await;
    uploads(client).await;
    keys(client).await;
    storage_nodes(client).await;
    placements(client).await;
    chunks_and_collection(client).await;
    paged(client).await;
}

async fn buckets(client: &dyn MetaClient) {
    assert_eq!(client.bucket("conf").await.unwrap(), None);
    let b = BucketRecord {
        name: "conf".into(),
        owner: "owner".into(),
        created: 7,
    };
    ok(client, Command::CreateBucket { bucket: b.clone() }).await;
    assert_eq!(client.bucket("conf").await.unwrap(), Some(b.clone()));
    assert_eq!(client.buckets().await.unwrap(), vec![b.clone()]);
    // A refused command is an answer, not a transport error, and keeps its kind.
    assert_eq!(
        client.propose(Command::CreateBucket { bucket: b }).await.unwrap(),
        Response::Failed(MetaError::BucketAlreadyOwnedByYou)
    );
}

async fn objects(client: &dyn MetaClient) {
    assert_eq!(client.object("nope", "k").await.unwrap(), InBucket::NoBucket);
    assert_eq!(client.object("conf", "k").await.unwrap(), InBucket::Absent);
    let o = object("v1", &[chunk(1), chunk(2)]);
    let stored = ok(client, put("conf", "dir/a", o.clone(), vec![chunk(1).id, chunk(2).id])).await;
    assert_eq!(stored, Response::Object(Box::new(o.clone())));
    assert_eq!(
        client.object("conf", "dir/a").await.unwrap(),
        InBucket::Found(o.clone())
    );
    ok(client, put("conf", "dir/b", object("v2", &[chunk(1)]), vec![])).await;
    ok(client, put("conf", "top", object("v3", &[chunk(2)]), vec![])).await;
    let q = ListQuery {
        prefix: String::new(),
        delimiter: Some("/".into()),
        after: None,
        max_keys: 10,
    };
    let page = client.list_objects("conf", &q).await.unwrap().expect("bucket exists");
    assert_eq!(page.common_prefixes, vec!["dir/".to_string()]);
    assert_eq!(
        page.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["top"]
    );
    let q = ListQuery {
        prefix: "dir/".into(),
        delimiter: None,
        after: Some("dir/a".into()),
        max_keys: 10,
    };
    let page = client.list_objects("conf", &q).await.unwrap().expect("bucket exists");
    assert_eq!(
        page.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["dir/b"]
    );
    assert_eq!(client.list_objects("nope", &q).await.unwrap(), None);
}

async fn uploads(client: &dyn MetaClient) {
    let up = UploadRecord {
        upload_id: "up1".into(),
        bucket: "conf".into(),
        key: "multi".into(),
        initiated: 5,
        attrs: Default::default(),
        checksum_algorithm: None,
        owner: "owner".into(),
        storage_class: Some("REDUCED_REDUNDANCY".into()),
    };
    assert_eq!(client.upload("conf", "multi", "up1").await.unwrap(), InBucket::Absent);
    assert_eq!(client.upload("nope", "multi", "up1").await.unwrap(), InBucket::NoBucket);
    ok(client, Command::CreateUpload { upload: up.clone() }).await;
    assert_eq!(
        client.upload("conf", "multi", "up1").await.unwrap(),
        InBucket::Found(up.clone())
    );
    assert_eq!(
        client.uploads("conf", "mu", "", "", 10).await.unwrap(),
        vec![up.clone()]
    );
    assert!(client.uploads("conf", "x", "", "", 10).await.unwrap().is_empty());
    for number in 1..=3 {
        let part = PartRecord {
            number,
            size: 100,
            etag: format!("{:032x}", number),
            last_modified: 6,
            body: Body::Chunks(vec![chunk(100 + number)]),
            checksums: Default::default(),
        };
        ok(
            client,
            Command::PutPart {
                bucket: "conf".into(),
                key: "multi".into(),
                upload_id: "up1".into(),
                part,
                written: vec![chunk(100 + number).id],
                scheme: ErasureScheme::new(1, 0).expect("valid scheme"),
            },
        )
        .await;
    }
    let parts = client.parts("up1", 1, 10).await.unwrap();
    assert_eq!(parts.iter().map(|p| p.number).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(client.parts("up1", 0, 1).await.unwrap().len(), 1);
    let listed: Vec<(u32, String)> = (1..=3).map(|n| (n, format!("{:032x}", n))).collect();
    ok(
        client,
        Command::CompleteUpload {
            bucket: "conf".into(),
            key: "multi".into(),
            upload_id: "up1".into(),
            parts: listed,
            version_id: "vm".into(),
            last_modified: 9,
            if_none_match: false,
            min_part_size: 0,
        },
    )
    .await;
    let done = client.completed_uploads("", 10).await.unwrap();
    assert_eq!(done.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(), ["up1"]);
    assert_eq!(done[0].1.version_id, "vm");
    assert!(client.completed_uploads("up1", 10).await.unwrap().is_empty());
    match client.object("conf", "multi").await.unwrap() {
        InBucket::Found(o) => assert_eq!(o.part_count(), 3),
        other => panic!("completed upload not found: {other:?}"),
    }
}

async fn keys(client: &dyn MetaClient) {
    assert_eq!(client.access_key("AK1").await.unwrap(), None);
    let before = client.access_version().await.unwrap();
    let k = KeyRecord {
        access_key: "AK1".into(),
        secret_key: "secret".into(),
        name: "one".into(),
        created: 3,
    };
    ok(client, Command::CreateKey { key: k.clone() }).await;
    assert_eq!(client.access_key("AK1").await.unwrap(), Some(k.clone()));
    assert_eq!(client.access_keys().await.unwrap(), vec![k]);
    assert_eq!(client.access_version().await.unwrap(), before + 1);
}

async fn storage_nodes(client: &dyn MetaClient) {
    assert!(client.storage_nodes().await.unwrap().is_empty());
    let node = |heartbeat| cairn_meta::StorageNodeRecord {
        id: "0f0e0d0c-node".into(),
        addr: "127.0.0.1:9200".into(),
        zone: "z1".into(),
        disks: vec![cairn_meta::DiskRecord {
            path: "/srv/d0".into(),
            capacity_total: 1 << 30,
            capacity_free: 1 << 29,
            writable: true,
            shards: 7,
            damaged: 1,
        }],
        registered: heartbeat,
        heartbeat,
        pool: Some("ssd".into()),
    };
    ok(client, Command::ReportStorageNode { node: node(100) }).await;
    ok(client, Command::ReportStorageNode { node: node(200) }).await;
    let nodes = client.storage_nodes().await.unwrap();
    assert_eq!(
        nodes,
        vec![cairn_meta::StorageNodeRecord {
            registered: 100,
            ..node(200)
        }]
    );
}

async fn placements(client: &dyn MetaClient) {
    // The node reported by `storage_nodes` made the first epoch; heartbeats no other.
    let map = client.cluster_map(None).await.unwrap().expect("a map after a report");
    assert_eq!(map.epoch, 1);
    assert_eq!(map.nodes.len(), 1);
    assert_eq!(
        (
            map.nodes[0].weights.as_slice(),
            map.nodes[0].draining,
            map.nodes[0].pool.as_deref()
        ),
        (&[1u64][..], false, Some("ssd"))
    );
    let drain = |drain| Command::DrainStorageNode {
        id: map.nodes[0].id.clone(),
        drain,
    };
    ok(client, drain(true)).await;
    let drained = client.cluster_map(None).await.unwrap().unwrap();
    assert!(drained.epoch == 2 && drained.nodes[0].draining);
    assert_eq!(client.cluster_map(Some(1)).await.unwrap(), Some(map.clone()));
    assert_eq!(client.cluster_map(Some(3)).await.unwrap(), None);
    assert_eq!(
        client
            .propose(Command::DrainStorageNode {
                id: "nobody".into(),
                drain: true
            })
            .await
            .unwrap(),
        Response::Failed(MetaError::NoSuchStorageNode)
    );
    ok(client, drain(false)).await;

    // A write placed by epoch 3 with shards 0 and 5 of one chunk missing.
    let bucket = BucketRecord {
        name: "placed".into(),
        owner: "owner".into(),
        created: 1,
    };
    ok(client, Command::CreateBucket { bucket }).await;
    let (whole, short) = (chunk(300), chunk(301));
    ok(
        client,
        Command::Placed {
            placement: cairn_meta::WritePlacement {
                epoch: 3,
                exceptions: vec![(short.id, 0b100001, vec![(2, "node-b/0".into())])],
                pool: Some("ssd".into()),
            },
            command: Box::new(put(
                "placed",
                "k",
                object("vp1", &[whole, short]),
                vec![whole.id, short.id],
            )),
        },
    )
    .await;
    let states = client.chunks(vec![whole.id, short.id]).await.unwrap();
    assert_eq!(
        states[0].placement,
        cairn_meta::ChunkPlacement {
            epoch: 3,
            pool: Some("ssd".into()),
            ..Default::default()
        }
    );
    assert_eq!(
        states[1].placement,
        cairn_meta::ChunkPlacement {
            epoch: 3,
            missing: 0b100001,
            moved: vec![(2, "node-b/0".into())],
            pool: Some("ssd".into()),
        }
    );
    let queue = client.repair_queue(None, 10).await.unwrap();
    assert_eq!(queue, vec![states[1].clone()]);
    assert!(client.repair_queue(Some(short.id), 10).await.unwrap().is_empty());
    ok(
        client,
        Command::ShardsChanged {
            chunk: short.id,
            epoch: 3,
            restored: 0b100101,
            lost: 0,
        },
    )
    .await;
    assert!(client.repair_queue(None, 10).await.unwrap().is_empty());
}

async fn chunks_and_collection(client: &dyn MetaClient) {
    // chunk(1) is referenced by dir/a and dir/b, chunk(2) by dir/a and top.
    let ids = vec![chunk(1).id, chunk(9).id, chunk(2).id];
    let states = client.chunks(ids.clone()).await.unwrap();
    assert_eq!(
        states.iter().map(|s| s.id).collect::<Vec<_>>(),
        ids,
        "answers in the asked order"
    );
    assert_eq!(states[0].record.map(|r| r.refcount), Some(2));
    assert_eq!(states[1].record, None);
    assert_eq!(states[2].record.map(|r| r.refcount), Some(2));
    ok(
        client,
        Command::DeleteObjects {
            bucket: "conf".into(),
            keys: vec!["top".into(), "dir/a".into()],
        },
    )
    .await;
    let states = client.chunks(vec![chunk(2).id]).await.unwrap();
    assert_eq!(states[0].record.map(|r| r.refcount), Some(0));
    assert_eq!(states[0].mark, Some(GcMark::Unreferenced));
    let marks = client.gc_marks(None, 100).await.unwrap();
    assert_eq!(marks, vec![(chunk(2).id, GcMark::Unreferenced)]);
    assert!(client.gc_marks(Some(chunk(2).id), 100).await.unwrap().is_empty());
    let page = client.chunk_page(None, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    let rest = client.chunk_page(Some(page[1].0), 100).await.unwrap();
    assert!(rest.iter().all(|(id, _)| *id > page[1].0));
    // A collection pass over it.
    assert_eq!(client.gc_info().await.unwrap().started, 0);
    let Response::Pass(pass) = ok(client, Command::GcBegin).await else {
        panic!("GcBegin answers a pass")
    };
    let claimed = ok(
        client,
        Command::GcClaim {
            pass,
            ids: vec![chunk(2).id, chunk(1).id],
        },
    )
    .await;
    assert_eq!(
        claimed,
        Response::Chunks(vec![chunk(2).id]),
        "only the unreferenced chunk"
    );
    ok(
        client,
        Command::GcDrop {
            pass,
            ids: vec![chunk(2).id],
        },
    )
    .await;
    ok(client, Command::GcEnd { pass }).await;
    let info = client.gc_info().await.unwrap();
    assert_eq!((info.started, info.done), (pass, pass));
    let states = client.chunks(vec![chunk(2).id]).await.unwrap();
    assert_eq!((states[0].record, states[0].mark), (None, Some(GcMark::Gone { pass })));
}

async fn paged(client: &dyn MetaClient) {
    // More chunks than a record keeps: the manifest is stored apart, in pages.
    let refs: Vec<ChunkRef> = (0..40).map(|n| chunk(1000 + n)).collect();
    let o = object("vp", &refs);
    ok(client, put("conf", "big", o, refs.iter().map(|c| c.id).collect())).await;
    let pages = client.manifest_pages("vp", 0, 10).await.unwrap();
    assert_eq!(pages.iter().map(|p| p.chunks.len()).sum::<usize>(), 40);
    assert_eq!(pages[0].start, 0);
    assert!(client.manifest_pages("vp", 40 * 100, 10).await.unwrap().is_empty());
    assert_eq!(client.part_extent("vp", 1).await.unwrap(), None);
    // Replaced: its pages are retired, kept for reads in flight.
    ok(client, put("conf", "big", object("vq", &[chunk(1)]), vec![])).await;
    let retired = client.retired("", 10).await.unwrap();
    assert_eq!(retired.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(), ["vp"]);
    assert!(client.retired("vp", 10).await.unwrap().is_empty());
}
