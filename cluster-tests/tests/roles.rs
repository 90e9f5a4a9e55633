//! The roles as separate processes: a meta-node serving the metadata over gRPC and a gateway
//! using it. Objects round-trip through aws-cli; with the meta-node killed (-9) the gateway
//! answers 503 (retryable) instead of failing or hanging, and once the meta-node is back on its
//! data every acknowledged object reads back and writes go on; a wrong cluster secret keeps a
//! gateway from starting.

use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_cluster_tests::{
    assert_ok, cairn_bin, file_hash, wait_for, write_random_file, MetaNode, Server, CLUSTER_SECRET as SECRET,
};

fn ready(gateway: &Server) -> bool {
    reqwest::blocking::get(format!("{}/health/ready", gateway.admin)).is_ok_and(|r| r.status().is_success())
}

#[test]
fn a_gateway_serves_s3_over_a_meta_node_and_survives_its_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut meta = MetaNode::start(&tmp.path().join("meta"), &cairn_cluster_tests::own_loopback(), None);
    let env = [("CAIRN_CLUSTER_SECRET", SECRET)];
    let gateway = Server::start_gateway(&tmp.path().join("gateway"), 3, &meta.addr, &env);
    gateway.aws_ok(&["s3", "mb", "s3://bkt"]);
    let file = tmp.path().join("f");
    write_random_file(&file, 12 << 20, 5);
    gateway.aws_ok(&["s3", "cp", file.to_str().unwrap(), "s3://bkt/f"]);
    let back = tmp.path().join("back");
    gateway.aws_ok(&["s3", "cp", "s3://bkt/f", back.to_str().unwrap()]);
    assert_eq!(file_hash(&back), file_hash(&file));

    // The meta-node dies: the gateway answers 503 at once, and says it is not ready.
    let addr = meta.addr.clone();
    meta.kill9();
    let out = gateway.aws_once(&["s3api", "list-objects-v2", "--bucket", "bkt"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "listing succeeded without metadata");
    assert!(
        err.contains("503") || err.contains("ServiceUnavailable") || err.contains("SlowDown"),
        "{err}"
    );
    wait_for("the gateway to report not ready", Duration::from_secs(30), || {
        !ready(&gateway)
    });

    // Back on its data (same address): the gateway reconnects by itself.
    let meta = MetaNode::start(&tmp.path().join("meta"), &addr, None);
    wait_for("the gateway to be ready again", Duration::from_secs(30), || {
        ready(&gateway)
    });
    let again = tmp.path().join("again");
    gateway.aws_ok(&["s3", "cp", "s3://bkt/f", again.to_str().unwrap()]);
    assert_eq!(file_hash(&again), file_hash(&file));
    gateway.aws_ok(&["s3", "cp", file.to_str().unwrap(), "s3://bkt/g"]);
    let listed = gateway.aws_ok(&["s3", "ls", "s3://bkt/"]);
    assert!(listed.contains(" f\n") && listed.contains(" g\n"), "{listed}");
    drop(meta);
}

#[test]
fn a_gateway_with_the_wrong_cluster_secret_does_not_start() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = MetaNode::start(&tmp.path().join("meta"), "127.0.0.1:0", None);
    let out = Command::new(cairn_bin())
        .args([
            "gateway",
            "--meta",
            &meta.addr,
            "--s3-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .arg("--data")
        .arg(tmp.path().join("gateway"))
        .env("CAIRN_CLUSTER_SECRET", "not-the-cluster-secret-at-all")
        .env("CAIRN_ROOT_ACCESS_KEY", cairn_cluster_tests::ACCESS_KEY)
        .env("CAIRN_ROOT_SECRET_KEY", cairn_cluster_tests::SECRET_KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster secret"), "{err}");
    assert_ok(
        &Command::new(cairn_bin()).arg("--version").output().unwrap(),
        "cairn --version",
    );
}
