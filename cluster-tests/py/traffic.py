"""Continuous S3 traffic from several clients, journaled, for the leader-kill test.

run DIR WORKERS: WORKERS threads, each with its own boto3 client and its own 12 keys of bucket
    'traffic', PUT new content / overwrite / DELETE at random (seeded per worker) until the
    file DIR/stop exists. Every operation goes to DIR/journal-W.jsonl once the client is done
    with it: {"key", "op": "put"|"delete", "gen", "ok"}; ok false means the client gave up
    after its retries (the outcome is unknown). DIR/progress holds the number of acknowledged
    operations so far.
verify DIR: every key is in a state the journal allows: after the last acknowledged operation
    only operations with an unknown outcome may have taken effect, each whole (a GET returns
    exactly one of the bodies written, or 404 where a delete may have won). Prints
    {"acked": n, "unknown": m, "keys": k, "present": p}.
"""
import hashlib
import json
import os
import random
import sys
import threading
import time

import boto3
from botocore.config import Config

BUCKET = "traffic"
KEYS_PER_WORKER = 12


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["CAIRN_S3"],
        region_name="us-east-1",
        config=Config(
            retries={"max_attempts": 10, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            s3={"addressing_style": "path"},
        ),
    )


def body(key, gen):
    rng = random.Random(f"{key}/{gen}")
    return rng.randbytes(rng.choice([0, 1, 700, 5_000, 70_000, 300_000]))


class Progress:
    def __init__(self, workdir):
        self.path = os.path.join(workdir, "progress")
        self.lock = threading.Lock()
        self.acked = 0

    def add(self):
        with self.lock:
            self.acked += 1
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(self.acked))
            os.replace(tmp, self.path)


def worker(workdir, w, progress, failures):
    s3 = client()
    rng = random.Random(1000 + w)
    keys = [f"w{w}/k{i:02d}" for i in range(KEYS_PER_WORKER)]
    gen = 0
    stop = os.path.join(workdir, "stop")
    with open(os.path.join(workdir, f"journal-{w}.jsonl"), "w", buffering=1) as journal:
        while not os.path.exists(stop):
            key = rng.choice(keys)
            gen += 1
            op = "delete" if rng.random() < 0.25 else "put"
            started = time.time()
            try:
                if op == "put":
                    s3.put_object(Bucket=BUCKET, Key=key, Body=body(key, gen))
                else:
                    s3.delete_object(Bucket=BUCKET, Key=key)
                ok = True
            except Exception as e:  # the outcome is unknown: journaled as such
                failures.append(f"{op} {key}: {e}")
                ok = False
            entry = {"key": key, "op": op, "gen": gen, "ok": ok, "start": started, "end": time.time()}
            journal.write(json.dumps(entry) + "\n")
            journal.flush()
            if ok:
                progress.add()


def run(workdir, workers):
    s3 = client()
    s3.create_bucket(Bucket=BUCKET)
    progress = Progress(workdir)
    failures = []
    threads = [threading.Thread(target=worker, args=(workdir, w, progress, failures)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in failures:
        print("gave up:", f, file=sys.stderr)


def md5(data):
    return hashlib.md5(data).hexdigest()


def verify(workdir):
    history = {}
    for name in sorted(os.listdir(workdir)):
        if name.startswith("journal-"):
            with open(os.path.join(workdir, name)) as f:
                for line in f:
                    e = json.loads(line)
                    history.setdefault(e["key"], []).append(e)
    s3 = client()
    acked = unknown = 0
    present = set()
    bad = []
    for key, ops in sorted(history.items()):
        acked += sum(1 for e in ops if e["ok"])
        unknown += sum(1 for e in ops if not e["ok"])
        last = max((i for i, e in enumerate(ops) if e["ok"]), default=None)
        # States allowed: the last acknowledged one (or "absent" if none), and any operation
        # after it whose outcome is unknown.
        allowed = set()
        candidates = ops[last:] if last is not None else [{"op": "delete"}] + ops
        for e in candidates:
            allowed.add(None if e["op"] == "delete" else md5(body(key, e["gen"])))
        try:
            got = md5(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            present.add(key)
        except s3.exceptions.NoSuchKey:
            got = None
        if got not in allowed:
            bad.append(f"{key}: got {got}, allowed {sorted(map(str, allowed))}, ops {ops[-3:]}")
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        listed.update(o["Key"] for o in page.get("Contents", []))
    if listed != present:
        bad.append(f"listed but not readable: {sorted(listed - present)}; readable, not listed: {sorted(present - listed)}")
    for b in bad:
        print("BAD", b, file=sys.stderr)
    print(json.dumps({"acked": acked, "unknown": unknown, "keys": len(history), "present": len(present)}))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "verify":
        verify(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
