//! Abandoned multipart uploads expire on the real server: with `multipart_expiry_secs` set
//! short, an upload left incomplete (a part stored, never completed nor aborted) disappears from
//! ListMultipartUploads, the expiry is counted on `/metrics` and shown by the admin API and
//! `cairn admin workers`, and the bucket can be removed.

use std::time::{Duration, Instant};

use cairn_cluster_tests::{assert_ok, write_random_file, Server};

#[test]
fn an_abandoned_upload_is_aborted_after_the_configured_age() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _) = Server::start_env(
        &tmp.path().join("data"),
        1,
        true,
        &[],
        &[("CAIRN_MULTIPART_EXPIRY_SECS", "2")],
    );
    server.aws_ok(&["s3", "mb", "s3://bkt"]);
    let created = server.aws_ok(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "bkt",
        "--key",
        "left-behind",
        "--query",
        "UploadId",
        "--output",
        "text",
    ]);
    let upload_id = created.trim();
    let part = tmp.path().join("part");
    write_random_file(&part, 1 << 20, 9);
    assert_ok(
        &server.aws(&[
            "s3api",
            "upload-part",
            "--bucket",
            "bkt",
            "--key",
            "left-behind",
            "--upload-id",
            upload_id,
            "--part-number",
            "1",
            "--body",
            part.to_str().unwrap(),
        ]),
        "upload-part",
    );
    // Wait (bounded) for the expiry worker to abort it.
    let listed = || {
        server.aws_ok(&[
            "s3api",
            "list-multipart-uploads",
            "--bucket",
            "bkt",
            "--query",
            "length(Uploads || `[]`)",
        ])
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while listed().trim() != "0" {
        assert!(Instant::now() < deadline, "the upload was not expired");
        std::thread::sleep(Duration::from_millis(250));
    }
    let (expired, metrics) = server.metric("cairn_uploads_expired_total");
    assert!(expired >= 1.0, "expiry not counted; metrics:\n{metrics}");
    let parts = server.aws(&[
        "s3api",
        "list-parts",
        "--bucket",
        "bkt",
        "--key",
        "left-behind",
        "--upload-id",
        upload_id,
    ]);
    assert!(
        !parts.status.success(),
        "the parts of an expired upload are still listed"
    );
    server.aws_ok(&["s3", "rb", "s3://bkt"]);
    // The worker's status, in the admin API and through `cairn admin workers`.
    let workers = server.admin_get("/admin/v1/workers");
    let expiry = workers
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["name"] == "upload-expiry"))
        .unwrap_or_else(|| panic!("no upload-expiry worker in {workers}"));
    assert!(expiry["total_items"].as_u64() >= Some(1), "{expiry}");
    assert!(expiry["passes"].as_u64() >= Some(1), "{expiry}");
    let data = tmp.path().join("data");
    let out = server.cairn(&["admin", "workers"], &[("CAIRN_DATA", data.to_str().unwrap())]);
    assert_ok(&out, "cairn admin workers");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("upload-expiry"), "{table}");
}
