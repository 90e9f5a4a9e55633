use super::*;
use crate::kv::{MemKv, Overlay};
use crate::query::{self, ListParams};
use crate::records::*;
use crate::{ChunkRef, Command, InvalidCommand, Response};
use cairn_types::ChunkId;
use proptest::prelude::*;

pub(super) fn run(kv: &mut MemKv, cmd: &Command) -> Result<Response> {
    let mut o = Overlay::new(&*kv);
    let r = apply(&mut o, cmd);
    if r.is_ok() {
        let w = o.into_writes();
        kv.commit(w);
    }
    r
}

pub(super) fn scheme() -> ErasureScheme {
    ErasureScheme::new(1, 0).unwrap()
}

pub(super) fn bucket(kv: &mut MemKv, name: &str) {
    let b = BucketRecord {
        name: name.into(),
        owner: "alice".into(),
        created: 1,
    };
    run(kv, &Command::CreateBucket { bucket: b }).unwrap();
}

pub(super) fn obj(chunks: &[u8], etag: &str) -> ObjectRecord {
    ObjectRecord {
        version_id: format!("v-{etag}"),
        size: chunks.len() as u64 * 10,
        etag: etag.into(),
        last_modified: 5,
        attrs: Default::default(),
        checksums: Default::default(),
        body: Body::Chunks(
            chunks
                .iter()
                .map(|c| ChunkRef {
                    id: ChunkId([*c; 32]),
                    len: 10,
                })
                .collect(),
        ),
        parts: vec![],
        owner: "alice".into(),
        storage_class: None,
    }
}

pub(super) fn put(kv: &mut MemKv, key: &str, chunks: &[u8], written: &[u8]) -> Result<Response> {
    let version = format!("v-{}", key.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    put_version(kv, key, &version, chunks, written)
}

/// Puts `bucket b1/key` as version `version` made of `chunks` (each 10 bytes).
pub(super) fn put_version(kv: &mut MemKv, key: &str, version: &str, chunks: &[u8], written: &[u8]) -> Result<Response> {
    let mut object = obj(chunks, key);
    object.version_id = version.into();
    run(
        kv,
        &Command::PutObject {
            bucket: "b1".into(),
            key: key.into(),
            object: Box::new(object),
            written: written.iter().map(|c| ChunkId([*c; 32])).collect(),
            scheme: scheme(),
            if_none_match: false,
            if_match: None,
        },
    )
}

/// References to chunk `c` that `o` holds, in its record or its stored-apart pages.
pub(super) fn held(kv: &MemKv, o: &ObjectRecord, c: u8) -> u64 {
    let count = |refs: &[ChunkRef]| refs.iter().filter(|r| r.id == ChunkId([c; 32])).count() as u64;
    match &o.body {
        Body::Inline(_) => 0,
        Body::Chunks(refs) => count(refs),
        Body::Paged(_) => query::manifest_pages(kv, &o.version_id, 0, usize::MAX)
            .unwrap()
            .iter()
            .map(|p| count(&p.chunks))
            .sum(),
    }
}

pub(super) fn refs(kv: &MemKv, c: u8) -> u64 {
    query::chunk(kv, &ChunkId([c; 32])).unwrap().map_or(0, |r| r.refcount)
}

#[test]
fn bucket_lifecycle_and_errors() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    let again = BucketRecord {
        name: "b1".into(),
        owner: "alice".into(),
        created: 2,
    };
    assert_eq!(
        run(&mut kv, &Command::CreateBucket { bucket: again.clone() }),
        Err(MetaError::BucketAlreadyOwnedByYou)
    );
    let other = BucketRecord {
        owner: "bob".into(),
        ..again
    };
    assert_eq!(
        run(&mut kv, &Command::CreateBucket { bucket: other }),
        Err(MetaError::BucketAlreadyExists)
    );
    put(&mut kv, "k", &[1], &[1]).unwrap();
    assert_eq!(
        run(&mut kv, &Command::DeleteBucket { name: "b1".into() }),
        Err(MetaError::BucketNotEmpty)
    );
    run(
        &mut kv,
        &Command::DeleteObjects {
            bucket: "b1".into(),
            keys: vec!["k".into()],
        },
    )
    .unwrap();
    run(&mut kv, &Command::DeleteBucket { name: "b1".into() }).unwrap();
    assert_eq!(
        run(&mut kv, &Command::DeleteBucket { name: "b1".into() }),
        Err(MetaError::NoSuchBucket)
    );
}

