//! A committed command that fails validation is a no-op with a typed error, never a fatal
//! state-machine error: the node keeps serving, and restarts (replaying the entry) serve too.

use cairn_meta::{
    Body, BucketRecord, Checksums, Command, InvalidCommand, MetaError, ObjectAttrs, PartRecord, Response, UploadRecord,
};
use cairn_meta_node::MetaNode;

fn bucket(name: &str) -> Command {
    Command::CreateBucket {
        bucket: BucketRecord {
            name: name.into(),
            owner: "me".into(),
            created: 1,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_committed_command_never_stops_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = MetaNode::open_single(dir.path()).await.unwrap();
        assert_eq!(node.propose(bucket("b1")).await.unwrap(), Response::Done);
        let upload = UploadRecord {
            upload_id: "u1".into(),
            bucket: "b1".into(),
            key: "k".into(),
            initiated: 1,
            attrs: ObjectAttrs::default(),
            checksum_algorithm: None,
            owner: "me".into(),
            storage_class: None,
        };
        assert_eq!(
            node.propose(Command::CreateUpload { upload }).await.unwrap(),
            Response::Done
        );
        // What `stage(.., allow_inline = true)` followed by `commit_part` used to propose: an
        // inline part. It is committed to the log either way; applying it must be a no-op.
        let inline_part = Command::PutPart {
            bucket: "b1".into(),
            key: "k".into(),
            upload_id: "u1".into(),
            part: PartRecord {
                number: 1,
                size: 3,
                etag: "00".into(),
                last_modified: 1,
                body: Body::Inline(b"abc".to_vec()),
                checksums: Checksums::default(),
            },
            written: vec![],
            scheme: cairn_types::ErasureScheme::for_disks(1).unwrap(),
        };
        assert_eq!(
            node.propose(inline_part).await.unwrap(),
            Response::Failed(MetaError::Invalid(InvalidCommand::InlinePart))
        );
        // The node still applies commands after it.
        assert_eq!(node.propose(bucket("b2")).await.unwrap(), Response::Done);
        node.shutdown().await;
    }
    // The restart replays the log, the invalid entry included, and serves.
    let node = MetaNode::open_single(dir.path()).await.unwrap();
    assert_eq!(node.propose(bucket("b3")).await.unwrap(), Response::Done);
    let names: Vec<String> = tokio::task::spawn_blocking({
        let reader = node.reader();
        move || {
            cairn_meta::query::buckets(&*reader)
                .unwrap()
                .into_iter()
                .map(|b| b.name)
                .collect()
        }
    })
    .await
    .unwrap();
    assert_eq!(names, ["b1", "b2", "b3"]);
    node.shutdown().await;
}
