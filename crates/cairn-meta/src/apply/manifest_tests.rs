//! Manifests stored apart from their records: paging, reading by offset, retiring, copying.

use super::tests::{bucket, create_upload, held, obj, part, put_version, refs, run, scheme};
use super::*;
use crate::kv::MemKv;
use crate::query;
use crate::records::{ManifestPage, PagedManifest, MANIFEST_PAGE_REFS};
use crate::{InvalidCommand, KvRead};

/// `n` chunk ids cycling through 0..200 (each chunk is 10 bytes long).
fn cycling(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 200) as u8).collect()
}

fn all_pages(kv: &MemKv, version: &str) -> Vec<ManifestPage> {
    query::manifest_pages(kv, version, 0, usize::MAX).unwrap()
}

fn copy(kv: &mut MemKv, from: (&str, &str), to: &str, version: &str) -> Result<Response> {
    run(
        kv,
        &Command::CopyObject {
            source_bucket: "b1".into(),
            source_key: from.0.into(),
            source_version: from.1.into(),
            bucket: "b1".into(),
            key: to.into(),
            version_id: version.into(),
            last_modified: 9,
            attrs: None,
            owner: "bob".into(),
        },
    )
}

#[test]
fn a_large_manifest_is_stored_apart_in_pages_found_by_offset() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    let ids = cycling(3000);
    put_version(&mut kv, "big", "v1", &ids, &cycling(200)).unwrap();

    let o = query::object(&kv, "b1", "big").unwrap().unwrap();
    assert_eq!(
        o.body,
        Body::Paged(PagedManifest {
            chunks: 3000,
            pages: 3,
            parts: 0
        })
    );
    assert_eq!(o.size, 30_000);
    // HEAD and listings decode this record only.
    assert!(kv.get(&keys::object_key("b1", "big")).unwrap().unwrap().len() < 256);

    let pages = all_pages(&kv, "v1");
    let starts: Vec<u64> = pages.iter().map(|p| p.start).collect();
    let page_bytes = MANIFEST_PAGE_REFS as u64 * 10;
    assert_eq!(starts, [0, page_bytes, 2 * page_bytes]);
    let stored: Vec<u8> = pages.iter().flat_map(|p| p.chunks.iter().map(|c| c.id.0[0])).collect();
    assert_eq!(stored, ids);

    let first = |offset: u64| query::manifest_pages(&kv, "v1", offset, 1).unwrap();
    assert_eq!(first(page_bytes - 1)[0].start, 0);
    assert_eq!(first(page_bytes)[0].start, page_bytes);
    assert_eq!(first(29_999)[0].start, 2 * page_bytes);
    assert!(first(30_000).is_empty());
    assert_eq!(refs(&kv, 5), 15);
    assert_eq!(held(&kv, &o, 5), 15);
}

#[test]
fn a_replaced_version_drops_its_references_and_keeps_its_pages_until_collected() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    put_version(&mut kv, "big", "v1", &cycling(3000), &cycling(200)).unwrap();
    put_version(&mut kv, "big", "v2", &[7], &[]).unwrap();
    assert_eq!(refs(&kv, 5), 0);
    assert_eq!(refs(&kv, 7), 1);
    // A read that started on v1 can still walk its pages.
    assert_eq!(all_pages(&kv, "v1").len(), 3);
    assert!(kv.get(&keys::retired_key("v1")).unwrap().is_some());
    // The same version id can never name a second manifest.
    assert_eq!(
        put_version(&mut kv, "other", "v1", &cycling(3000), &cycling(200)),
        Err(MetaError::VersionIdInUse)
    );
    // Deleting a paged version retires it too.
    put_version(&mut kv, "big", "v3", &cycling(40), &cycling(40)).unwrap();
    assert_eq!(refs(&kv, 5), 1);
    run(
        &mut kv,
        &Command::DeleteObjects {
            bucket: "b1".into(),
            keys: vec!["big".into()],
        },
    )
    .unwrap();
    assert_eq!(refs(&kv, 5), 0);
    assert!(kv.get(&keys::retired_key("v3")).unwrap().is_some());
}

