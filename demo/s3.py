"""A private S3 bucket on loopback: moto's server mode with IAM authentication enforced.

`make run` and the tests share it. moto starts with `INITIAL_NO_AUTH_ACTION_COUNT` set to
the number of unsigned setup calls (`UNSIGNED_SETUP_CALLS`): an admin IAM user and its key.
From then on every request must carry a valid SigV4 signature of a known IAM user, so an
unsigned GET is refused as it is by a private bucket on AWS. The edge gets a second user
allowed to read, write and delete objects of the bucket, and nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
from botocore.config import Config

REGION = "us-east-1"
# iam.create_user, iam.put_user_policy, iam.create_access_key for the admin: the only unsigned calls.
UNSIGNED_SETUP_CALLS = 3
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str


def moto_command(host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """argv, and the environment variables to add, of a moto server that enforces
    authentication after the setup calls."""
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(UNSIGNED_SETUP_CALLS), "AWS_DEFAULT_REGION": REGION}
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)], env


def start_moto(host: str, port: int) -> subprocess.Popen[bytes]:
    argv, env = moto_command(host, port)
    process = subprocess.Popen(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_up(f"http://{host}:{port}", process)
    return process


def wait_until_up(endpoint: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    """Bounded wait for moto's own health page (not an AWS action: it does not count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"moto exited with {process.returncode}")
        try:
            if httpx.get(f"{endpoint}/moto-api/data.json", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"moto did not answer on {endpoint} within {timeout}s")


def client(service: str, endpoint: str, keys: Keys | None) -> Any:
    """A boto3 client for moto; `keys` None only for the unsigned setup calls."""
    extra: dict[str, Any] = {}
    if keys is None:
        extra["aws_access_key_id"], extra["aws_secret_access_key"] = "setup", "setup"
    else:
        extra["aws_access_key_id"], extra["aws_secret_access_key"] = keys.access_key_id, keys.secret_access_key
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}), **extra)


def _user(iam: Any, name: str, policy: dict[str, Any]) -> Keys:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


def admin_keys(endpoint: str) -> Keys:
    """The admin user, created with the unsigned setup calls; every later call is signed."""
    return _user(client("iam", endpoint, None), "cdn-admin", ADMIN_POLICY)


def bucket_user(endpoint: str, admin: Keys, bucket: str, name: str = "cdn-edge") -> Keys:
    """A user that may read, write and delete the objects of `bucket` (CloudFront's OAC policy, plus writes)."""
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    return _user(client("iam", endpoint, admin), name, policy)


# ---- the `make run` demo bucket ----

DEMO_BUCKET = "cdn-demo-private"
DEMO_OBJECTS = {
    "index.html": (b"<!doctype html><title>private bucket</title>\n"
                   b"<h1>Served from a private S3 bucket</h1><p>Every origin request was signed by the edge.</p>\n",
                   "text/html; charset=utf-8"),
    "hello.txt": (b"Hello from a private S3 bucket: the edge signed this request with SigV4.\n", "text/plain"),
    "a file with spaces+plus.txt": (b"Keys with spaces and '+' work too.\n", "text/plain"),
}


def seed_demo(endpoint: str) -> Keys:
    """The demo bucket with a few objects, and the edge's key for it (moto forgets both on exit)."""
    admin = admin_keys(endpoint)
    s3 = client("s3", endpoint, admin)
    s3.create_bucket(Bucket=DEMO_BUCKET)
    for key, (body, content_type) in DEMO_OBJECTS.items():
        s3.put_object(Bucket=DEMO_BUCKET, Key=key, Body=body, ContentType=content_type)
    return bucket_user(endpoint, admin, DEMO_BUCKET)