#[test]
fn refcounts_follow_references() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    put(&mut kv, "a", &[1, 2, 2], &[1, 2]).unwrap();
    assert_eq!((refs(&kv, 1), refs(&kv, 2)), (1, 2));
    // Dedup: relies on existing chunks without writing them.
    put(&mut kv, "b", &[1], &[]).unwrap();
    assert_eq!(refs(&kv, 1), 2);
    // Overwrite drops the old version's references.
    put(&mut kv, "a", &[3], &[3]).unwrap();
    assert_eq!((refs(&kv, 1), refs(&kv, 2), refs(&kv, 3)), (1, 0, 1));
    // A chunk nobody references any more is revived while the collector has not claimed it.
    put(&mut kv, "c", &[2, 3], &[]).unwrap();
    assert_eq!((refs(&kv, 2), refs(&kv, 3)), (1, 2));
    // Relying on a chunk never stored fails and changes nothing.
    assert_eq!(
        put(&mut kv, "d", &[3, 9], &[]),
        Err(MetaError::ChunksGone(vec![ChunkId([9; 32])]))
    );
    assert_eq!(refs(&kv, 3), 2);
    assert!(query::object(&kv, "b1", "d").unwrap().is_none());
}

#[test]
fn conditional_puts() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    let cmd = |inm: bool, im: Option<&str>| Command::PutObject {
        bucket: "b1".into(),
        key: "k".into(),
        object: Box::new(obj(&[], "e1")),
        written: vec![],
        scheme: scheme(),
        if_none_match: inm,
        if_match: im.map(String::from),
    };
    assert_eq!(run(&mut kv, &cmd(false, Some("e1"))), Err(MetaError::NoSuchKey));
    run(&mut kv, &cmd(true, None)).unwrap();
    assert_eq!(run(&mut kv, &cmd(true, None)), Err(MetaError::PreconditionFailed));
    assert_eq!(
        run(&mut kv, &cmd(false, Some("zz"))),
        Err(MetaError::PreconditionFailed)
    );
    run(&mut kv, &cmd(false, Some("\"e1\""))).unwrap();
}

/// Starts upload `upload_id` of `b1/key`, owned by alice.
pub(super) fn create_upload(kv: &mut MemKv, key: &str, upload_id: &str) {
    let upload = UploadRecord {
        upload_id: upload_id.into(),
        bucket: "b1".into(),
        key: key.into(),
        initiated: 1,
        attrs: Default::default(),
        checksum_algorithm: None,
        owner: "alice".into(),
        storage_class: Some("REDUCED_REDUNDANCY".into()),
    };
    run(kv, &Command::CreateUpload { upload }).unwrap();
}

pub(super) fn part(n: u32, size: u64, etag: &str, chunk: u8) -> PartRecord {
    PartRecord {
        number: n,
        size,
        etag: etag.into(),
        last_modified: 1,
        body: Body::Chunks(vec![ChunkRef {
            id: ChunkId([chunk; 32]),
            len: size as u32,
        }]),
        checksums: Default::default(),
    }
}

#[test]
fn malformed_commands_are_refused_without_touching_the_state() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    let mut inline = part(1, 3, "00", 1);
    inline.body = Body::Inline(b"abc".to_vec());
    let mut zero = part(1, 10, "00", 1);
    zero.number = 0;
    let mut lying = part(1, 10, "00", 1);
    lying.size = 11;
    for (p, want) in [
        (inline, InvalidCommand::InlinePart),
        (zero, InvalidCommand::PartNumber(0)),
        (lying, InvalidCommand::SizeMismatch),
    ] {
        let before = kv.clone();
        let cmd = Command::PutPart {
            bucket: "b1".into(),
            key: "k".into(),
            upload_id: "u".into(),
            part: p,
            written: vec![],
            scheme: scheme(),
        };
        assert_eq!(run(&mut kv, &cmd), Err(MetaError::Invalid(want)));
        assert_eq!(kv, before);
    }
}

