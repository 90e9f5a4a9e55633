"""Concurrent single-key operations recorded for a linearizability check.

run DIR WORKERS: WORKERS threads, each with its own boto3 client (no retries: an attempt that
    fails is an operation of unknown outcome, and a retried write could apply twice), pick one
    of three keys of bucket 'linear' and do GET, PUT, PUT If-Match (the value it last saw),
    PUT If-None-Match or DELETE at random (seeded), until DIR/stop exists. Each operation is
    appended to DIR/history-W.jsonl with its invocation and answer times
    (CLOCK_MONOTONIC, one clock for every process of the machine) and what the client saw;
    DIR/progress counts operations answered with a definite outcome, DIR/writes the writes
    among them. With CAIRN_S3_READS set, half the GETs go to that second gateway: a gateway
    that only reads stays on a deposed leader for as long as that leader answers it.
"""
import hashlib
import json
import os
import random
import sys
import threading
import time

import boto3
import botocore
from botocore.config import Config

BUCKET = "linear"
KEYS = ["x", "y", "z"]


def client(endpoint=None):
    return boto3.client(
        "s3",
        endpoint_url=endpoint or os.environ["CAIRN_S3"],
        region_name="us-east-1",
        # One attempt in all: botocore's `max_attempts` counts retries (1 would retry a 503
        # once, and a PUT whose first attempt committed would then apply twice — a history
        # the checker rightly rejects); `total_max_attempts` counts every attempt.
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=20,
                      s3={"addressing_style": "path"}),
    )


def etag(value):
    return '"%s"' % hashlib.md5(value.encode()).hexdigest()


class Progress:
    def __init__(self, workdir, name="progress"):
        self.path = os.path.join(workdir, name)
        self.lock = threading.Lock()
        self.count = 0

    def add(self):
        with self.lock:
            self.count += 1
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(self.count))
            os.replace(tmp, self.path)


def code_of(e):
    if isinstance(e, botocore.exceptions.ClientError):
        return e.response.get("Error", {}).get("Code"), e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None, None


def worker(workdir, w, progress, writes):
    s3 = client()
    reads_at = os.environ.get("CAIRN_S3_READS")
    reader = client(reads_at) if reads_at else s3
    rng = random.Random(7000 + w)
    seen = {}
    n = 0
    stop = os.path.join(workdir, "stop")
    with open(os.path.join(workdir, f"history-{w}.jsonl"), "w", buffering=1) as history:
        while not os.path.exists(stop):
            key = rng.choice(KEYS)
            n += 1
            value = f"w{w}-{n}"
            roll = rng.random()
            if roll < 0.4:
                event = {"op": "get"}
            elif roll < 0.7:
                event = {"op": "put", "value": value}
            elif roll < 0.85 and key in seen:
                event = {"op": "put_if_match", "expect": seen[key], "value": value}
            elif roll < 0.93:
                event = {"op": "put_if_absent", "value": value}
            else:
                event = {"op": "delete"}
            event["key"] = key
            event["call"] = time.monotonic()
            try:
                if event["op"] == "get":
                    at = reader if rng.random() < 0.5 else s3
                    event["gateway"] = "reads" if at is reader and reads_at else "main"
                    try:
                        got = at.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
                        event["outcome"] = "found"
                        event["value"] = got
                        seen[key] = got
                    except at.exceptions.NoSuchKey:
                        event["outcome"] = "absent"
                elif event["op"] == "delete":
                    s3.delete_object(Bucket=BUCKET, Key=key)
                    event["outcome"] = "done"
                else:
                    kw = {}
                    if event["op"] == "put_if_match":
                        kw["IfMatch"] = etag(event["expect"])
                    elif event["op"] == "put_if_absent":
                        kw["IfNoneMatch"] = "*"
                    try:
                        s3.put_object(Bucket=BUCKET, Key=key, Body=value.encode(), **kw)
                        event["outcome"] = "done"
                        seen[key] = value
                    except botocore.exceptions.ClientError as e:
                        code, status = code_of(e)
                        # If-Match on a missing key is 404 NoSuchKey (as on AWS): refused too.
                        if status == 412 or (event["op"] == "put_if_match" and status == 404):
                            event["outcome"] = "precondition_failed"
                        else:
                            raise
                event["ret"] = time.monotonic()
                progress.add()
                if event["op"] != "get":
                    writes.add()
            except Exception as e:  # the outcome is unknown
                event["outcome"] = "unknown"
                event["error"] = str(e)[:200]
                if event["op"] == "get":
                    event.pop("value", None)
            history.write(json.dumps(event) + "\n")


def run(workdir, workers):
    client().create_bucket(Bucket=BUCKET)
    progress = Progress(workdir)
    writes = Progress(workdir, "writes")
    threads = [threading.Thread(target=worker, args=(workdir, w, progress, writes)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
