"""A distribution across config versions: its snapshot in each, what changed, and the way back.

Pure functions on config documents (no database, no keys): the publisher records with them
which distributions a new version changed, the API diffs two snapshots and builds a rollback
from an old one. A snapshot is the distribution's entry in a version's document: exactly
what the edges were told, so a rollback restores what they served, not what a form once held.

Secrets (S3 credentials, an origin's client key and secret header value) are never shown:
`public_snapshot` replaces each set block with SECRET, sealed or in clear.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cdncontract import s3
from cdncontract.http import METHOD_LISTS

SECRET = "<secret>"

ADDED, CHANGED, REMOVED = "added", "changed", "removed"

# Lists whose items have an identity: diffed item by item, shown as `origins[web].http_port`.
KEYED_LISTS = {"origins": "id", "origin_groups": "id", "cache_behaviors": "path_pattern",
               "custom_error_responses": "error_code"}
ORDERED_LISTS = ("cache_behaviors",)  # the order is a setting of its own: the first match wins


def distribution_snapshot(document: dict[str, Any], distribution_id: str) -> dict[str, Any] | None:
    """The distribution's entry in a version's document; None if the version did not serve it
    (it did not exist yet, was disabled, or was deleted)."""
    for entry in document.get("distributions", []):
        if entry.get("id") == distribution_id:
            return entry
    return None


def _secret_blocks(origin: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path under the origin, value) of each secret block, sealed or in clear; None when unset."""
    s3_block = origin.get("s3")
    blocks = [("secrets", origin.get("secrets"))]
    if isinstance(s3_block, dict):
        blocks.append(("s3.credentials", s3_block.get("credentials")))
    return blocks


