//! Metadata cost of objects with many parts: HEAD (one object record) and a listing page of
//! such objects, over the in-memory reference store (its `get` copies the value, as RocksDB's
//! does), so the figure is the cost of reading and decoding the records themselves.
//!
//! Setup: objects of 10,000 parts of 5 chunk references each (5 MiB parts at the 1 MiB average
//! chunk size), completed through the same `apply` the state machine runs.

use cairn_meta::query::{self, ListParams};
use cairn_meta::{apply, Body, BucketRecord, ChunkRef, Command, MemKv, Overlay, PartRecord, UploadRecord};
use cairn_types::{ChunkId, ErasureScheme};
use criterion::{criterion_group, criterion_main, Criterion};

const PARTS: u32 = 10_000;
const CHUNKS_PER_PART: u32 = 5;
const OBJECTS: usize = 100;

fn run(kv: &mut MemKv, cmd: &Command) {
    let mut o = Overlay::new(&*kv);
    apply(&mut o, cmd).expect("command applies");
    let w = o.into_writes();
    kv.commit(w);
}

fn chunk(n: u32) -> ChunkRef {
    ChunkRef {
        id: ChunkId(*blake3::hash(&n.to_le_bytes()).as_bytes()),
        len: 1 << 20,
    }
}

/// Completes a `PARTS`-part upload as `key`.
fn big_object(kv: &mut MemKv, key: &str) {
    let upload_id = format!("up-{key}");
    run(
        kv,
        &Command::CreateUpload {
            upload: UploadRecord {
                upload_id: upload_id.clone(),
                bucket: "b".into(),
                key: key.into(),
                initiated: 1,
                attrs: Default::default(),
                checksum_algorithm: None,
                owner: "alice".into(),
                storage_class: None,
            },
        },
    );
    let scheme = ErasureScheme::new(1, 0).unwrap();
    let mut listed = Vec::new();
    for number in 1..=PARTS {
        let refs: Vec<ChunkRef> = (0..CHUNKS_PER_PART)
            .map(|i| chunk(number * CHUNKS_PER_PART + i))
            .collect();
        let etag = format!("{:032x}", number);
        run(
            kv,
            &Command::PutPart {
                bucket: "b".into(),
                key: key.into(),
                upload_id: upload_id.clone(),
                part: PartRecord {
                    number,
                    size: u64::from(CHUNKS_PER_PART) << 20,
                    etag: etag.clone(),
                    last_modified: 2,
                    body: Body::Chunks(refs.clone()),
                    checksums: Default::default(),
                },
                written: refs.iter().map(|c| c.id).collect(),
                scheme,
            },
        );
        listed.push((number, etag));
    }
    run(
        kv,
        &Command::CompleteUpload {
            bucket: "b".into(),
            key: key.into(),
            upload_id,
            parts: listed,
            version_id: format!("v-{}", key.replace('/', "-")),
            last_modified: 3,
            if_none_match: false,
            min_part_size: 0,
        },
    );
}

fn large_manifests(c: &mut Criterion) {
    let mut kv = MemKv::default();
    run(
        &mut kv,
        &Command::CreateBucket {
            bucket: BucketRecord {
                name: "b".into(),
                owner: "alice".into(),
                created: 1,
            },
        },
    );
    for i in 0..OBJECTS {
        big_object(&mut kv, &format!("big/{i:04}"));
    }
    let mut g = c.benchmark_group("manifest");
    g.sample_size(20);
    g.bench_function("head_10000_parts", |b| {
        b.iter(|| query::object(&kv, "b", "big/0042").unwrap().unwrap().size)
    });
    // What a ranged GET of 1 MiB in the middle reads before fetching chunks: the record, and
    // the manifest page(s) holding the range.
    let middle = ((u64::from(PARTS) * u64::from(CHUNKS_PER_PART)) << 20) / 2;
    g.bench_function("range_1MiB_plan_10000_parts", |b| {
        b.iter(|| {
            let o = query::object(&kv, "b", "big/0042").unwrap().unwrap();
            query::manifest_pages(&kv, &o.version_id, middle, 2).unwrap().len()
        })
    });
    g.bench_function("list_100_objects_of_10000_parts", |b| {
        b.iter(|| {
            let p = ListParams {
                prefix: "big/",
                max_keys: 1000,
                ..Default::default()
            };
            query::list_objects(&kv, "b", &p).unwrap().objects.len()
        })
    });
    g.finish();
}

criterion_group!(benches, large_manifests);
criterion_main!(benches);
