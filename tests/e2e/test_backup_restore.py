"""Backup and restore, with the commands docs/operations.md gives: a control plane restored
from a dump into a fresh database serves the same config, byte for byte, and an edge started
against it with its old token fetches that config and serves traffic through it.

On SQLite the backup is sqlite3's online `.backup`, taken while the control plane runs; on
PostgreSQL (when DATABASE_URL says so, as in CI's second run) it is `pg_dump -Fc` restored
with `pg_restore` into a database of its own. Then `migrate`, as after any restore.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .cluster import ROOT, Cluster, wait_for

# The commands of docs/operations.md ("Backup and restore"), with the paths as placeholders.
SQLITE_BACKUP = "sqlite3 {db} \".backup '{backup}'\""
SQLITE_RESTORE = "sqlite3 {db} \".restore '{backup}'\""
PG_DUMP = "pg_dump --format=custom --no-owner --file={dump} {url}"
PG_RESTORE = "pg_restore --no-owner --exit-on-error --dbname={url} {dump}"
# The same commands as docs/operations.md spells them for a production layout.
DOC_VALUES = {
    SQLITE_BACKUP: {"db": "/var/lib/cdn/controlplane.sqlite3", "backup": "/var/backups/cdn/controlplane.sqlite3"},
    SQLITE_RESTORE: {"db": "/var/lib/cdn/controlplane.sqlite3", "backup": "/var/backups/cdn/controlplane.sqlite3"},
    PG_DUMP: {"dump": "/var/backups/cdn/cdn.dump", "url": '"$DATABASE_URL"'},
    PG_RESTORE: {"dump": "/var/backups/cdn/cdn.dump", "url": '"$NEW_DATABASE_URL"'},
}
EDGE = "edge-bkp"


def run(template: str, **values: str) -> None:
    """One documented command, its placeholders filled with shell-quoted real paths."""
    command = shlex.split(template.format(**{k: shlex.quote(v) for k, v in values.items()}))
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed (.ci/run installs sqlite3 and postgresql-client)")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"


def body(origin_port: int, alias: str) -> dict[str, Any]:
    return {
        "comment": "backed up", "enabled": True, "aliases": [alias], "default_root_object": "index.html",
        "origins": [{"origin_id": "demo", "domain_name": "127.0.0.1", "http_port": origin_port,
                     "protocol_policy": "http-only"}],
        "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "demo", "cache_policy": "CachingOptimized"}],
    }


@dataclass
class Restored:
    original: Cluster
    restored: Cluster
    latest_before: bytes
    edge_document_before: bytes
    distributions_before: list[dict[str, Any]]
    migrate_output: str


def backup(original: Cluster, into: Path) -> None:
    url = original.env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        run(SQLITE_BACKUP, db=url.removeprefix("sqlite:///"), backup=str(into / "controlplane.sqlite3"))
    else:
        run(PG_DUMP, dump=str(into / "cdn.dump"), url=url)
    shutil.copy2(original.var / "secret_key", into / "secret_key")


def restore(restored: Cluster, backups: Path) -> None:
    url = restored.env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        assert not Path(url.removeprefix("sqlite:///")).exists()
        run(SQLITE_RESTORE, db=url.removeprefix("sqlite:///"), backup=str(backups / "controlplane.sqlite3"))
    else:
        run(PG_RESTORE, dump=str(backups / "cdn.dump"), url=url)
    key = restored.var / "secret_key"
    shutil.copy2(backups / "secret_key", key)
    key.chmod(0o600)


@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restored]:
    state = tmp_path_factory.mktemp("backup")
    backups = state / "backups"
    backups.mkdir()
    # A grace period longer than the test: the registered edge, never started before the backup,
    # counts in each distribution's `deployment` the same before and after the restore.
    original = Cluster(state / "original", unhealthy_grace_seconds=600)
    restored: Cluster | None = None
    try:
        original.manage("migrate", "--noinput")
        original.token = json.loads(original.manage("cdn_bootstrap").strip().splitlines()[-1])["token"]
        original.start_web()
        port = original.start_origin()
        original.register_edge(EDGE, "bkp")
        for alias in ("one.backup.test", "two.backup.test"):
            created = original.api("POST", "/distributions/", json=body(port, alias))
            assert created.status_code == 201, created.text
        latest_before = original.api("GET", "/config-versions/latest/").content
        edge_headers = {"Authorization": f"Bearer {original.edge_tokens[EDGE]}"}
        edge_document_before = httpx.get(f"{original.api_url}/edge/config", headers=edge_headers, timeout=10).content
        distributions_before = original.api("GET", "/distributions/").json()["results"]

        backup(original, backups)  # online: the control plane is still running
        original.stop("web")

        restored = Cluster(state / "restored", unhealthy_grace_seconds=600)
        restore(restored, backups)
        migrate_output = restored.manage("migrate", "--noinput")
        restored.token = original.token
        restored.edge_tokens, restored.edge_ports = original.edge_tokens, original.edge_ports
        restored.start_web()
        yield Restored(original, restored, latest_before, edge_document_before, distributions_before, migrate_output)
    except BaseException:
        for cluster in (original, restored):
            for name in list(cluster.processes if cluster else []):
                print(f"---- {name} ----\n{cluster.log(name) if cluster else ''}")
        raise
    finally:
        if restored is not None:
            restored.close()
        original.close()


def test_the_documented_commands_are_the_ones_this_test_runs() -> None:
    operations = (ROOT / "docs/operations.md").read_text()
    for template, values in DOC_VALUES.items():
        command = template.format(**values)
        assert command in operations, f"docs/operations.md does not show: {command}"


def test_the_restored_database_needs_no_migration_and_keeps_every_distribution(restored: Restored) -> None:
    assert "No migrations to apply." in restored.migrate_output
    after = restored.restored.api("GET", "/distributions/").json()["results"]
    assert [d["id"] for d in after] == [d["id"] for d in restored.distributions_before]
    assert after == restored.distributions_before


def test_the_restored_control_plane_serves_the_newest_config_version_byte_for_byte(restored: Restored) -> None:
    latest = restored.restored.api("GET", "/config-versions/latest/")
    assert latest.status_code == 200
    assert latest.content == restored.latest_before
    assert len(latest.json()["document"]["distributions"]) == 2
    edge_headers = {"Authorization": f"Bearer {restored.restored.edge_tokens[EDGE]}"}
    edge_document = httpx.get(f"{restored.restored.api_url}/edge/config", headers=edge_headers, timeout=10)
    assert edge_document.status_code == 200
    assert edge_document.content == restored.edge_document_before


def test_an_edge_with_its_old_token_fetches_the_restored_config_and_serves_through_it(restored: Restored) -> None:
    cluster = restored.restored
    version = json.loads(restored.latest_before)["version"]
    cluster.start_edge(EDGE)
    admin_port = cluster.edge_ports[EDGE][1]
    wait_for("the edge to run the restored version",
             lambda: httpx.get(f"http://127.0.0.1:{admin_port}/health", timeout=2).json()["version"] == version)
    first = cluster.viewer(EDGE, "one.backup.test", "/index.html")
    second = cluster.viewer(EDGE, "two.backup.test", "/index.html")
    assert first.status_code == 200 and first.headers["x-cache"] == f"Miss from {EDGE}", first.headers
    assert second.status_code == 200 and second.content == first.content
    assert b"<html" in first.content.lower()
    edges = wait_for("the heartbeat to reach the restored control plane",
                     lambda: [e for e in cluster.api("GET", "/edges/").json()["results"]
                              if e["name"] == EDGE and e["applied_version"] == version])
    assert edges[0]["healthy"] is True
