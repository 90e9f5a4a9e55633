"""Browser-form uploads (POST Object) against a running Cairn server.

  post_forms.py checks          every check below; one line per check, non-zero exit on failure
  post_forms.py stream SIZE     posts a SIZE-byte file to bkt/streamed in a signed form, sent as
                                it is generated, and checks that it reads back bit-exact

Forms are signed by boto3's generate_presigned_post (SigV4 and SigV2) and, where a check needs a
policy boto3 will not write (expired, tampered), by sign_v4 below, written from AWS's
documentation."""
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import socket
import sys
import traceback
import urllib.parse

import boto3
import botocore
import requests
from botocore.config import Config

ENDPOINT = os.environ["CAIRN_S3"]
AK, SK = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
BUCKET = "bkt"


def client(sig="s3v4"):
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                        config=Config(signature_version=sig, retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


s3 = client()
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def blob(n, seed=1):
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        out += x.to_bytes(8, "little")
    return bytes(out[:n])


def presigned(key, fields=None, conditions=None, sig="s3v4"):
    p = client(sig).generate_presigned_post(BUCKET, key, Fields=fields, Conditions=conditions,
                                            ExpiresIn=600)
    return p["url"], p["fields"]


def sign_v4(conditions, expires_in=600, key_id=AK, secret=SK):
    """A SigV4 form: the fields to send, for a policy with these conditions."""
    now = datetime.datetime.now(datetime.timezone.utc)
    date, stamp = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
    cred = f"{key_id}/{date}/us-east-1/s3/aws4_request"
    expiration = (now + datetime.timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    conditions = conditions + [{"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                               {"x-amz-credential": cred}, {"x-amz-date": stamp}]
    policy = base64.b64encode(json.dumps({"expiration": expiration,
                                          "conditions": conditions}).encode()).decode()
    k = ("AWS4" + secret).encode()
    for part in (date, "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, policy.encode(), hashlib.sha256).hexdigest()
    return {"x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": cred, "x-amz-date": stamp,
            "policy": policy, "x-amz-signature": sig}


def post(fields, body, filename="f", url=None, **kw):
    return requests.post(url or f"{ENDPOINT}/{BUCKET}", data=fields,
                         files={"file": (filename, body)}, allow_redirects=False, **kw)


def code(r):
    text = r.content.decode("utf-8", "replace")
    if "<Code>" not in text:
        return None
    return text.split("<Code>")[1].split("</Code>")[0]


def stored(key):
    try:
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] == "NoSuchKey":
            return None
        raise


def refused(r, status, want_code, key):
    assert r.status_code == status and code(r) == want_code, (r.status_code, r.content[:300])
    assert stored(key) is None, f"{key} was stored"


@check
def signed_form_stores_the_file_and_answers_204():
    body = blob(300_000)
    url, fields = presigned("form/basic")
    r = post(fields, body, url=url)
    assert r.status_code == 204, (r.status_code, r.content[:300])
    assert r.headers["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), r.headers
    assert r.headers["Location"].endswith(f"/{BUCKET}/form/basic"), r.headers
    assert stored("form/basic") == body


@check
def sigv2_form_is_accepted():
    body = blob(1000, 2)
    url, fields = presigned("form/v2", sig="s3")
    assert "signature" in fields and "AWSAccessKeyId" in fields, fields
    r = post(fields, body, url=url)
    assert r.status_code == 204, (r.status_code, r.content[:300])
    assert stored("form/v2") == body


@check
def status_201_answers_a_post_response_document():
    url, fields = presigned("form/a&b", {"success_action_status": "201"},
                            [{"success_action_status": "201"}])
    r = post(fields, b"hello", url=url)
    assert r.status_code == 201, (r.status_code, r.content[:300])
    text = r.content.decode()
    assert "<Key>form/a&amp;b</Key>" in text and "<Bucket>bkt</Bucket>" in text, text
    assert "<ETag>&quot;%s&quot;</ETag>" % hashlib.md5(b"hello").hexdigest() in text, text


@check
def redirect_carries_bucket_key_and_etag():
    target = "https://app.example/done"
    url, fields = presigned("form/redirected", {"success_action_redirect": target},
                            [{"success_action_redirect": target}])
    r = post(fields, b"x", url=url)
    assert r.status_code == 303, (r.status_code, r.content[:300])
    loc = urllib.parse.urlparse(r.headers["Location"])
    q = urllib.parse.parse_qs(loc.query)
    assert loc.netloc == "app.example" and q["key"] == ["form/redirected"], r.headers
    assert q["bucket"] == ["bkt"] and q["etag"] == ['"%s"' % hashlib.md5(b"x").hexdigest()], q


@check
def filename_variable_and_object_attributes():
    url, fields = presigned(
        "uploads/${filename}",
        {"Content-Type": "image/png", "x-amz-meta-colour": "blue", "Cache-Control": "max-age=60"},
        [["starts-with", "$Content-Type", "image/"], {"x-amz-meta-colour": "blue"},
         {"Cache-Control": "max-age=60"}])
    r = post(fields, b"png bytes", filename="photo.png", url=url)
    assert r.status_code == 204, (r.status_code, r.content[:300])
    head = s3.head_object(Bucket=BUCKET, Key="uploads/photo.png")
    assert head["ContentType"] == "image/png", head
    assert head["Metadata"] == {"colour": "blue"}, head
    assert head["CacheControl"] == "max-age=60", head


@check
def content_length_range_is_enforced_both_ways():
    url, fields = presigned("form/ranged", None, [["content-length-range", 10, 100]])
    refused(post(fields, b"short", url=url), 400, "EntityTooSmall", "form/ranged")
    refused(post(fields, blob(101), url=url), 400, "EntityTooLarge", "form/ranged")
    r = post(fields, blob(100), url=url)
    assert r.status_code == 204, (r.status_code, r.content[:300])


@check
def conditions_and_extra_fields_are_enforced():
    url, fields = presigned("uploads/${filename}", None, None)
    fields["key"] = "elsewhere/x"  # the policy says starts-with uploads/
    refused(post(fields, b"x", url=url), 403, "AccessDenied", "elsewhere/x")
    url, fields = presigned("form/extra")
    fields["x-amz-meta-sneaky"] = "1"  # not named by the policy
    refused(post(fields, b"x", url=url), 403, "AccessDenied", "form/extra")
    fields = sign_v4([{"bucket": BUCKET}, {"key": "form/x-ignore"}])
    fields.update({"key": "form/x-ignore", "x-ignore-note": "free"})
    assert post(fields, b"x").status_code == 204


@check
def bad_signatures_expired_policies_and_anonymous_forms_are_refused():
    url, fields = presigned("form/tampered")
    fields["x-amz-signature"] = "0" * 64
    refused(post(fields, b"x", url=url), 403, "SignatureDoesNotMatch", "form/tampered")
    fields = sign_v4([{"bucket": BUCKET}, {"key": "form/wrong-secret"}], secret="not-the-secret")
    fields["key"] = "form/wrong-secret"
    refused(post(fields, b"x"), 403, "SignatureDoesNotMatch", "form/wrong-secret")
    fields = sign_v4([{"bucket": BUCKET}, {"key": "form/expired"}], expires_in=-60)
    fields["key"] = "form/expired"
    refused(post(fields, b"x"), 403, "AccessDenied", "form/expired")
    refused(post({"key": "form/anonymous"}, b"x"), 403, "AccessDenied", "form/anonymous")


@check
def malformed_forms_get_their_errors():
    fields = sign_v4([{"bucket": BUCKET}, ["starts-with", "$key", ""],
                      ["starts-with", "$x-ignore-pad", ""]])
    fields["key"] = "form/padded"
    fields["x-ignore-pad"] = "p" * (100 * 1024)
    refused(post(fields, b"x"), 400, "MaxPostPreDataLengthExceeded", "form/padded")
    fields = sign_v4([{"bucket": BUCKET}, {"key": "form/nofile"}])
    fields["key"] = "form/nofile"
    r = requests.post(f"{ENDPOINT}/{BUCKET}", files={k: (None, v) for k, v in fields.items()})
    refused(r, 400, "IncorrectNumberOfFilesInPostRequest", "form/nofile")
    fields = sign_v4([{"bucket": BUCKET}, {"key": "form/md5"}, ["starts-with", "$Content-MD5", ""]])
    fields.update({"key": "form/md5", "Content-MD5": base64.b64encode(hashlib.md5(b"y").digest())})
    refused(post(fields, b"x"), 400, "BadDigest", "form/md5")
    r = post({"key": "k"}, b"x", url=f"{ENDPOINT}/{BUCKET}/some/key")
    assert r.status_code == 405, (r.status_code, r.content[:300])


def early_answer(fields, key):
    """Sends the fields and the first 64 KiB of a file announced as 1 GiB, then waits for the
    answer: it must come although the file has not arrived. Returns the status code."""
    boundary = "cairnformboundary"
    head = b""
    for name, value in list(fields.items()) + [("key", key)]:
        head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                 f"{value}\r\n").encode()
    head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n").encode()
    host = ENDPOINT.split("://")[1]
    request = (f"POST /{BUCKET} HTTP/1.1\r\nHost: {host}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               f"Content-Length: {len(head) + (1 << 30)}\r\n\r\n").encode()
    with socket.create_connection(tuple(host.rsplit(":", 1)), timeout=30) as s:
        s.sendall(request + head + blob(64 * 1024))
        answer = s.recv(4096).decode("utf-8", "replace")
    assert answer.startswith("HTTP/1.1 "), answer
    return int(answer.split()[1])


@check
def refused_forms_are_answered_before_their_file_is_read():
    fields = sign_v4([{"bucket": BUCKET}, {"key": "form/early"}])
    fields["x-amz-signature"] = "f" * 64
    assert early_answer(fields, "form/early") == 403
    fields = sign_v4([{"bucket": BUCKET}, ["starts-with", "$key", "uploads/"]])
    assert early_answer(fields, "form/early") == 403
    fields = sign_v4([{"bucket": BUCKET}, {"key": "form/early"}], expires_in=-60)
    assert early_answer(fields, "form/early") == 403
    assert early_answer({}, "form/early") == 403
    assert stored("form/early") is None


def stream(size):
    """Posts SIZE bytes in a signed form without holding them: the body is generated as it is
    sent. Prints the status and the SHA-256 of the file."""
    boundary = "cairnstreamboundary"
    fields = sign_v4([{"bucket": BUCKET}, {"key": "streamed"}])
    fields["key"] = "streamed"
    head = b"".join(
        (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n").encode()
        for n, v in fields.items())
    head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
             "\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    digest = hashlib.sha256()

    def body():
        yield head
        sent, rng = 0, random.Random(7)
        while sent < size:
            block = rng.randbytes(min(1 << 20, size - sent))
            digest.update(block)
            sent += len(block)
            yield block
        yield tail

    # http.client sends an iterable body as it is, framed by the Content-Length given
    # (requests would add Transfer-Encoding: chunked without chunking it).
    conn = http.client.HTTPConnection(*ENDPOINT.split("://")[1].rsplit(":", 1), timeout=300)
    conn.request("POST", f"/{BUCKET}", body=body(), headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail))})
    r = conn.getresponse()
    answer = r.read()
    assert r.status == 204, (r.status, answer[:300])
    back = hashlib.sha256()
    for piece in s3.get_object(Bucket=BUCKET, Key="streamed")["Body"].iter_chunks(1 << 20):
        back.update(piece)
    assert back.hexdigest() == digest.hexdigest(), "the stored object differs from what was sent"
    print("stored", size, digest.hexdigest())


def main():
    if sys.argv[1] == "stream":
        stream(int(sys.argv[2]))
        return
    try:
        s3.create_bucket(Bucket=BUCKET)
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    failed = 0
    for fn in CHECKS:
        try:
            fn()
            print("ok", fn.__name__)
        except Exception:
            failed += 1
            print("FAIL", fn.__name__)
            traceback.print_exc()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