#[test]
fn multipart_complete_checks_parts_and_moves_references() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    create_upload(&mut kv, "big", "u1");
    let md5a = "0cc175b9c0f1b6a831c399e269772661";
    let md5b = "92eb5ffee6ae2fec3ad71c777531578f";
    for (n, size, e, c) in [(1, 100, md5a, 1u8), (2, 5, md5b, 2), (3, 100, md5a, 3)] {
        run(
            &mut kv,
            &Command::PutPart {
                bucket: "b1".into(),
                key: "big".into(),
                upload_id: "u1".into(),
                part: part(n, size, e, c),
                written: vec![ChunkId([c; 32])],
                scheme: scheme(),
            },
        )
        .unwrap();
    }
    let complete = |parts: Vec<(u32, &str)>| Command::CompleteUpload {
        bucket: "b1".into(),
        key: "big".into(),
        upload_id: "u1".into(),
        parts: parts.into_iter().map(|(n, e)| (n, e.to_string())).collect(),
        version_id: "v".into(),
        last_modified: 9,
        if_none_match: false,
        min_part_size: 50,
    };
    assert_eq!(
        run(&mut kv, &complete(vec![(2, md5b), (1, md5a)])),
        Err(MetaError::InvalidPartOrder)
    );
    assert_eq!(run(&mut kv, &complete(vec![(1, md5b)])), Err(MetaError::InvalidPart(1)));
    assert_eq!(
        run(&mut kv, &complete(vec![(2, md5b), (3, md5a)])),
        Err(MetaError::EntityTooSmall(2))
    );
    let Response::Object(o) = run(&mut kv, &complete(vec![(1, md5a), (2, md5b)])).unwrap() else {
        panic!()
    };
    // md5 of the two binary MD5s, then "-2", as S3 computes it.
    assert_eq!(
        o.etag,
        "a2b8f5a0f2d2e2e3bb7f5a2a4fd8e5b2-2".replace("a2b8f5a0f2d2e2e3bb7f5a2a4fd8e5b2", &{
            let mut m = Md5::new();
            m.update(hex::decode(md5a).unwrap());
            m.update(hex::decode(md5b).unwrap());
            hex::encode(m.finalize())
        })
    );
    assert_eq!(o.size, 105);
    assert_eq!(o.parts.len(), 2);
    assert_eq!(
        o.storage_class.as_deref(),
        Some("REDUCED_REDUNDANCY"),
        "the upload's class"
    );
    // Parts 1, 2 now belong to the object; part 3 was dropped.
    assert_eq!((refs(&kv, 1), refs(&kv, 2), refs(&kv, 3)), (1, 1, 0));
    assert!(query::upload(&kv, "b1", "big", "u1").unwrap().is_none());
    // A retry after a lost response gets the same object; other part lists do not.
    let again = run(&mut kv, &complete(vec![(1, md5a), (2, md5b)])).unwrap();
    assert_eq!(again, Response::Object(o.clone()));
    assert_eq!((refs(&kv, 1), refs(&kv, 2)), (1, 1), "a retry takes no references");
    assert_eq!(run(&mut kv, &complete(vec![(1, md5a)])), Err(MetaError::NoSuchUpload));
    // Once the object is replaced, the upload is gone for good.
    put(&mut kv, "big", &[7], &[7]).unwrap();
    assert_eq!(
        run(&mut kv, &complete(vec![(1, md5a), (2, md5b)])),
        Err(MetaError::NoSuchUpload)
    );
}

#[test]
fn a_guarded_write_lands_only_in_the_bucket_it_checked() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    let checked = query::bucket(&kv, "b1").unwrap().unwrap();
    let guarded = |key: &str| Command::InBucket {
        bucket: "b1".into(),
        owner: checked.owner.clone(),
        created: checked.created,
        command: Box::new(Command::PutObject {
            bucket: "b1".into(),
            key: key.into(),
            object: Box::new(obj(&[1], key)),
            written: vec![ChunkId([1; 32])],
            scheme: scheme(),
            if_none_match: false,
            if_match: None,
        }),
    };
    run(&mut kv, &guarded("first")).unwrap();
    // The bucket is emptied, deleted and re-created by someone else.
    run(
        &mut kv,
        &Command::DeleteObjects {
            bucket: "b1".into(),
            keys: vec!["first".into()],
        },
    )
    .unwrap();
    run(&mut kv, &Command::DeleteBucket { name: "b1".into() }).unwrap();
    let other = BucketRecord {
        name: "b1".into(),
        owner: "mallory".into(),
        created: checked.created + 1,
    };
    run(&mut kv, &Command::CreateBucket { bucket: other }).unwrap();
    let before = kv.clone();
    assert_eq!(run(&mut kv, &guarded("second")), Err(MetaError::NoSuchBucket));
    assert_eq!(kv, before);
    // A guard must wrap a write into its own bucket.
    let mut bad = guarded("x");
    if let Command::InBucket { bucket, .. } = &mut bad {
        *bucket = "b2".into();
    }
    assert_eq!(run(&mut kv, &bad), Err(MetaError::Invalid(InvalidCommand::BadGuard)));
}