#[test]
fn a_completed_upload_of_many_parts_keeps_its_layout_apart() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    create_upload(&mut kv, "big", "u1");
    let etag = "0cc175b9c0f1b6a831c399e269772661";
    let mut listed = Vec::new();
    for n in 1..=40u32 {
        run(
            &mut kv,
            &Command::PutPart {
                bucket: "b1".into(),
                key: "big".into(),
                upload_id: "u1".into(),
                part: part(n, 100, etag, n as u8),
                written: vec![ChunkId([n as u8; 32])],
                scheme: scheme(),
            },
        )
        .unwrap();
        listed.push((n, etag.to_string()));
    }
    let complete = Command::CompleteUpload {
        bucket: "b1".into(),
        key: "big".into(),
        upload_id: "u1".into(),
        parts: listed,
        version_id: "v1".into(),
        last_modified: 3,
        if_none_match: false,
        min_part_size: 0,
    };
    let Response::Object(o) = run(&mut kv, &complete).unwrap() else {
        panic!("no object")
    };
    assert_eq!(o.part_count(), 40);
    assert!(o.parts.is_empty());
    assert_eq!(Some(&*o), query::object(&kv, "b1", "big").unwrap().as_ref());
    let ext = query::part_extent(&kv, "v1", 17).unwrap().unwrap();
    assert_eq!((ext.number, ext.offset, ext.size), (17, 1600, 100));
    assert_eq!(query::part_extent(&kv, "v1", 41).unwrap(), None);
    assert_eq!(refs(&kv, 17), 1);
    // A retried Complete answers the same version.
    assert_eq!(run(&mut kv, &complete).unwrap(), Response::Object(o));
}

#[test]
fn a_copy_shares_the_pages_and_counts_its_references() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    put_version(&mut kv, "src", "v1", &cycling(3000), &cycling(200)).unwrap();
    let Response::Object(c) = copy(&mut kv, ("src", "v1"), "dst", "v2").unwrap() else {
        panic!("no object")
    };
    assert_eq!((c.version_id.as_str(), c.owner.as_str(), c.size), ("v2", "bob", 30_000));
    assert_eq!(all_pages(&kv, "v2"), all_pages(&kv, "v1"));
    assert_eq!(refs(&kv, 5), 30);

    // The source changed since the proposer read it: nothing happens.
    let before = kv.clone();
    assert_eq!(copy(&mut kv, ("src", "v0"), "dst", "v3"), Err(MetaError::SourceChanged));
    assert_eq!(
        copy(&mut kv, ("gone", "v1"), "dst", "v3"),
        Err(MetaError::SourceChanged)
    );
    assert_eq!(kv, before);

    // A copy onto itself (to change metadata) keeps every chunk referenced.
    copy(&mut kv, ("src", "v1"), "src", "v4").unwrap();
    assert_eq!(refs(&kv, 5), 30);
    assert!(kv.get(&keys::retired_key("v1")).unwrap().is_some());

    // Small objects are copied by reference too.
    put_version(&mut kv, "small", "v5", &[201, 202], &[201, 202]).unwrap();
    copy(&mut kv, ("small", "v5"), "small2", "v6").unwrap();
    assert_eq!(refs(&kv, 201), 2);
}

#[test]
fn commands_cannot_carry_paged_bodies_odd_version_ids_or_empty_chunks() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    let put = |object: ObjectRecord| Command::PutObject {
        bucket: "b1".into(),
        key: "k".into(),
        object: Box::new(object),
        written: vec![],
        scheme: scheme(),
        if_none_match: false,
        if_match: None,
    };
    let mut paged = obj(&[], "e");
    paged.body = Body::Paged(PagedManifest {
        chunks: 0,
        pages: 0,
        parts: 0,
    });
    let mut empty_chunk = obj(&[1], "e");
    empty_chunk.size = 0;
    if let Body::Chunks(c) = &mut empty_chunk.body {
        c[0].len = 0;
    }
    let mut cases = vec![
        (paged, InvalidCommand::PagedBody),
        (empty_chunk, InvalidCommand::EmptyChunk),
    ];
    for id in ["", "a\0b", "a/b", &"x".repeat(65)] {
        let mut o = obj(&[], "e");
        o.version_id = id.into();
        cases.push((o, InvalidCommand::VersionId));
    }
    for (o, want) in cases {
        let before = kv.clone();
        assert_eq!(run(&mut kv, &put(o)), Err(MetaError::Invalid(want)));
        assert_eq!(kv, before);
    }
    let guarded = |bucket: &str| Command::InBucket {
        bucket: bucket.into(),
        owner: "alice".into(),
        created: 1,
        command: Box::new(Command::CopyObject {
            source_bucket: "b1".into(),
            source_key: "k".into(),
            source_version: "v".into(),
            bucket: "b1".into(),
            key: "k2".into(),
            version_id: "v2".into(),
            last_modified: 1,
            attrs: None,
            owner: "alice".into(),
        }),
    };
    assert_eq!(guarded("b1").validate(), Ok(()));
    assert_eq!(guarded("b2").validate(), Err(InvalidCommand::BadGuard));
}
