"""The edge config document's schema version (docs/edge-config.md, "Schema versions")."""

from __future__ import annotations

SCHEMA_VERSION = 1
# The schemas an edge reads: the current one and the one before it, so that documents
# compiled before an upgrade (stored config versions, an edge's persisted config) still load
# after it. Nothing came before 1.
SUPPORTED_SCHEMA_VERSIONS = range(max(1, SCHEMA_VERSION - 1), SCHEMA_VERSION + 1)