#[test]
fn deleting_a_bucket_discards_its_incomplete_uploads() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    create_upload(&mut kv, "k", "u1");
    run(
        &mut kv,
        &Command::PutPart {
            bucket: "b1".into(),
            key: "k".into(),
            upload_id: "u1".into(),
            part: part(1, 10, "00", 4),
            written: vec![ChunkId([4; 32])],
            scheme: scheme(),
        },
    )
    .unwrap();
    assert_eq!(refs(&kv, 4), 1);
    run(&mut kv, &Command::DeleteBucket { name: "b1".into() }).unwrap();
    assert_eq!(refs(&kv, 4), 0, "the part's reference was dropped");
    assert!(query::parts(&kv, "u1", 0, 10).unwrap().is_empty());
    // The name is free again, with no upload left behind.
    bucket(&mut kv, "b1");
    assert!(query::upload(&kv, "b1", "k", "u1").unwrap().is_none());
}

#[test]
fn listing_rolls_up_prefixes_and_pages() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    for k in ["a/1", "a/2", "b", "c/x/1", "c/y", "d"] {
        put(&mut kv, k, &[], &[]).unwrap();
    }
    let list = |prefix: &str, delim: Option<&str>, after: Option<&str>, max: usize| {
        query::list_objects(
            &kv,
            "b1",
            &ListParams {
                prefix,
                delimiter: delim,
                after,
                max_keys: max,
            },
        )
        .unwrap()
    };
    let p = list("", Some("/"), None, 1000);
    assert_eq!(p.common_prefixes, vec!["a/", "c/"]);
    assert_eq!(
        p.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["b", "d"]
    );
    assert!(!p.truncated);
    // Paging through with max 1 visits each entry once.
    let mut seen = vec![];
    let mut after: Option<String> = None;
    loop {
        let p = list("", Some("/"), after.as_deref(), 1);
        seen.extend(p.common_prefixes.clone());
        seen.extend(p.objects.iter().map(|(k, _)| k.clone()));
        if !p.truncated {
            break;
        }
        after = p.last;
    }
    assert_eq!(seen, vec!["a/", "b", "c/", "d"]);
    let p = list("c/", Some("/"), None, 1000);
    assert_eq!(p.common_prefixes, vec!["c/x/"]);
    assert_eq!(p.objects.len(), 1);
    let p = list("", None, Some("b"), 2);
    assert_eq!(
        p.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["c/x/1", "c/y"]
    );
    assert!(p.truncated);
    // max-keys=0: an empty page that is not truncated (S3 gives no token to follow).
    let p = list("", None, None, 0);
    assert!(!p.truncated && p.objects.is_empty() && p.common_prefixes.is_empty());
    // StartAfter equal to the prefix starts at the prefix's first key.
    let p = list("c/", Some("/"), Some("c/"), 1000);
    assert_eq!(p.common_prefixes, vec!["c/x/"]);
    assert_eq!(p.objects.len(), 1);
    let p = list("a/", Some("/"), Some("a/"), 1000);
    assert_eq!(
        p.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["a/1", "a/2"]
    );
}

/// Counts the pairs scans return, to measure what a listing reads.
struct Counting<'a> {
    kv: &'a MemKv,
    pairs: std::cell::Cell<usize>,
}

