"""Uploads and verifies the 100 MiB objects of the dedup test (single PUTs, so chunking sees
the whole object in one stream). Content is a seeded pseudo-random stream; 'insert' adds one
byte in the middle."""
import hashlib
import os
import random
import sys

import boto3
from botocore.config import Config

SIZE = 100 * 1024 * 1024


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["CAIRN_S3"],
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def content(insert):
    data = random.Random(1234).randbytes(SIZE)
    if insert == "1":
        mid = SIZE // 2
        data = data[:mid] + b"\x01" + data[mid:]
    return data


def main():
    s3 = client()
    cmd = sys.argv[1]
    if cmd == "setup":
        s3.create_bucket(Bucket="dedup")
    elif cmd == "put":
        s3.put_object(Bucket="dedup", Key=sys.argv[2], Body=content(sys.argv[3]))
    elif cmd == "verify":
        body = s3.get_object(Bucket="dedup", Key=sys.argv[2])["Body"].read()
        want = content(sys.argv[3])
        assert hashlib.sha256(body).digest() == hashlib.sha256(want).digest(), "content differs"


if __name__ == "__main__":
    main()
