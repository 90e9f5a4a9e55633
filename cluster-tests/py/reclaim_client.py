"""Client halves of the space-reclamation test.

load DIR:  into bucket 'reclaim', about 200 MiB of objects of mixed sizes; then half of them
           overwritten, a quarter deleted, and a 100 MiB multipart upload made and aborted.
           Writes what must remain (key -> size, MD5) to DIR/expect.json.
stall KEY SIZE SENT: a signed PUT of KEY declaring SIZE bytes that sends only SENT of them,
           prints 'sent' and then holds the connection until it is killed.
verify DIR: the bucket holds exactly the expected keys, each bit-exact.
"""
import hashlib
import json
import os
import random
import socket
import sys
import time
import urllib.parse

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

BUCKET = "reclaim"
MIB = 1024 * 1024


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["CAIRN_S3"],
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
    )


def body(key, generation, size):
    return random.Random(f"{key}/{generation}").randbytes(size)


def sizes(rng):
    """Mixed sizes adding up to about 200 MiB: small inline ones, medium, and large."""
    out = [rng.randint(100, 12_000) for _ in range(10)]
    out += [rng.randint(100_000, 1_500_000) for _ in range(30)]
    while sum(out) < 200 * MIB:
        out.append(rng.randint(4 * MIB, 16 * MIB))
    return out


def load(workdir):
    s3 = client()
    s3.create_bucket(Bucket=BUCKET)
    rng = random.Random(2026)
    expect = {}
    for i, size in enumerate(sizes(rng)):
        key = f"obj-{i:03d}"
        data = body(key, 0, size)
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        expect[key] = (size, hashlib.md5(data).hexdigest())
    keys = sorted(expect)
    for key in keys[::2]:  # half overwritten, with other content and size
        size = max(1, expect[key][0] // 2)
        data = body(key, 1, size)
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        expect[key] = (size, hashlib.md5(data).hexdigest())
    for key in keys[1::4]:  # a quarter deleted
        s3.delete_object(Bucket=BUCKET, Key=key)
        del expect[key]
    up = s3.create_multipart_upload(Bucket=BUCKET, Key="abandoned")["UploadId"]
    for n in range(1, 6):
        s3.upload_part(Bucket=BUCKET, Key="abandoned", UploadId=up, PartNumber=n, Body=body("abandoned", n, 20 * MIB))
    s3.abort_multipart_upload(Bucket=BUCKET, Key="abandoned", UploadId=up)
    with open(os.path.join(workdir, "expect.json"), "w") as f:
        json.dump(expect, f)
    print(f"{len(expect)} objects remain, {sum(s for s, _ in expect.values())} bytes")


def stall(key, size, sent):
    endpoint = urllib.parse.urlparse(os.environ["CAIRN_S3"])
    url = f"{os.environ['CAIRN_S3']}/{BUCKET}/{key}"
    req = AWSRequest(method="PUT", url=url, headers={
        "Content-Length": str(size),
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    })
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    head = f"PUT /{BUCKET}/{key} HTTP/1.1\r\nHost: {endpoint.netloc}\r\n"
    for name, value in req.headers.items():
        if name.lower() != "host":
            head += f"{name}: {value}\r\n"
    sock = socket.create_connection((endpoint.hostname, endpoint.port))
    sock.sendall((head + "\r\n").encode())
    data = body(key, 0, sent)
    for i in range(0, sent, MIB):
        sock.sendall(data[i:i + MIB])
    print("sent", flush=True)
    while True:
        time.sleep(3600)


def verify(workdir):
    with open(os.path.join(workdir, "expect.json")) as f:
        expect = json.load(f)
    s3 = client()
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        listed.update(o["Key"] for o in page.get("Contents", []))
    assert listed == set(expect), f"listed {sorted(listed ^ set(expect))} differ from the expected keys"
    for key, (size, md5) in expect.items():
        data = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert len(data) == size and hashlib.md5(data).hexdigest() == md5, f"{key} reads back wrong"
    print(f"{len(expect)} objects read back bit-exact")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "load":
        load(sys.argv[2])
    elif mode == "stall":
        stall(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "verify":
        verify(sys.argv[2])
    else:
        sys.exit(f"unknown mode {mode}")
