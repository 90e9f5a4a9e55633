"""Many objects of mixed sizes, written and checked bit-exact.

put BUCKET PREFIX COUNT SEED: writes COUNT objects PREFIX0000.. to BUCKET (creating it if
    needed), their sizes drawn (seeded) from 1 KiB to 4 MiB, two of them 64 MiB (the first
    two when COUNT >= 100), their bytes from the seed; 8 threads. Prints the bytes written,
    then those of objects stored as chunks (above 16 KiB).
put BUCKET PREFIX COUNT SEED CLASS: the same in storage class CLASS (checked on HEAD).
check BUCKET PREFIX COUNT SEED: reads every object back and compares it with what `put` wrote
    (the same sizes and bytes from the same seed); exits non-zero naming the first mismatch.
Clients retry (standard mode, 5 attempts): a gateway answering 503 while storage nodes come
and go is retried as any S3 client would.
"""
import hashlib
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

KIB = 1024
MIB = 1024 * KIB


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["CAIRN_S3"],
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                      s3={"addressing_style": "path"}),
    )


def plan(count, seed):
    """(key index, size, content seed) of every object."""
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        if count >= 100 and i < 2:
            size = 64 * MIB
        elif rnd.random() < 0.9:
            size = rnd.randint(1 * KIB, 256 * KIB)
        else:
            size = rnd.randint(256 * KIB, 4 * MIB)
        out.append((i, size, rnd.getrandbits(63)))
    return out


def body(size, content_seed):
    return random.Random(content_seed).randbytes(size)


def main():
    op, bucket, prefix, count, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    storage_class = sys.argv[6] if len(sys.argv) > 6 else None
    objects = plan(count, seed)
    local = __import__("threading").local()

    def s3():
        if not hasattr(local, "c"):
            local.c = client()
        return local.c

    if op == "put":
        try:
            s3().create_bucket(Bucket=bucket)
        except s3().exceptions.BucketAlreadyOwnedByYou:
            pass

        def put(o):
            i, size, cs = o
            key = f"{prefix}{i:04d}"
            if storage_class:
                s3().put_object(Bucket=bucket, Key=key, Body=body(size, cs), StorageClass=storage_class)
                shown = s3().head_object(Bucket=bucket, Key=key).get("StorageClass", "STANDARD")
                assert shown == storage_class, f"{key}: stored as {shown}"
            else:
                s3().put_object(Bucket=bucket, Key=key, Body=body(size, cs))
            return size

        with ThreadPoolExecutor(8) as pool:
            sizes = list(pool.map(put, objects))
        # All bytes, and those stored as chunks (objects above the 16 KiB kept inline).
        print(sum(sizes), sum(s for s in sizes if s > 16 * KIB))
    elif op == "check":
        def check(o):
            i, size, cs = o
            got = s3().get_object(Bucket=bucket, Key=f"{prefix}{i:04d}")["Body"].read()
            want = body(size, cs)
            if hashlib.sha256(got).digest() != hashlib.sha256(want).digest():
                return f"{prefix}{i:04d}: {len(got)} bytes differ from the {size} written"
            return None

        with ThreadPoolExecutor(8) as pool:
            bad = [b for b in pool.map(check, objects) if b]
        if bad:
            print("\n".join(bad[:10]))
            sys.exit(1)
        print(f"{len(objects)} objects read back bit-exact")
    else:
        sys.exit(f"unknown operation {op}")


if __name__ == "__main__":
    main()
