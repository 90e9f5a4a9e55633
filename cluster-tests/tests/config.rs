//! `cairn server` configuration: built-in defaults < TOML file < CAIRN_* environment < flags,
//! and invalid values are refused with the field's name.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cairn_cluster_tests::{cairn_bin, ACCESS_KEY, SECRET_KEY};

/// Starts the server with `args` and `env`, returns the "Data: ..." line it prints when ready,
/// then stops it.
fn data_line(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(cairn_bin());
    cmd.arg("server")
        .args(args)
        .env("CAIRN_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("CAIRN_ROOT_SECRET_KEY", SECRET_KEY)
        .env_remove("CAIRN_DISKS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    for l in BufReader::new(child.stdout.take().unwrap()).lines() {
        let l = l.unwrap();
        if l.starts_with("Data: ") {
            line = l.clone();
        }
        if l == "Ready." {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    line
}

#[test]
fn file_then_environment_then_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cairn.toml");
    let toml = |dir: &str| {
        format!(
            "data = \"{}\"\ns3_addr = \"127.0.0.1:0\"\nadmin_addr = \"127.0.0.1:0\"\ndisks = 3\nregion = \"eu-central-1\"\n",
            tmp.path().join(dir).display()
        )
    };
    let cfg = file.to_str().unwrap();

    std::fs::write(&file, toml("a")).unwrap();
    assert!(data_line(&["--config", cfg], &[]).contains("(disks: 3, erasure 2+1)"));

    std::fs::write(&file, toml("b")).unwrap();
    let line = data_line(&["--config", cfg], &[("CAIRN_DISKS", "6")]);
    assert!(
        line.contains("(disks: 6, erasure 4+2)"),
        "environment overrides the file: {line}"
    );

    std::fs::write(&file, toml("c")).unwrap();
    let line = data_line(&["--config", cfg, "--disks", "1"], &[("CAIRN_DISKS", "6")]);
    assert!(
        line.contains("(disks: 1, erasure 1+0)"),
        "flags override the environment: {line}"
    );
}

#[test]
fn invalid_configuration_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(&file, "disks = 0\n").unwrap();
    let out = Command::new(cairn_bin())
        .args(["server", "--config", file.to_str().unwrap()])
        .env("CAIRN_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("CAIRN_ROOT_SECRET_KEY", SECRET_KEY)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("disks: must be between 1 and 32"));

    std::fs::write(&file, "s3_addr = \"not an address\"\n").unwrap();
    let out = Command::new(cairn_bin())
        .args(["server", "--config", file.to_str().unwrap()])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("s3_addr"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (toml, says) in [
        ("[storage_classes]\nCOLD = \"two copies\"\n", "storage_classes.COLD"),
        ("[storage_classes]\ncold = \"4+2\"\n", "not a class name"),
        (
            "[storage_classes]\nSTANDARD = \"4+2\"\n",
            "STANDARD is the erasure scheme",
        ),
        (
            "[storage_classes]\nCOLD = { redundancy = \"1+1\", pool = \"Archive\" }\n",
            "not a pool name",
        ),
        (
            "repair_concurrency = 0\n",
            "repair_concurrency: must be between 1 and 64",
        ),
        // A misspelt key would otherwise leave the class in the default pool.
        (
            "[storage_classes]\nCOLD = { redundancy = \"1+1\", pol = \"archive\" }\n",
            "storage_classes.COLD",
        ),
        // A server's own disks are a fixed list: no pools to place a class in.
        (
            "[storage_classes]\nCOLD = { redundancy = \"1+1\", pool = \"archive\" }\n",
            "pool archive needs storage nodes placed by the cluster map",
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        let out = Command::new(cairn_bin())
            .args(["server", "--config", file.to_str().unwrap()])
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{toml}: {err}");
    }
}
