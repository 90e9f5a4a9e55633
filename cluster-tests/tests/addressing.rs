//! Virtual-host-style (`bucket.DOMAIN`) and path-style addressing on one server.

use cairn_cluster_tests::{assert_ok, Server};

#[test]
fn virtual_host_and_path_style() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _) = Server::start_with(&tmp.path().join("data"), 1, true, &["--domain", "s3.test"]);
    assert_ok(&server.python("vhost_client.py", &[]), "virtual-host requests");
}