def public_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with every secret block replaced by SECRET (None stays None): safe to show."""
    shown = dict(snapshot)
    origins = []
    for origin in snapshot.get("origins", []):
        origin = dict(origin)
        if origin.get("secrets") is not None:
            origin["secrets"] = SECRET
        if isinstance(origin.get("s3"), dict):
            origin["s3"] = dict(origin["s3"])
            if origin["s3"].get("credentials") is not None:
                origin["s3"]["credentials"] = SECRET
        origins.append(origin)
    shown["origins"] = origins
    return shown


def changed_distributions(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, str]:
    """Which distributions `new` changed against `old` (the previous version's document), and how.

    Both in clear, or both with their secrets hidden by `public_snapshot` (the stored versions
    are sealed and their tokens differ on every seal, so sealed blocks are never compared).
    """
    before = {d["id"]: d for d in (old or {}).get("distributions", [])}
    after = {d["id"]: d for d in new.get("distributions", [])}
    changes = {}
    for distribution_id, entry in after.items():
        if distribution_id not in before:
            changes[distribution_id] = ADDED
        elif before[distribution_id] != entry:
            changes[distribution_id] = CHANGED
    for distribution_id in before.keys() - after.keys():
        changes[distribution_id] = REMOVED
    return changes


def public_document(document: dict[str, Any]) -> dict[str, Any]:
    return {"distributions": [public_snapshot(d) for d in document.get("distributions", [])]}


# ---- Diff ----

def _key(item: Any, field: str, index: int) -> str:
    if isinstance(item, dict) and field in item:
        return str(item[field])
    return str(index)


def _diff(old: Any, new: Any, path: str, out: list[dict[str, Any]]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for name in sorted(set(old) | set(new), key=lambda n: (n not in old, n)):
            _diff(old.get(name), new.get(name), f"{path}.{name}" if path else name, out)
        return
    field = KEYED_LISTS.get(path)
    if field is not None and isinstance(old, list) and isinstance(new, list):
        before = {_key(item, field, i): item for i, item in enumerate(old)}
        after = {_key(item, field, i): item for i, item in enumerate(new)}
        if len(before) == len(old) and len(after) == len(new):  # identities unique: diff item by item
            for key in [*before, *(k for k in after if k not in before)]:
                _diff(before.get(key), after.get(key), f"{path}[{key}]", out)
            common_old = [k for k in before if k in after]
            common_new = [k for k in after if k in before]
            if path in ORDERED_LISTS and common_old != common_new:
                out.append({"path": f"{path} (order)", "old": list(before), "new": list(after)})
            return
    out.append({"path": path, "old": old, "new": new})


def snapshot_diff(old: dict[str, Any], new: dict[str, Any],
                  clear: tuple[dict[str, Any], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """What differs from `old` to `new`, as `{"path", "old", "new"}` entries in a stable order.

    Lists with an identity are diffed by it (`origins[web].http_port`,
    `cache_behaviors[/api/*].cache_policy.default_ttl`); an item only on one side is shown
    whole. Secrets show as SECRET; with `clear` (the same two snapshots with their secrets
    opened) a secret whose value changed is listed too, still as SECRET on both sides.
    """
    out: list[dict[str, Any]] = []
    _diff(public_snapshot(old), public_snapshot(new), "", out)
    if clear is not None:
        before = {o["id"]: o for o in clear[0].get("origins", [])}
        for origin in clear[1].get("origins", []):
            previous = before.get(origin["id"])
            if previous is None:
                continue
            for (path, value), (_, old_value) in zip(_secret_blocks(origin), _secret_blocks(previous)):
                if value is not None and old_value is not None and value != old_value:
                    out.append({"path": f"origins[{origin['id']}].{path}", "old": SECRET, "new": SECRET})
    return out


# ---- Rollback ----

_METHOD_NAMES = {methods: name for name, methods in METHOD_LISTS.items()}


def rollback_payload(snapshot: dict[str, Any], current_origins: Iterable[Any]) -> dict[str, Any]:
    """The API's write body (a PATCH of the parts a snapshot holds) that gives the edges `snapshot` again.

    `snapshot` has its secrets in clear. Secrets: a secret the old version had is kept as the
    origin holds it today (a secret is rotated because the old one leaked or was revoked: a
    rollback of a TTL must not bring it back); only an origin that has none today gets the
    old version's. A secret the old version did not have is removed, as the rest of that
    version says (no secret header name, no client certificate). `comment` and `enabled`
    are in no version and are left as they are; policies are referenced by id, with their
    settings of today.
    """
    today = {o.origin_id: o for o in current_origins}
    origins = []
    for o in snapshot.get("origins", []):
        item: dict[str, Any] = {
            "origin_id": o["id"], "kind": o["kind"], "domain_name": o["domain_name"], "origin_path": o["origin_path"],
            "http_port": o["http_port"], "https_port": o["https_port"], "protocol_policy": o["protocol_policy"],
            "connect_timeout": o["connect_timeout"], "read_timeout": o["read_timeout"],
            "connection_attempts": o["connection_attempts"],
            "custom_headers": [{"name": h["name"], "value": h["value"]} for h in o.get("custom_headers", [])],
            "ssl_protocols": list(o.get("ssl_protocols", [])), "ca_bundle": o.get("ca_bundle", ""),
            "client_certificate": o.get("client_certificate", ""),
            "secret_header_name": o.get("secret_header_name", ""),
        }
        current = today.get(o["id"])
        secrets = o.get("secrets") or {}
        for name in ("client_key", "secret_header_value"):
            old_value = secrets.get(name, "")
            if not old_value:
                item[name] = ""
            elif current is None or not getattr(current, name):
                item[name] = old_value
            # else: left out, so the origin keeps today's value
        if o["kind"] == "s3":
            block = o["s3"]
            region = block["region"]
            credentials = block.get("credentials")
            item.update(bucket=block["bucket"], region=region, addressing_style=block["addressing_style"],
                        signing_protocol=block["signing_protocol"],
                        endpoint_url="" if block["endpoint_url"] == s3.default_endpoint(region) else block["endpoint_url"])
            keeps = current is not None and current.kind == "s3" and current.has_credentials
            if credentials is not None and not keeps:
                item.update(access_key_id=credentials["access_key_id"],
                            secret_access_key=credentials["secret_access_key"],
                            session_token=credentials.get("session_token", ""))
            has_credentials = keeps or credentials is not None
            behavior = block["signing_behavior"]
            follows = (behavior == "always") == has_credentials and behavior in ("always", "never")
            item["signing_behavior"] = "" if follows else behavior  # "": follow the credentials, as before
        origins.append(item)
    return {
        "aliases": list(snapshot.get("aliases", [])),
        "default_root_object": snapshot.get("default_root_object", ""),
        "custom_error_responses": [dict(e) for e in snapshot.get("custom_error_responses", [])],
        "origins": origins,
        "origin_groups": [{"group_id": g["id"], "primary_origin_id": g["primary"],
                           "secondary_origin_id": g["secondary"],
                           "failover_status_codes": list(g["failover_status_codes"])}
                          for g in snapshot.get("origin_groups", [])],
        "cache_behaviors": [{
            "path_pattern": b["path_pattern"], "target_origin_id": b["target"],
            "viewer_protocol_policy": b["viewer_protocol_policy"],
            "allowed_methods": _METHOD_NAMES.get(tuple(b["allowed_methods"]), ",".join(b["allowed_methods"])),
            "cached_methods": _METHOD_NAMES.get(tuple(b["cached_methods"]), ",".join(b["cached_methods"])),
            "compress": b["compress"],
            "cache_policy": b["cache_policy"]["id"],
            "origin_request_policy": b["origin_request_policy"]["id"] if b.get("origin_request_policy") else None,
        } for b in snapshot.get("cache_behaviors", [])],
    }
