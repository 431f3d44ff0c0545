"""The `make run` fixture shared by test_make_run.py and test_soak.py."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import Cluster, free_port
from .makerun import free_port_run, processes_using


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Free ports, and the same database and broker handling as the end-to-end cluster (a fresh
    PostgreSQL database and a Redis db of its own when CI points at the real services)."""
    cluster = Cluster(tmp_path)
    env = dict(cluster.env)
    env.pop("DEBUG", None)  # make run's own default
    base = free_port_run(3)
    env.update(CDN_WEB_PORT=str(free_port()), CDN_ORIGIN_PORT=str(free_port()), CDN_S3_PORT=str(free_port()),
               CDN_EDGE_PORT=str(base), CDN_EDGE_ADMIN_PORT=str(base + 100))
    try:
        yield env
    finally:
        for pid in processes_using(tmp_path / "var"):
            os.kill(pid, signal.SIGKILL)
        cluster.close()
