"""Virtual-host-style requests against a server started with --domain s3.test: requests are
signed for bucket.s3.test (as a client resolving that name would) and sent to 127.0.0.1."""
import hashlib
import os
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import requests

ENDPOINT = urllib.parse.urlparse(os.environ["CAIRN_S3"])
PORT = ENDPOINT.port
AUTH = botocore.auth.SigV4Auth(
    botocore.credentials.Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]),
    "s3", "us-east-1")


def send(method, host, path, body=b""):
    req = botocore.awsrequest.AWSRequest(method=method, url=f"http://{host}:{PORT}{path}", data=body)
    req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    AUTH.add_auth(req)
    headers = dict(req.headers)
    headers["Host"] = f"{host}:{PORT}"
    return requests.request(method, f"http://127.0.0.1:{PORT}{path}", data=body, headers=headers)


assert send("PUT", "vbucket.s3.test", "/").status_code == 200
assert send("PUT", "vbucket.s3.test", "/dir/hello.txt", b"virtual hosted").status_code == 200
r = send("GET", "vbucket.s3.test", "/dir/hello.txt")
assert r.status_code == 200 and r.content == b"virtual hosted", (r.status_code, r.content)
r = send("GET", "s3.test", "/vbucket/dir/hello.txt")
assert r.status_code == 200 and r.content == b"virtual hosted", ("path style on the domain", r.status_code, r.content)
r = send("GET", "127.0.0.1", "/vbucket/dir/hello.txt")
assert r.status_code == 200 and r.content == b"virtual hosted", ("path style on the IP", r.status_code, r.content)
r = send("GET", "vbucket.s3.test", "/?list-type=2")
assert r.status_code == 200 and b"<Key>dir/hello.txt</Key>" in r.content, r.content
print("virtual-host and path-style addressing both work")
