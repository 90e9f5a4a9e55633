//! Root credentials and the `cairn key` admin commands, as an administrator uses them.

use std::os::unix::fs::PermissionsExt;

use cairn_cluster_tests::{assert_ok, Server};

fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name:?} in:\n{out}"))
        .trim()
        .to_string()
}

#[test]
fn generated_root_and_key_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    // Phase: first start generates root credentials, prints them once, stores them 0600.
    let (mut server, printed) = Server::start_with(&data, 1, false, &[]);
    let printed = printed.join("\n");
    let root_access = field(&printed, "Root access key:");
    let root_secret = field(&printed, "Root secret key:");
    let file = data.join("root-credentials.json");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["access_key"], root_access.as_str());
    assert!(!server.log().contains(&root_secret), "the secret must never be logged");

    // Phase: key commands authenticate with the credential file of the data directory.
    let data_env = [("CAIRN_DATA", data.to_str().unwrap())];
    let out = server.cairn(&["key", "create", "--name", "alice"], &data_env);
    assert_ok(&out, "cairn key create");
    let out = String::from_utf8(out.stdout).unwrap();
    let (alice, alice_secret) = (field(&out, "Access key:"), field(&out, "Secret key:"));
    assert_ok(
        &server.cairn(
            &[
                "key",
                "import",
                "--access-key",
                "CKIMPORTEDKEY0000001",
                "--secret-key",
                "imported-secret-123456",
                "--name",
                "bob",
            ],
            &data_env,
        ),
        "cairn key import",
    );
    let list = server.cairn(&["key", "list"], &data_env);
    assert_ok(&list, "cairn key list");
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains(&alice) && list.contains("alice") && list.contains("CKIMPORTEDKEY0000001"),
        "{list}"
    );
    assert!(!list.contains(&alice_secret), "list must not show secrets");

    // Phase: the new keys work with aws-cli, and own what they create.
    let ok = server.aws_as(&alice, &alice_secret, &["s3", "mb", "s3://alice-bucket"]);
    assert_ok(&ok, "alice creates a bucket");
    let denied = server.aws_as(
        "CKIMPORTEDKEY0000001",
        "imported-secret-123456",
        &["s3", "ls", "s3://alice-bucket"],
    );
    assert!(String::from_utf8_lossy(&denied.stderr).contains("AccessDenied"));

    // Phase: wrong root credentials are refused; deleted keys stop working.
    let bad = server.cairn(
        &["key", "list"],
        &[
            ("CAIRN_ROOT_ACCESS_KEY", &root_access),
            ("CAIRN_ROOT_SECRET_KEY", "nope"),
        ],
    );
    assert!(!bad.status.success());
    assert_ok(&server.cairn(&["key", "delete", &alice], &data_env), "cairn key delete");
    let gone = server.aws_as(&alice, &alice_secret, &["s3", "ls"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("InvalidAccessKeyId"));
    let again = server.cairn(&["key", "delete", &alice], &data_env);
    assert!(!again.status.success());

    // Phase: a restart keeps the root credentials and the keys, and prints no secret.
    assert!(server.stop().success(), "SIGTERM must stop the server cleanly");
    let (server, printed) = Server::start_with(&data, 1, false, &[]);
    assert!(!printed.join("\n").contains(&root_secret));
    let list = server.cairn(&["key", "list"], &data_env);
    assert!(String::from_utf8_lossy(&list.stdout).contains("CKIMPORTEDKEY0000001"));
}
