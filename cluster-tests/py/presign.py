"""Prints a presigned URL: presign.py METHOD BUCKET KEY EXPIRES_SECONDS [v4|v2] (METHOD get or
put; v2 is what boto3 produces by default for presigned URLs)."""
import os
import sys

import boto3
from botocore.config import Config

method, bucket, key, expires = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
version = sys.argv[5] if len(sys.argv) > 5 else "v4"
client = boto3.client(
    "s3",
    endpoint_url=os.environ["CAIRN_S3"],
    region_name="us-east-1",
    config=Config(signature_version={"v4": "s3v4", "v2": "s3"}[version], s3={"addressing_style": "path"}),
)
op = {"get": "get_object", "put": "put_object"}[method]
print(client.generate_presigned_url(op, Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires))
