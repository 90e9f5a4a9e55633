//! Hostile and broken clients against the real server: slow and half-sent headers, thousands
//! of idle connections, oversized heads, SigV2 outside its time window, over-long or tampered
//! presigned URLs, declared
//! bodies beyond 5 GiB. Each gets its S3 error or is dropped, and the server keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cairn_cluster_tests::{assert_ok, Server};

fn addr(server: &Server) -> String {
    server.s3.trim_start_matches("http://").to_string()
}

/// Sends `head` (and nothing after it) and returns what the server answered before closing,
/// waiting at most `wait`.
fn raw(server: &Server, head: &str, wait: Duration) -> String {
    let mut s = TcpStream::connect(addr(server)).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(8).any(|w| w == b"</Error>") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A server on a fresh data directory with `env` added, and a bucket `bkt`. The directory
/// lives as long as the returned guard.
fn server_with(env: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _) = Server::start_env(&tmp.path().join("data"), 1, true, &[], env);
    server.aws_ok(&["s3", "mb", "s3://bkt"]);
    (server, tmp)
}

fn presign(server: &Server, method: &str, key: &str, expires: u64, version: &str) -> String {
    let out = server.python("presign.py", &[method, "bkt", key, &expires.to_string(), version]);
    assert_ok(&out, "presign");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn slow_and_idle_clients_are_dropped_and_others_served() {
    let (server, _tmp) = server_with(&[("CAIRN_HEADER_TIMEOUT_SECS", "2"), ("CAIRN_IDLE_TIMEOUT_SECS", "30")]);

    // Half a header: dropped by the header timeout (2 s), long before the 60 s we wait.
    let mut half = TcpStream::connect(addr(&server)).unwrap();
    half.write_all(b"GET /bkt HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    half.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = match half.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => {
            // hyper may answer 408 before closing; the connection must then end.
            matches!(half.read(&mut buf), Ok(0) | Err(_))
        }
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        closed,
        "half-header connection still open after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(60));

    // 3,000 idle connections do not stop the server from answering another client.
    let idle: Vec<TcpStream> = (0..3000).map(|_| TcpStream::connect(addr(&server)).unwrap()).collect();
    assert_ok(
        &server.aws(&["s3", "ls", "s3://bkt"]),
        "ls with 3000 idle connections open",
    );
    drop(idle);
}

#[test]
fn refused_before_authentication() {
    let (server, _tmp) = server_with(&[]);
    let wait = Duration::from_secs(30);

    // A 20 KB header section: S3's 400, before any signature work (this one has none).
    let big = "v".repeat(20_000);
    let r = raw(
        &server,
        &format!("GET /bkt HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
        wait,
    );
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(r.contains("<Code>RequestHeaderSectionTooLarge</Code>"), "{r}");
    // 200 KB: refused by the HTTP layer, never buffered whole.
    let huge = "v".repeat(200_000);
    let r = raw(
        &server,
        &format!("GET /bkt HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n"),
        wait,
    );
    assert!((400..500).contains(&status_of(&r)) || r.is_empty(), "{r}");

    // SigV2 outside AWS's time window: a header date far off, a URL valid for 30 days.
    let r = raw(
        &server,
        "GET /bkt HTTP/1.1\r\nHost: x\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nAuthorization: AWS CKTESTROOTACCESSKEY1:c2lnbmF0dXJl\r\n\r\n",
        wait,
    );
    assert_eq!(status_of(&r), 403, "{r}");
    assert!(r.contains("<Code>RequestTimeTooSkewed</Code>"), "{r}");
    let r = raw(
        &server,
        "GET /bkt/k?AWSAccessKeyId=CKTESTROOTACCESSKEY1&Expires=9999999999&Signature=x HTTP/1.1\r\nHost: x\r\n\r\n",
        wait,
    );
    assert!(r.contains("<Code>AuthorizationQueryParametersError</Code>"), "{r}");

    // A declared body above 5 GiB: EntityTooLarge before a byte is read.
    let r = raw(
        &server,
        "PUT /bkt/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 6000000000\r\n\r\n",
        wait,
    );
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(r.contains("<Code>EntityTooLarge</Code>"), "{r}");

    // The server still serves.
    assert_ok(&server.aws(&["s3", "ls", "s3://bkt"]), "ls after refusals");
}

#[test]
fn presigned_urls_are_bounded_and_cannot_be_altered() {
    let (server, tmp) = server_with(&[]);
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, b"private bytes").unwrap();
    server.aws_ok(&["s3", "cp", secret.to_str().unwrap(), "s3://bkt/secret"]);
    let http = reqwest::blocking::Client::new();

    // A week is the longest validity; 30 days is refused, with SigV4 and with SigV2 (boto3's
    // default for presigned URLs).
    for v in ["v4", "v2"] {
        let ok = presign(&server, "get", "secret", 604_800, v);
        assert_eq!(http.get(&ok).send().unwrap().status(), 200, "{v}");
        let month = presign(&server, "get", "secret", 30 * 86_400, v);
        let r = http.get(&month).send().unwrap();
        assert_eq!(r.status(), 400, "{v}");
        assert!(r.text().unwrap().contains("AuthorizationQueryParametersError"), "{v}");
    }

    // A presigned PUT cannot be turned into a copy of another object by an unsigned header.
    let put = presign(&server, "put", "stolen", 600, "v4");
    let r = http
        .put(&put)
        .header("x-amz-copy-source", "/bkt/secret")
        .body("")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("AccessDenied"));
    let head = server.aws(&["s3api", "head-object", "--bucket", "bkt", "--key", "stolen"]);
    assert!(!head.status.success(), "the tampered request created an object");
    // The same URL used as signed works.
    assert_eq!(http.put(&put).body("mine").send().unwrap().status(), 200);
}