impl crate::KvRead for Counting<'_> {
    fn get(&self, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, crate::KvError> {
        self.kv.get(key)
    }
    fn scan(&self, from: &[u8], to: &[u8], limit: usize) -> std::result::Result<crate::KvPairs, crate::KvError> {
        let r = self.kv.scan(from, to, limit)?;
        self.pairs.set(self.pairs.get() + r.len());
        Ok(r)
    }
}

#[test]
fn a_page_of_common_prefixes_costs_the_page() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    for d in 0..300 {
        for f in 0..40 {
            put(&mut kv, &format!("dir{d:04}/f{f:03}"), &[], &[]).unwrap();
        }
    }
    let counting = Counting {
        kv: &kv,
        pairs: std::cell::Cell::new(0),
    };
    let params = ListParams {
        prefix: "",
        delimiter: Some("/"),
        after: None,
        max_keys: 1000,
    };
    let page = query::list_objects(&counting, "b1", &params).unwrap();
    assert_eq!(page.common_prefixes.len(), 300);
    // One short scan per prefix, not a read-ahead of the whole page under each of them.
    assert!(counting.pairs.get() <= 300 * 20, "read {} pairs", counting.pairs.get());
}

proptest! {
    // Seeded: the same cases on every run.
    #![proptest_config(ProptestConfig {
        cases: 32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0004),
        ..ProptestConfig::default()
    })]

    /// Replaying the same commands on the same state gives the same bytes: every replica and
    /// every restart agree.
    #[test]
    fn apply_is_deterministic(ops in proptest::collection::vec((0u8..5, 0u8..6, 0u8..3), 1..40)) {
        let mut runs = Vec::new();
        for _ in 0..2 {
            let mut kv = MemKv::default();
            bucket(&mut kv, "b1");
            let mut outcomes = Vec::new();
            for (i, (op, k, c)) in ops.iter().enumerate() {
                let key = format!("k{k}");
                // Version ids are unique per write, as the store makes them.
                let version = format!("v{i}");
                let r = match op {
                    0 | 1 => put_version(&mut kv, &key, &version, &[*c, c + 1], &[*c]),
                    2 => run(&mut kv, &Command::DeleteObjects { bucket: "b1".into(), keys: vec![key] }),
                    3 => put_version(&mut kv, &key, &version, &[*c], &[]),
                    // Large enough to be stored apart.
                    _ => put_version(&mut kv, &key, &version, &[*c, c + 1].repeat(40), &[*c, c + 1]),
                };
                outcomes.push(r);
            }
            runs.push((kv, outcomes));
        }
        prop_assert_eq!(&runs[0], &runs[1]);
        // Refcounts equal the number of references held by live objects.
        let kv = &runs[0].0;
        for c in 0u8..5 {
            let held: u64 = (0u8..6)
                .filter_map(|k| query::object(kv, "b1", &format!("k{k}")).unwrap())
                .map(|o| held(kv, &o, c))
                .sum();
            prop_assert_eq!(refs(kv, c), held);
        }
    }
}

/// Keys holding NUL and other control bytes (S3 accepts any UTF-8) keep uploads apart, listed
/// in (key, upload id) order, and markers resume at the right place.
#[test]
fn upload_keys_with_nul_bytes_stay_unambiguous_and_ordered() {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    let keys = ["a", "a\0", "a\0b", "a\u{1}", "a\0\0", "b"];
    for (i, key) in keys.iter().enumerate() {
        for u in ["u1", "u2"] {
            create_upload(&mut kv, key, &format!("{u}-{i}"));
        }
    }
    let listed = |prefix: &str, key_marker: &str, id_marker: &str| -> Vec<(String, String)> {
        query::uploads(&kv, "b1", prefix, key_marker, id_marker, 100)
            .unwrap()
            .into_iter()
            .map(|u| (u.key, u.upload_id))
            .collect()
    };
    let mut expected: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, k)| ["u1", "u2"].map(|u| (k.to_string(), format!("{u}-{i}"))))
        .collect();
    expected.sort();
    assert_eq!(listed("", "", ""), expected);
    // After every upload of "a": the keys that extend it with NUL come next.
    let after_a: Vec<_> = expected.iter().filter(|(k, _)| k.as_str() > "a").cloned().collect();
    assert_eq!(listed("", "a", ""), after_a);
    assert_eq!(listed("", "a\0", "u1-1")[0], ("a\0".to_string(), "u2-1".to_string()));
    let under: Vec<_> = expected.iter().filter(|(k, _)| k.starts_with("a\0")).cloned().collect();
    assert_eq!(listed("a\0", "", ""), under);
    // The (key, upload id) pair cannot be forged by moving a NUL between them.
    assert!(query::upload(&kv, "b1", "a", "b\0u1-2").unwrap().is_none());
    assert_eq!(query::upload(&kv, "b1", "a\0b", "u1-2").unwrap().unwrap().key, "a\0b");
}

