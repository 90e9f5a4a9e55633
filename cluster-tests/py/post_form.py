"""Browser-form POST upload: post_form.py KEY SIZE signed|anonymous. Prints the status code and
the start of the answer. 'signed' uses boto3's generate_presigned_post (SigV4 policy)."""
import os
import sys

import boto3
import requests
from botocore.config import Config

key, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
endpoint = os.environ["CAIRN_S3"]
body = bytes((i * 7) % 251 for i in range(size))
if mode == "signed":
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    post = s3.generate_presigned_post("bkt", key, ExpiresIn=600)
    url, fields = post["url"], post["fields"]
else:
    url, fields = endpoint + "/bkt", {"key": key}
r = requests.post(url, data=fields, files={"file": ("f", body)})
print(r.status_code, r.content[:300].decode("utf-8", "replace"))
