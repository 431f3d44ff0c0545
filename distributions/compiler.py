"""Compile the database into the edge config document (docs/edge-config.md).

`compile_document` is pure and deterministic: it reads only the objects it is given (loaded
by `selectors.distributions_for_compile`), so the same state always gives byte-identical JSON.
Its result holds S3 credentials and origin secrets in clear and lives in memory only: what is stored and sent is
`crypto.seal_document` of it (services/publishing.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from cdncontract.http import METHOD_LISTS
from cdncontract.schema import PLAIN_SCHEMA, SIGNED_URLS_SCHEMA

from .models import CacheBehavior, CachePolicy, Distribution, KeyGroup, Origin, OriginGroup, OriginRequestPolicy


def compile_document(distributions: Iterable[Distribution], version: int) -> dict[str, Any]:
    """The fleet setting CDN_REFUSE_INTERNAL_ORIGINS travels in the document, so every edge enforces it."""
    enabled = sorted((d for d in distributions if d.enabled), key=lambda d: d.id)
    compiled = [_distribution(d) for d in enabled]
    # cdncontract.schema: private content needs an edge that reads it, or it is refused whole.
    signed = any("trusted_key_groups" in b for d in compiled for b in d["cache_behaviors"])
    return {
        "schema_version": SIGNED_URLS_SCHEMA if signed else PLAIN_SCHEMA,
        "version": version,
        "refuse_internal_origins": bool(settings.CDN_REFUSE_INTERNAL_ORIGINS),
        "distributions": compiled,
    }


def document_body(document: dict[str, Any]) -> dict[str, Any]:
    """The part of a document that a change can alter: everything but its version number."""
    return {key: value for key, value in document.items() if key != "version"}


def canonical_json(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _distribution(d: Distribution) -> dict[str, Any]:
    behaviors = _ordered_behaviors(d.cache_behaviors.all())
    compiled = {
        "id": d.id,
        "domain_name": d.domain_name,
        "aliases": sorted(alias.name for alias in d.alias_set.all()),
        "default_root_object": d.default_root_object,
        "origins": [_origin(o) for o in sorted(d.origins.all(), key=lambda o: o.origin_id)],
        "origin_groups": [_group(g) for g in sorted(d.origin_groups.all(), key=lambda g: g.group_id)],
        "cache_behaviors": [_behavior(b) for b in behaviors],
        "custom_error_responses": sorted(d.custom_error_responses, key=lambda e: e["error_code"]),
    }
    # Signed URLs and cookies: only a distribution that has them carries the keys (schema 2).
    keys = {k.id: k for b in behaviors for g in b.trusted_key_groups.all() for k in g.public_keys.all()}
    if keys:
        compiled["public_keys"] = [{"id": kid, "encoded_key": keys[kid].encoded_key} for kid in sorted(keys)]
    return compiled


def _ordered_behaviors(behaviors: Iterable[CacheBehavior]) -> list[CacheBehavior]:
    return sorted(behaviors, key=lambda b: (b.path_pattern == "*", b.position, b.pk or 0))


def _origin(o: Origin) -> dict[str, Any]:
    return {
        "id": o.origin_id,
        "kind": o.kind,
        "domain_name": o.domain_name,
        "origin_path": o.origin_path,
        "http_port": o.http_port,
        "https_port": o.https_port,
        "protocol_policy": o.protocol_policy,
        "connect_timeout": o.connect_timeout,
        "read_timeout": o.read_timeout,
        "connection_attempts": o.connection_attempts,
        "custom_headers": [{"name": h["name"], "value": h["value"]} for h in o.custom_headers],
        "s3": _s3(o) if o.kind == "s3" else None,
        "ssl_protocols": list(o.ssl_protocols),
        "ca_bundle": o.ca_bundle,
        "client_certificate": o.client_certificate,
        "secret_header_name": o.secret_header_name,
        # In clear here, like the S3 credentials: crypto.seal_document seals it.
        "secrets": ({"client_key": o.client_key, "secret_header_value": o.secret_header_value}
                    if o.client_key or o.secret_header_value else None),
    }


def _s3(o: Origin) -> dict[str, Any]:
    """Credentials in clear: `crypto.seal_document` seals them before the document is stored or sent."""
    return {
        "bucket": o.bucket,
        "region": o.region or "us-east-1",
        "endpoint_url": o.effective_endpoint_url,
        "addressing_style": o.addressing_style,
        "signing_behavior": o.effective_signing_behavior,
        "signing_protocol": o.signing_protocol,
        "credentials": (
            {"access_key_id": o.access_key_id, "secret_access_key": o.secret_access_key,
             "session_token": o.session_token}
            if o.has_credentials and o.effective_signing_behavior != "never"
            else None
        ),
    }


def _group(g: OriginGroup) -> dict[str, Any]:
    return {
        "id": g.group_id,
        "primary": g.primary_origin_id,
        "secondary": g.secondary_origin_id,
        "failover_status_codes": sorted(g.failover_status_codes),
    }


def _key_group(g: KeyGroup) -> dict[str, Any]:
    return {"id": str(g.id), "public_key_ids": sorted(k.id for k in g.public_keys.all())}


def _behavior(b: CacheBehavior) -> dict[str, Any]:
    groups = sorted(b.trusted_key_groups.all(), key=lambda g: str(g.id))
    compiled = {
        "path_pattern": b.path_pattern,
        "target": b.target_origin_id,
        "viewer_protocol_policy": b.viewer_protocol_policy,
        "allowed_methods": list(METHOD_LISTS[b.allowed_methods]),
        "cached_methods": list(METHOD_LISTS[b.cached_methods]),
        "compress": b.compress,
        "cache_policy": _cache_policy(b.cache_policy),
        "origin_request_policy": _origin_request_policy(b.origin_request_policy) if b.origin_request_policy else None,
    }
    if groups:
        compiled["trusted_key_groups"] = [_key_group(g) for g in groups]
    return compiled


def _cache_policy(p: CachePolicy) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "name": p.name,
        "min_ttl": p.min_ttl,
        "default_ttl": p.default_ttl,
        "max_ttl": p.max_ttl,
        "query_strings": p.block("query_strings"),
        "headers": p.block("headers"),
        "cookies": p.block("cookies"),
        "enable_gzip": p.enable_gzip,
        "enable_brotli": p.enable_brotli,
        "cache_control_field": p.cache_control_field.lower(),
        "heuristic_freshness": p.heuristic_freshness,
    }


def _origin_request_policy(p: OriginRequestPolicy) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "name": p.name,
        "query_strings": p.block("query_strings"),
        "headers": p.block("headers"),
        "cookies": p.block("cookies"),
    }
