use super::tests::{bucket, obj, run, storage_node};
use super::*;
use crate::kv::MemKv;
use crate::query;
use crate::records::*;
use crate::{Command, InvalidCommand};
use cairn_types::ChunkId;

fn report(kv: &mut MemKv, node: StorageNodeRecord) {
    run(kv, &Command::ReportStorageNode { node }).unwrap();
}

fn epoch(kv: &MemKv) -> u64 {
    query::cluster_map(kv, None).unwrap().map_or(0, |m| m.epoch)
}

#[test]
fn the_cluster_map_changes_epoch_only_when_placement_would() {
    let mut kv = MemKv::default();
    assert!(query::cluster_map(&kv, None).unwrap().is_none());
    report(&mut kv, storage_node("b", 10));
    assert_eq!(epoch(&kv), 1);
    // Heartbeats, even with other free space, an address or a count of shards, do not.
    let mut beat = storage_node("b", 20);
    beat.addr = "127.0.0.1:9999".into();
    beat.disks[0].capacity_free = 1;
    beat.disks[0].shards = 1000;
    report(&mut kv, beat);
    assert_eq!(epoch(&kv), 1);
    report(&mut kv, storage_node("a", 30));
    assert_eq!(epoch(&kv), 2);
    // A new disk, or another zone, does.
    let mut grown = storage_node("a", 40);
    grown.disks.push(grown.disks[0].clone());
    grown.disks[1].capacity_total = 8 << 40;
    report(&mut kv, grown);
    assert_eq!(epoch(&kv), 3);
    let mut moved = storage_node("b", 50);
    moved.zone = "z2".into();
    report(&mut kv, moved.clone());
    assert_eq!(epoch(&kv), 4);
    // So does another pool; the node keeps it through heartbeats.
    moved.pool = Some("ssd".into());
    report(&mut kv, moved.clone());
    assert_eq!(epoch(&kv), 5);
    moved.heartbeat += 1;
    report(&mut kv, moved.clone());
    assert_eq!(epoch(&kv), 5);

    let map = query::cluster_map(&kv, None).unwrap().unwrap();
    assert_eq!(map.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(map.nodes[0].weights, [1, 8 << 10]);
    assert_eq!(map.nodes[1].zone, "z2");
    assert_eq!(
        (map.nodes[0].pool.as_deref(), map.nodes[1].pool.as_deref()),
        (None, Some("ssd"))
    );
    // Every epoch stays readable.
    let first = query::cluster_map(&kv, Some(1)).unwrap().unwrap();
    assert_eq!((first.epoch, first.nodes.len()), (1, 1));
    assert!(query::cluster_map(&kv, Some(9)).unwrap().is_none());

    // Draining is a new epoch, survives reports, and is undone the same way.
    let drain = |drain| Command::DrainStorageNode { id: "b".into(), drain };
    run(&mut kv, &drain(true)).unwrap();
    assert_eq!(epoch(&kv), 6);
    run(&mut kv, &drain(true)).unwrap();
    assert_eq!(epoch(&kv), 6, "no change, no epoch");
    report(&mut kv, moved);
    let map = query::cluster_map(&kv, None).unwrap().unwrap();
    assert!(map.nodes[1].draining && map.epoch == 6);
    run(&mut kv, &drain(false)).unwrap();
    assert_eq!(epoch(&kv), 7);
    assert_eq!(
        run(
            &mut kv,
            &Command::DrainStorageNode {
                id: "nobody".into(),
                drain: true
            }
        ),
        Err(MetaError::NoSuchStorageNode)
    );
}

fn placed_put(kv: &mut MemKv, key: &str, chunks: &[u8], placement: WritePlacement) -> Result<Response> {
    run(
        kv,
        &Command::Placed {
            placement,
            command: Box::new(Command::Fenced {
                fence: WriteFence::default(),
                command: Box::new(Command::PutObject {
                    bucket: "b1".into(),
                    key: key.into(),
                    object: Box::new(obj(chunks, key)),
                    written: chunks.iter().map(|c| ChunkId([*c; 32])).collect(),
                    scheme: ErasureScheme::new(4, 2).unwrap(),
                    if_none_match: false,
                    if_match: None,
                }),
            }),
        },
    )
}

#[test]
fn written_chunks_keep_their_epoch_and_missing_shards_queue_for_repair() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    let (c1, c2) = (ChunkId([1; 32]), ChunkId([2; 32]));
    placed_put(
        &mut kv,
        "k",
        &[1, 2],
        WritePlacement {
            epoch: 7,
            exceptions: vec![(c1, 0, vec![(3, "n9/0".into())]), (c2, 0b100001, vec![])],
            pool: Some("ssd".into()),
        },
    )
    .unwrap();
    assert_eq!(
        query::placement(&kv, &c1).unwrap(),
        ChunkPlacement {
            epoch: 7,
            missing: 0,
            moved: vec![(3, "n9/0".into())],
            pool: Some("ssd".into()),
        }
    );
    assert_eq!(
        query::placement(&kv, &c2).unwrap(),
        ChunkPlacement {
            epoch: 7,
            missing: 0b100001,
            moved: vec![],
            pool: Some("ssd".into()),
        }
    );
    let changed = |chunk, epoch, restored, lost| Command::ShardsChanged {
        chunk,
        epoch,
        restored,
        lost,
    };
    // Moved shards queue a chunk as missing ones do; moved home, it leaves the queue.
    assert_eq!(query::repair_queue(&kv, None, 10).unwrap(), [c1, c2]);
    run(&mut kv, &changed(c1, 7, 0b1000, 0)).unwrap();
    assert!(query::placement(&kv, &c1).unwrap().is_whole());
    assert_eq!(query::repair_queue(&kv, None, 10).unwrap(), [c2]);

    // A stale report (another epoch) changes nothing; a repair of one shard keeps it queued,
    // of the last one takes it out; a lost shard puts it back; "all lost" is not believed.
    run(&mut kv, &changed(c2, 6, 0b100001, 0)).unwrap();
    assert_eq!(query::placement(&kv, &c2).unwrap().missing, 0b100001);
    run(&mut kv, &changed(c2, 7, 0b000001, 0)).unwrap();
    assert_eq!(query::repair_queue(&kv, None, 10).unwrap(), [c2]);
    run(&mut kv, &changed(c2, 7, 0b100000, 0)).unwrap();
    assert!(query::repair_queue(&kv, None, 10).unwrap().is_empty());
    run(&mut kv, &changed(c1, 7, 0, 0b10)).unwrap();
    assert_eq!(query::repair_queue(&kv, None, 10).unwrap(), [c1]);
    run(&mut kv, &changed(c1, 7, 0, 0b111111)).unwrap();
    assert_eq!(query::placement(&kv, &c1).unwrap().missing, 0b10);
    // Unknown chunks are ignored.
    run(&mut kv, &changed(ChunkId([9; 32]), 0, 0, 1)).unwrap();
    assert!(query::placement(&kv, &ChunkId([9; 32])).unwrap() == ChunkPlacement::default());

    // Another object referencing c1 leaves its placement alone.
    placed_put(
        &mut kv,
        "k2",
        &[1],
        WritePlacement {
            epoch: 8,
            exceptions: vec![],
            pool: None,
        },
    )
    .unwrap();
    assert_eq!(query::placement(&kv, &c1).unwrap().epoch, 7);
    assert_eq!(query::placement(&kv, &c1).unwrap().pool.as_deref(), Some("ssd"));

    // Collected: placement and queue entry go with the record.
    run(
        &mut kv,
        &Command::DeleteObjects {
            bucket: "b1".into(),
            keys: vec!["k".into(), "k2".into()],
        },
    )
    .unwrap();
    let Response::Pass(pass) = run(&mut kv, &Command::GcBegin).unwrap() else {
        panic!()
    };
    run(
        &mut kv,
        &Command::GcClaim {
            pass,
            ids: vec![c1, c2],
        },
    )
    .unwrap();
    run(
        &mut kv,
        &Command::GcDrop {
            pass,
            ids: vec![c1, c2],
        },
    )
    .unwrap();
    assert_eq!(query::placement(&kv, &c1).unwrap(), ChunkPlacement::default());
    assert!(query::repair_queue(&kv, None, 10).unwrap().is_empty());
}

#[test]
fn placed_wraps_only_fenced_writes() {
    let bare = Command::Placed {
        placement: WritePlacement::default(),
        command: Box::new(Command::GcBegin),
    };
    assert_eq!(bare.validate(), Err(InvalidCommand::BadPlacement));
    let empty_mask = Command::Placed {
        placement: WritePlacement {
            epoch: 1,
            exceptions: vec![(ChunkId([1; 32]), 0, vec![])],
            pool: None,
        },
        command: Box::new(Command::Fenced {
            fence: WriteFence::default(),
            command: Box::new(Command::GcBegin),
        }),
    };
    assert_eq!(empty_mask.validate(), Err(InvalidCommand::BadPlacement));
}
