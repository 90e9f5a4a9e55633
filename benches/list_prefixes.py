"""Times ListObjectsV2 pages of common prefixes: fills a bucket with PREFIXES directories of
KEYS small objects each (once), then lists with Delimiter='/' and MaxKeys=1000, ROUNDS times.

  CAIRN_S3=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=.. AWS_SECRET_ACCESS_KEY=.. \
      python3 benches/list_prefixes.py [PREFIXES=1000] [KEYS=20] [ROUNDS=20]
"""
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

prefixes = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
keys = int(sys.argv[2]) if len(sys.argv) > 2 else 20
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
s3 = boto3.client("s3", endpoint_url=os.environ["CAIRN_S3"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
bucket = "list-bench"
try:
    s3.create_bucket(Bucket=bucket)
    names = [f"dir{p:05}/obj{k:04}" for p in range(prefixes) for k in range(keys)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: s3.put_object(Bucket=bucket, Key=n, Body=b"x"), names))
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
times = []
for _ in range(rounds):
    t = time.perf_counter()
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=1000)
    times.append(time.perf_counter() - t)
    assert len(r.get("CommonPrefixes", [])) == min(prefixes, 1000), len(r.get("CommonPrefixes", []))
print(f"{prefixes} prefixes x {keys} keys: page of {min(prefixes, 1000)} common prefixes: "
      f"median {statistics.median(times) * 1000:.1f} ms, min {min(times) * 1000:.1f} ms over {rounds}")
