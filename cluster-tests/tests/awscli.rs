//! aws-cli against the real server: a 1 GiB multipart round trip compared bit-exact, sync, ls,
//! recursive rm, multipart by hand with s3api, and the errors a user sees.

use cairn_cluster_tests::{file_hash, write_random_file, Server};

#[test]
fn aws_cli_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    // Three disks: chunks are stored as 2+1 Reed-Solomon stripes.
    let server = Server::start(&tmp.path().join("data"), 3);

    // Phase: bucket.
    server.aws_ok(&["s3", "mb", "s3://photos"]);
    assert!(server.aws_ok(&["s3", "ls"]).contains("photos"));
    let again = server.aws(&["s3api", "create-bucket", "--bucket", "photos"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("BucketAlreadyOwnedByYou"));

    // Phase: 1 GiB up and down (aws-cli uses multipart with checksums), bit-exact.
    let big = tmp.path().join("big.iso");
    write_random_file(&big, 1 << 30, 42);
    server.aws_ok(&["s3", "cp", big.to_str().unwrap(), "s3://photos/big.iso"]);
    let back = tmp.path().join("big.back");
    server.aws_ok(&["s3", "cp", "s3://photos/big.iso", back.to_str().unwrap()]);
    assert_eq!(file_hash(&big), file_hash(&back), "1 GiB round trip differs");
    std::fs::remove_file(&back).unwrap();
    let head = server.aws_ok(&["s3api", "head-object", "--bucket", "photos", "--key", "big.iso"]);
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ContentLength"].as_u64(), Some(1 << 30));
    assert!(head["ETag"].as_str().unwrap().contains('-'), "multipart ETag: {head}");

    // Phase: sync a directory tree, list it, sync again (nothing to do).
    let album = tmp.path().join("album");
    for (i, name) in ["a.jpg", "b.jpg", "sub/c.jpg", "sub/deeper/d.jpg", "empty.txt"]
        .iter()
        .enumerate()
    {
        let p = album.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let len = if *name == "empty.txt" {
            0
        } else {
            100_000 * (i as u64 + 1)
        };
        write_random_file(&p, len, i as u64 + 7);
    }
    server.aws_ok(&["s3", "sync", album.to_str().unwrap(), "s3://photos/album"]);
    let ls = server.aws_ok(&["s3", "ls", "--recursive", "s3://photos/album/"]);
    for name in [
        "album/a.jpg",
        "album/sub/c.jpg",
        "album/sub/deeper/d.jpg",
        "album/empty.txt",
    ] {
        assert!(ls.contains(name), "{name} missing from:\n{ls}");
    }
    let top = server.aws_ok(&["s3", "ls", "s3://photos/album/"]);
    assert!(top.contains("PRE sub/"), "{top}");
    let resync = server.aws_ok(&["s3", "sync", album.to_str().unwrap(), "s3://photos/album"]);
    assert!(resync.trim().is_empty(), "second sync uploaded again: {resync}");
    let down = tmp.path().join("down");
    server.aws_ok(&["s3", "sync", "s3://photos/album", down.to_str().unwrap()]);
    for name in ["a.jpg", "sub/deeper/d.jpg", "empty.txt"] {
        assert_eq!(file_hash(&album.join(name)), file_hash(&down.join(name)), "{name}");
    }

    // Phase: multipart by hand with s3api.
    let part = tmp.path().join("part");
    write_random_file(&part, 5 << 20, 9);
    let created = server.aws_ok(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "photos",
        "--key",
        "manual",
    ]);
    let upload_id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["UploadId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut etags = Vec::new();
    for n in ["1", "2"] {
        let out = server.aws_ok(&[
            "s3api",
            "upload-part",
            "--bucket",
            "photos",
            "--key",
            "manual",
            "--part-number",
            n,
            "--upload-id",
            &upload_id,
            "--body",
            part.to_str().unwrap(),
        ]);
        etags.push(
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["ETag"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let parts = server.aws_ok(&[
        "s3api",
        "list-parts",
        "--bucket",
        "photos",
        "--key",
        "manual",
        "--upload-id",
        &upload_id,
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&parts).unwrap()["Parts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let uploads = server.aws_ok(&["s3api", "list-multipart-uploads", "--bucket", "photos"]);
    assert!(uploads.contains(&upload_id));
    let spec = serde_json::json!({"Parts": [
        {"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": etags[1]}
    ]});
    let done = server.aws_ok(&[
        "s3api",
        "complete-multipart-upload",
        "--bucket",
        "photos",
        "--key",
        "manual",
        "--upload-id",
        &upload_id,
        "--multipart-upload",
        &spec.to_string(),
    ]);
    assert!(done.contains("-2"), "{done}");
    let head = server.aws_ok(&["s3api", "head-object", "--bucket", "photos", "--key", "manual"]);
    assert!(head.contains(&(10u64 << 20).to_string()), "{head}");

    // Phase: errors a user sees.
    let missing = server.aws(&[
        "s3api",
        "get-object",
        "--bucket",
        "photos",
        "--key",
        "nope",
        "/dev/null",
    ]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NoSuchKey"));
    let nobucket = server.aws(&["s3", "ls", "s3://no-such-bucket"]);
    assert!(String::from_utf8_lossy(&nobucket.stderr).contains("NoSuchBucket"));
    let wrong = server.aws_as(
        "CKTESTROOTACCESSKEY1",
        "wrong-secret-wrong-secret-wrong-secret!",
        &["s3", "ls"],
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("SignatureDoesNotMatch"));
    let not_empty = server.aws(&["s3", "rb", "s3://photos"]);
    assert!(String::from_utf8_lossy(&not_empty.stderr).contains("BucketNotEmpty"));

    // Phase: recursive delete empties the bucket, which can then be removed.
    server.aws_ok(&["s3", "rm", "--recursive", "s3://photos"]);
    assert!(server
        .aws_ok(&["s3", "ls", "--recursive", "s3://photos"])
        .trim()
        .is_empty());
    server.aws_ok(&["s3", "rb", "s3://photos"]);
    assert!(!server.aws_ok(&["s3", "ls"]).contains("photos"));
}