pub(super) fn storage_node(id: &str, heartbeat: UnixMillis) -> StorageNodeRecord {
    StorageNodeRecord {
        id: id.into(),
        addr: "127.0.0.1:9200".into(),
        zone: "z1".into(),
        disks: vec![DiskRecord {
            path: "/srv/d0".into(),
            capacity_total: 100,
            capacity_free: 40,
            writable: true,
            shards: 3,
            damaged: 0,
        }],
        registered: heartbeat,
        heartbeat,
        pool: None,
    }
}

#[test]
fn storage_nodes_report_and_keep_their_first_registration() {
    let mut kv = MemKv::default();
    run(
        &mut kv,
        &Command::ReportStorageNode {
            node: storage_node("b", 10),
        },
    )
    .unwrap();
    run(
        &mut kv,
        &Command::ReportStorageNode {
            node: storage_node("a", 20),
        },
    )
    .unwrap();
    let mut later = storage_node("b", 30);
    later.addr = "127.0.0.1:9300".into();
    run(&mut kv, &Command::ReportStorageNode { node: later }).unwrap();
    let nodes = query::storage_nodes(&kv).unwrap();
    assert_eq!(nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let b = &nodes[1];
    assert_eq!((b.registered, b.heartbeat, b.addr.as_str()), (10, 30, "127.0.0.1:9300"));

    // Malformed reports never reach the state.
    let mut bad = Vec::new();
    for (what, f) in [
        (
            "empty id",
            (|n: &mut StorageNodeRecord| n.id.clear()) as fn(&mut StorageNodeRecord),
        ),
        ("id with a space", |n| n.id = "a b".into()),
        ("long id", |n| n.id = "x".repeat(65)),
        ("no disks", |n| n.disks.clear()),
        ("empty zone", |n| n.zone.clear()),
        ("pool with a capital", |n| n.pool = Some("SSD".into())),
        ("the default pool by name", |n| n.pool = Some("default".into())),
        ("empty pool", |n| n.pool = Some(String::new())),
    ] {
        let mut n = storage_node("c", 40);
        f(&mut n);
        bad.push((what, n));
    }
    for (what, node) in bad {
        let cmd = Command::ReportStorageNode { node };
        assert_eq!(cmd.validate(), Err(InvalidCommand::StorageNode), "{what}");
        assert!(run(&mut kv, &cmd).is_err(), "{what}");
    }
    assert_eq!(query::storage_nodes(&kv).unwrap().len(), 2);
}

#[test]
fn the_access_version_counts_key_and_bucket_changes_only() {
    let mut kv = MemKv::default();
    let v = |kv: &MemKv| query::access_version(kv).unwrap();
    assert_eq!(v(&kv), 0);
    bucket(&mut kv, "b1");
    assert_eq!(v(&kv), 1);
    let key = KeyRecord {
        access_key: "AK".into(),
        secret_key: "s".into(),
        name: "n".into(),
        created: 1,
    };
    run(&mut kv, &Command::CreateKey { key: key.clone() }).unwrap();
    assert_eq!(v(&kv), 2);
    // Refused changes and object writes leave it.
    assert!(run(&mut kv, &Command::CreateKey { key }).is_err());
    put(&mut kv, "k", &[1], &[1]).unwrap();
    assert!(run(&mut kv, &Command::DeleteBucket { name: "b1".into() }).is_err());
    assert_eq!(v(&kv), 2);
    run(
        &mut kv,
        &Command::DeleteKey {
            access_key: "AK".into(),
        },
    )
    .unwrap();
    assert_eq!(v(&kv), 3);
    bucket(&mut kv, "b2");
    run(&mut kv, &Command::DeleteBucket { name: "b2".into() }).unwrap();
    assert_eq!(v(&kv), 5);
}
