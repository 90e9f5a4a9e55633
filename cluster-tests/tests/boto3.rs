//! boto3 against the real server: every operation and its error codes (py/boto3_suite.py).

use cairn_cluster_tests::Server;

#[test]
fn boto3_suite_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), 1);
    let out = server.python("boto3_suite.py", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "boto3 suite failed:\n{stdout}\nserver log tail:\n{}",
        {
            let log = server.log();
            log[log.len().saturating_sub(4000)..].to_string()
        }
    );
}
