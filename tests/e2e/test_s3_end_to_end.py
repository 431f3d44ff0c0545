"""One private S3 bucket behind the CDN end to end: a distribution with an S3 origin and its
credentials created through the API, pushed to the edge sealed, and every origin request
signed by the edge against moto with authentication enforced."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo import s3 as moto_s3  # moto[server] and boto3 are pinned in requirements-controlplane.txt

from .cluster import Cluster, running_cluster, wait_for

EDGE = "edge-fra"
BUCKET = "e2e-private"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("s3-cluster"), (EDGE,)) as made:
        yield made


@pytest.fixture(scope="module")
def bucket(cluster: Cluster) -> dict[str, Any]:
    endpoint = cluster.start_moto()
    admin = moto_s3.admin_keys(endpoint)
    s3 = moto_s3.client("s3", endpoint, admin)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="hello world.txt", Body=b"signed hello", ContentType="text/plain")
    return {"endpoint": endpoint, "s3": s3, "edge": moto_s3.bucket_user(endpoint, admin, BUCKET)}


@pytest.fixture(scope="module")
def distribution(cluster: Cluster, bucket: dict[str, Any]) -> dict[str, Any]:
    keys = bucket["edge"]
    body = {
        "comment": "e2e s3", "enabled": True,
        "origins": [{"origin_id": "bucket", "kind": "s3", "bucket": BUCKET, "region": moto_s3.REGION,
                     "endpoint_url": bucket["endpoint"], "signing_behavior": "always",
                     "access_key_id": keys.access_key_id, "secret_access_key": keys.secret_access_key}],
        "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "bucket", "cache_policy": "CachingOptimized",
                             "allowed_methods": "ALL"}],
    }
    wait_for("the edge healthy", lambda: all(e["healthy"] for e in cluster.api("GET", "/edges/").json()["results"]))
    response = cluster.api("POST", "/distributions/", json=body)
    assert response.status_code == 201, response.text
    assert keys.secret_access_key not in response.text
    created = response.json()
    return wait_for(f"{created['id']} Deployed", lambda: (d := cluster.api(
        "GET", f"/distributions/{created['id']}/").json())["status"] == "Deployed" and d, 60)


def test_an_unsigned_request_to_the_bucket_is_refused(bucket: dict[str, Any]) -> None:
    assert httpx.get(f"{bucket['endpoint']}/{BUCKET}/hello%20world.txt").status_code == 403


def test_the_edge_serves_the_private_object_signed_miss_then_hit(cluster: Cluster, distribution: dict[str, Any],
                                                                 bucket: dict[str, Any]) -> None:
    first = cluster.viewer(EDGE, distribution["domain_name"], "/hello%20world.txt")
    assert (first.status_code, first.content) == (200, b"signed hello"), first.text
    assert first.headers["X-Cache"].startswith("Miss")
    assert cluster.viewer(EDGE, distribution["domain_name"], "/hello%20world.txt").headers["X-Cache"].startswith("Hit")
    shown = cluster.api("GET", f"/distributions/{distribution['id']}/").text
    assert bucket["edge"].secret_access_key not in shown and '"has_credentials":true' in shown.replace(" ", "")


def test_an_upload_through_the_edge_lands_in_the_bucket(cluster: Cluster, distribution: dict[str, Any],
                                                       bucket: dict[str, Any]) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    port = cluster.edge_ports[EDGE][0]
    put = httpx.put(f"http://127.0.0.1:{port}/uploads/blob.bin", content=payload,
                    headers={"Host": distribution["domain_name"]}, timeout=60)
    assert put.status_code == 200, put.text
    stored = bucket["s3"].get_object(Bucket=BUCKET, Key="uploads/blob.bin")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_the_edge_keeps_the_credentials_sealed_on_disk(cluster: Cluster, distribution: dict[str, Any],
                                                       bucket: dict[str, Any]) -> None:
    persisted = Path(cluster.state / EDGE / "edge-config.json")
    assert persisted.exists() and persisted.stat().st_mode & 0o077 == 0
    text = persisted.read_text()
    assert '"sealed"' in text and bucket["edge"].secret_access_key not in text
    assert bucket["edge"].secret_access_key not in cluster.log(EDGE) + cluster.log("worker") + cluster.log("web")
