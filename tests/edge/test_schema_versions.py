"""Config schema compatibility: an edge reads the current schema and the one before it, and
refuses anything else with an error that says which side to upgrade, keeping its last good
config (docs/edge-config.md, "Schema versions")."""

from __future__ import annotations

import json

import pytest

from edgeagent.config import SCHEMA_VERSION, SUPPORTED_SCHEMA_VERSIONS, ConfigError, parse_document
from tests.edge.conftest import Answer, Edge, Origin, clone, distribution, document

OLDEST = SUPPORTED_SCHEMA_VERSIONS[0]


def with_schema(schema: int, version: int = 1) -> dict[str, object]:
    doc = document(distribution(8090), version=version)
    doc["schema_version"] = schema
    return doc


def test_the_edge_reads_the_current_schema_and_one_version_back() -> None:
    assert SUPPORTED_SCHEMA_VERSIONS.step == 1
    assert SUPPORTED_SCHEMA_VERSIONS[-1] == SCHEMA_VERSION
    assert len(SUPPORTED_SCHEMA_VERSIONS) == min(2, SCHEMA_VERSION)
    assert OLDEST >= 1


@pytest.mark.parametrize("schema", list(SUPPORTED_SCHEMA_VERSIONS))
def test_it_accepts_every_supported_schema(schema: int) -> None:
    assert parse_document(with_schema(schema)).schema_version == schema


def test_it_refuses_a_newer_schema_and_says_to_upgrade_the_edge() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_document(with_schema(SCHEMA_VERSION + 1))
    assert str(refused.value) == (f"schema_version: unsupported schema version {SCHEMA_VERSION + 1}: this edge reads "
                                  f"schema {_reads()}; upgrade the edge")


def test_it_refuses_a_schema_two_versions_back_and_says_to_publish_again() -> None:
    too_old = OLDEST - 1
    with pytest.raises(ConfigError) as refused:
        parse_document(with_schema(too_old))
    assert str(refused.value) == (f"schema_version: unsupported schema version {too_old}: this edge reads schema "
                                  f"{_reads()}; publish a new config version from an upgraded control plane")


def _reads() -> str:
    return str(OLDEST) if OLDEST == SCHEMA_VERSION else f"{OLDEST} to {SCHEMA_VERSION}"


def test_a_running_edge_refuses_unsupported_schemas_and_keeps_serving_its_last_good_config(
        origin: Origin, edge: Edge) -> None:
    origin.route("/page", Answer(body=b"from version 1", headers={"Cache-Control": "no-store"}))
    base = document(distribution(origin.port))
    for version, schema in ((2, SCHEMA_VERSION + 1), (3, OLDEST - 1)):
        pushed = clone(base, version)
        pushed["schema_version"] = schema
        refused = edge.push(pushed)
        assert refused.status_code == 400
        assert refused.json()["version"] == 1
        assert f"unsupported schema version {schema}" in refused.json()["error"]
        served = edge.get("/page")
        assert served.status_code == 200 and served.content == b"from version 1"
    assert json.loads((edge.cache_dir / "edge-config.json").read_bytes())["version"] == 1
    edge.restart()
    assert edge.admin("GET", "/config").json()["version"] == 1
    assert edge.get("/page").content == b"from version 1"
    assert edge.push(clone(base, 4)).json() == {"version": 4}
