//! A damaged byte on disk costs only the record it hits, as a user sees it: 20 objects
//! written, bytes inside the first object's shard damaged while the server is down, restart.
//! With one disk (no parity) the 19 others read back bit-exact and the damaged one answers an
//! error, never wrong bytes; with three disks (2+1) the damaged one is rebuilt from parity.

use std::path::{Path, PathBuf};

use cairn_cluster_tests::{assert_ok, file_hash, write_random_file, Server};

const OBJECTS: u64 = 20;
const SIZE: u64 = 2_000_000;

fn first_segment(data: &Path, disk: usize) -> PathBuf {
    let dir = data.join("disks").join(format!("{disk:02}"));
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.remove(0)
}

/// Flips 64 bytes inside the first record's payload of segment `seg` (past the segment
/// header and the record header).
fn damage_first_record(seg: &Path) {
    let mut bytes = std::fs::read(seg).unwrap();
    for b in &mut bytes[4096..4160] {
        *b ^= 0x5A;
    }
    std::fs::write(seg, &bytes).unwrap();
}

fn damage_and_check(disks: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, disks);
    server.aws_ok(&["s3", "mb", "s3://bkt"]);
    let mut hashes = Vec::new();
    for n in 0..OBJECTS {
        let f = tmp.path().join(format!("obj{n}"));
        write_random_file(&f, SIZE, 1000 + n);
        hashes.push(file_hash(&f));
        // One at a time, so the first object's shards are the first records on every disk.
        server.aws_ok(&["s3", "cp", f.to_str().unwrap(), &format!("s3://bkt/obj{n}")]);
    }
    assert!(server.stop().success());

    // Flip 64 bytes inside the first record's payload of disk 0's first segment: a shard of
    // the first object's first chunk.
    let seg = first_segment(&data, 0);
    let len_before = std::fs::metadata(&seg).unwrap().len();
    damage_first_record(&seg);

    let server = Server::start(&data, disks);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        len_before,
        "recovery cut the segment"
    );
    for n in 0..OBJECTS {
        let out = tmp.path().join(format!("back{n}"));
        let got = server.aws(&["s3", "cp", &format!("s3://bkt/obj{n}"), out.to_str().unwrap()]);
        if n == 0 && disks == 1 {
            assert!(!got.status.success(), "a damaged object without parity was served");
            assert!(
                !out.exists() || file_hash(&out) != hashes[0],
                "impossible: damaged bytes read back right"
            );
        } else {
            assert_ok(&got, &format!("get obj{n}"));
            assert_eq!(file_hash(&out), hashes[n as usize], "obj{n} differs");
        }
    }
    let (corrupt, metrics) = server.metric("cairn_shard_corrupt_records_total");
    assert!(corrupt >= 1.0, "damage not counted; metrics:\n{metrics}");
}

#[test]
fn one_disk_loses_only_the_damaged_object() {
    damage_and_check(1);
}

#[test]
fn three_disks_rebuild_the_damaged_object_from_parity() {
    damage_and_check(3);
}

/// An object whose first chunk cannot be read is refused with a status (500 InternalError)
/// before any byte is sent, not answered 200 with a body that breaks off.
#[test]
fn an_unreadable_first_chunk_is_an_error_status() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, 1);
    server.aws_ok(&["s3", "mb", "s3://bkt"]);
    // 100 kB: one chunk, so one record on the one disk.
    let f = tmp.path().join("one");
    write_random_file(&f, 100_000, 77);
    server.aws_ok(&["s3", "cp", f.to_str().unwrap(), "s3://bkt/one"]);
    assert!(server.stop().success());
    damage_first_record(&first_segment(&data, 0));

    let server = Server::start(&data, 1);
    let out = tmp.path().join("back");
    let got = server.aws(&[
        "s3api",
        "get-object",
        "--bucket",
        "bkt",
        "--key",
        "one",
        out.to_str().unwrap(),
    ]);
    assert!(!got.status.success());
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(stderr.contains("(InternalError)"), "{stderr}");
}
