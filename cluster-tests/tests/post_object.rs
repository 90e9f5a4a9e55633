//! Browser-form uploads (POST Object) against the real server: what a browser application uses
//! (SigV4 and SigV2 policies, conditions, `${filename}`, attributes, success actions), the
//! errors AWS gives, forms that fail their checks answered before their file is read, fields
//! held to the request head's deadline, and a large form streamed rather than buffered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cairn_cluster_tests::{assert_ok, Server};

#[test]
fn form_uploads_behave_as_on_aws() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), 1);
    let out = server.python("post_forms.py", &["checks"]);
    assert_ok(&out, "post_forms.py checks");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!report.contains("FAIL") && report.lines().count() >= 10, "{report}");
}

#[test]
fn a_large_form_upload_streams_instead_of_being_buffered() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), 1);
    server.aws_ok(&["s3", "mb", "s3://bkt"]);
    let idle = server.memory("VmRSS");
    let size: u64 = 512 << 20;
    let out = server.python("post_forms.py", &["stream", &size.to_string()]);
    assert_ok(&out, "post_forms.py stream");
    let peak = server.memory("VmHWM");
    // Buffering the file (as s3s does) would need at least its 512 MiB; streaming holds what a
    // PUT holds.
    assert!(
        peak < idle + (192 << 20),
        "peak RSS {} MiB over an idle {} MiB for a {} MiB form",
        peak >> 20,
        idle >> 20,
        size >> 20
    );
}

#[test]
fn form_fields_must_arrive_within_the_header_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _) = Server::start_env(
        &tmp.path().join("data"),
        1,
        true,
        &[],
        &[("CAIRN_HEADER_TIMEOUT_SECS", "2")],
    );
    server.aws_ok(&["s3", "mb", "s3://bkt"]);
    // A form that starts and then stalls before its file: the fields are read before any
    // authentication, so they get the request head's deadline, not the 60 s idle timeout.
    let addr = server.s3.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let start = "--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nstalled\r\n--b\r\nContent-Dis";
    write!(
        s,
        "POST /bkt HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=b\r\n\
         Content-Length: 100000\r\n\r\n{start}"
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(8).any(|w| w == b"</Error>") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("<Code>RequestTimeout</Code>"),
        "{answer}"
    );
}