#[test]
fn s3_corner_cases_answer_as_aws() {
    let (server, tmp) = server_with(&[]);

    // A suffix range of an empty object: 200 and no bytes (it used to underflow).
    let empty = tmp.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    server.aws_ok(&["s3", "cp", empty.to_str().unwrap(), "s3://bkt/empty"]);
    let out = tmp.path().join("out");
    let got = server.aws(&[
        "s3api",
        "get-object",
        "--bucket",
        "bkt",
        "--key",
        "empty",
        "--range",
        "bytes=-5",
        out.to_str().unwrap(),
    ]);
    assert_ok(&got, "suffix range of an empty object");
    assert_eq!(std::fs::read(&out).unwrap(), b"");

    // CompleteMultipartUpload retried after a lost response: the same ETag again.
    let created = server.aws_ok(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "bkt",
        "--key",
        "mp",
        "--query",
        "UploadId",
        "--output",
        "text",
    ]);
    let upload_id = created.trim();
    let part = tmp.path().join("part");
    std::fs::write(&part, vec![7u8; 100_000]).unwrap();
    let etag = server.aws_ok(&[
        "s3api",
        "upload-part",
        "--bucket",
        "bkt",
        "--key",
        "mp",
        "--upload-id",
        upload_id,
        "--part-number",
        "1",
        "--body",
        part.to_str().unwrap(),
        "--query",
        "ETag",
        "--output",
        "text",
    ]);
    let parts = format!("{{\"Parts\":[{{\"PartNumber\":1,\"ETag\":{}}}]}}", etag.trim());
    let complete = || {
        server.aws(&[
            "s3api",
            "complete-multipart-upload",
            "--bucket",
            "bkt",
            "--key",
            "mp",
            "--upload-id",
            upload_id,
            "--multipart-upload",
            &parts,
            "--query",
            "ETag",
            "--output",
            "text",
        ])
    };
    let first = complete();
    assert_ok(&first, "complete");
    let again = complete();
    assert_ok(&again, "retried complete");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&first.stdout)
    );

    // A bucket whose only content is an interrupted upload can be removed, as on AWS.
    server.aws_ok(&["s3", "mb", "s3://scratch"]);
    server.aws_ok(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "scratch",
        "--key",
        "abandoned",
    ]);
    assert_ok(
        &server.aws(&["s3", "rb", "s3://scratch"]),
        "rb with an incomplete upload",
    );
}

#[test]
fn form_uploads_work_and_are_bounded() {
    let (server, tmp) = server_with(&[("CAIRN_POST_OBJECT_MAX_BYTES", "1048576")]);
    let post = |key: &str, size: usize, mode: &str| {
        let out = server.python("post_form.py", &[key, &size.to_string(), mode]);
        assert_ok(&out, "post_form.py");
        String::from_utf8(out.stdout).unwrap()
    };
    // A signed form within the limit is stored, byte for byte.
    let r = post("form-ok", 300_000, "signed");
    assert!(
        r.starts_with("204") || r.starts_with("200") || r.starts_with("201"),
        "{r}"
    );
    let out = tmp.path().join("form-ok");
    server.aws_ok(&["s3", "cp", "s3://bkt/form-ok", out.to_str().unwrap()]);
    let want: Vec<u8> = (0..300_000usize).map(|i| ((i * 7) % 251) as u8).collect();
    assert_eq!(std::fs::read(&out).unwrap(), want);
    // A file over the configured bound is refused, and nothing is stored.
    let r = post("form-big", 2 << 20, "signed");
    assert!(r.starts_with('4'), "{r}");
    // An unsigned form is refused and stores nothing.
    let r = post("form-anon", 1000, "anonymous");
    assert!(r.starts_with("403"), "{r}");
    for k in ["form-big", "form-anon"] {
        let head = server.aws(&["s3api", "head-object", "--bucket", "bkt", "--key", k]);
        assert!(!head.status.success(), "{k} was stored");
    }
}

#[test]
fn a_refused_request_whose_body_never_came_does_not_garble_the_next() {
    // A client sending `Expect: 100-continue` waits for the server before sending its body; a
    // request refused before its body is asked for (here: anonymous) gets its answer, and the
    // client may then send the body or not. The connection must not be reused, or the next
    // request is read from the wrong place (seen as `UT /...` with boto3: SignatureDoesNotMatch).
    let (server, _tmp) = server_with(&[]);
    let host = addr(&server);
    let mut s = TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "PUT /bkt/x HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut first = Vec::new();
    let mut buf = [0u8; 4096];
    while !first.windows(8).any(|w| w == b"</Error>") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before answering");
        first.extend_from_slice(&buf[..n]);
    }
    let first = String::from_utf8_lossy(&first).to_ascii_lowercase();
    assert!(
        first.starts_with("http/1.1 403") && first.contains("connection: close"),
        "{first}"
    );
    // Whatever comes next on this connection is not answered as a request.
    let _ = write!(s, "GET /bkt/y HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[test]
fn an_empty_body_sent_with_expect_continue_closes_the_connection() {
    // hyper sends no `100 Continue` for an empty body, so a signed PUT of nothing gets its
    // final answer while the client still waits for one; botocore then mis-reads the next
    // answer on the connection (it hung until the idle timeout). The answer must close it.
    let (server, _tmp) = server_with(&[]);
    let host = addr(&server);
    let url = presign(&server, "put", "empty", 600, "v4");
    let target = &url[url.find(&host).unwrap() + host.len()..];
    let mut s = TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "PUT {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(
        answer.starts_with("http/1.1 200") && answer.contains("connection: close"),
        "{answer}"
    );
}
