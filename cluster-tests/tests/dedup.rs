//! Deduplication as a user sees it: the same 100 MiB under two keys costs nothing extra, and a
//! copy with one byte inserted in the middle costs a chunk or two, not 100 MiB.

use cairn_cluster_tests::{assert_ok, Server};

const MIB: u64 = 1 << 20;

#[test]
fn same_content_is_stored_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), 1);
    let out = server.python("dedup_client.py", &["setup"]);
    assert_ok(&out, "create bucket");

    let before = server.live_bytes();
    assert_ok(
        &server.python("dedup_client.py", &["put", "first", "0"]),
        "first upload",
    );
    let after_first = server.live_bytes();
    let first = after_first - before;
    assert!(first >= 100 * MIB, "first upload stored only {first} bytes");

    assert_ok(
        &server.python("dedup_client.py", &["put", "second", "0"]),
        "second upload",
    );
    let after_second = server.live_bytes();
    assert_eq!(after_second, after_first, "identical content was stored again");

    assert_ok(
        &server.python("dedup_client.py", &["put", "edited", "1"]),
        "edited upload",
    );
    let growth = server.live_bytes() - after_second;
    assert!(
        growth > 0 && growth <= 2 * 4 * MIB,
        "1-byte insertion grew storage by {growth} bytes"
    );

    // All three read back as written.
    for (key, insert) in [("first", "0"), ("second", "0"), ("edited", "1")] {
        assert_ok(&server.python("dedup_client.py", &["verify", key, insert]), key);
    }
}
