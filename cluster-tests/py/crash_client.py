"""Load and verification halves of the crash test.

load DIR [PREFIX]: several threads upload objects (single PUTs of assorted sizes and multipart uploads)
            with content derived from the key, logging 'start KEY SIZE KIND' before each request
            and 'ack KEY SIZE KIND' (fsynced) after each success, until the process is killed.
verify DIR: every acknowledged object must read back bit-exact; every started but unacknowledged
            one must be absent or complete and correct, never partial."""
import hashlib
import os
import random
import sys
import threading

import boto3
from botocore.config import Config

SIZES = [0, 1000, 20_000, 300_000, 3_000_000, 9_000_000]
PART = 5 * 1024 * 1024


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["CAIRN_S3"],
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60,
                      s3={"addressing_style": "path"}),
    )


def content(key, size):
    return random.Random(key).randbytes(size)


class Log:
    def __init__(self, path):
        self.f = open(path, "a")
        self.lock = threading.Lock()

    def write(self, line):
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()
            os.fsync(self.f.fileno())


def worker(t, log, prefix):
    s3 = client()
    i = 0
    while True:
        i += 1
        key = f"{prefix}t{t}-{i}"
        if i % 5 == 0:
            kind, size = "multipart", 2 * PART + 12345
        else:
            kind, size = "put", SIZES[(t + i) % len(SIZES)]
        log.write(f"start {key} {size} {kind}")
        data = content(key, size)
        try:
            if kind == "put":
                s3.put_object(Bucket="crash", Key=key, Body=data)
            else:
                up = s3.create_multipart_upload(Bucket="crash", Key=key)["UploadId"]
                parts = []
                for n, off in enumerate(range(0, size, PART), start=1):
                    r = s3.upload_part(Bucket="crash", Key=key, UploadId=up, PartNumber=n, Body=data[off:off + PART])
                    parts.append({"PartNumber": n, "ETag": r["ETag"]})
                s3.complete_multipart_upload(Bucket="crash", Key=key, UploadId=up, MultipartUpload={"Parts": parts})
        except Exception:
            return
        log.write(f"ack {key} {size} {kind}")


def load(d, prefix=""):
    s3 = client()
    try:
        s3.create_bucket(Bucket="crash")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    log = Log(os.path.join(d, "log.txt"))
    threads = [threading.Thread(target=worker, args=(t, log, prefix), daemon=True) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def verify(d):
    s3 = client()
    started, acked = {}, set()
    with open(os.path.join(d, "log.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 4:
                continue  # a torn last line: the client died while writing it
            what, key, size, _ = parts
            if what == "start":
                started[key] = int(size)
            elif what == "ack":
                acked.add(key)
    assert acked, "no upload was acknowledged before the crash"
    absent = complete = 0
    for key, size in started.items():
        want = hashlib.sha256(content(key, size)).hexdigest()
        try:
            body = s3.get_object(Bucket="crash", Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            assert key not in acked, f"acknowledged object {key} is missing"
            absent += 1
            continue
        got = hashlib.sha256(body).hexdigest()
        assert got == want, f"{key}: {len(body)} bytes read, {size} written; content differs"
        complete += 1
    print(f"acknowledged={len(acked)} started={len(started)} complete={complete} absent={absent}")


if __name__ == "__main__":
    {"load": load, "verify": verify}[sys.argv[1]](*sys.argv[2:])
