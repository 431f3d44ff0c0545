"""The edge config document's schema version (docs/edge-config.md, "Schema versions")."""

from __future__ import annotations

SCHEMA_VERSION = 2
# The schemas an edge reads: the current one and the one before it, so that documents
# compiled before an upgrade (stored config versions, an edge's persisted config) still load
# after it. Nothing came before 1.
SUPPORTED_SCHEMA_VERSIONS = range(max(1, SCHEMA_VERSION - 1), SCHEMA_VERSION + 1)

# Schema 2 adds signed URLs and cookies (a distribution's `public_keys`, a behavior's
# `trusted_key_groups`). An edge of schema 1 would ignore them and serve private content to
# anyone, so a document that has any is schema 2, which such an edge refuses (it keeps its
# last good config); a document without any is written as schema 1, which every edge reads.
SIGNED_URLS_SCHEMA = 2
PLAIN_SCHEMA = 1
