"""The distribution form: the page's inputs become the API's write body and go through the
API's own `DistributionSerializer`, so the rules and messages are the API's, in one place.

The form edits what a page can show plainly (the general settings, custom origins' address
and protocol, the behaviors' routing and policies). Everything else a distribution holds
(S3 settings, TLS, custom headers, error pages, signed-URL key groups) is
carried over from the current representation unchanged, and secrets, which the API never
answers with, are kept by the services as in any read-modify-write.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from ..models import AllowedMethods, OriginProtocolPolicy, ViewerProtocolPolicy

ORIGIN_FIELDS = ("origin_id", "domain_name", "origin_path", "protocol_policy", "http_port", "https_port")
BEHAVIOR_FIELDS = ("path_pattern", "target_origin_id", "cache_policy", "origin_request_policy",
                   "viewer_protocol_policy", "allowed_methods", "compress")
GROUP_FIELDS = ("group_id", "primary_origin_id", "secondary_origin_id", "failover_status_codes")
GENERAL_FIELDS = ("comment", "enabled", "aliases", "default_root_object")
BLANK_ORIGINS = 1  # empty rows offered to add an origin / a behavior (a blank row is ignored)
BLANK_BEHAVIORS = 1

CHOICES = {
    "protocol_policy": OriginProtocolPolicy.choices,
    "viewer_protocol_policy": ViewerProtocolPolicy.choices,
    "allowed_methods": AllowedMethods.choices,
}


def _origin_row(item: dict[str, Any] | None = None) -> dict[str, Any]:
    item = item or {}
    row = {"original": item.get("origin_id", ""), "kind": item.get("kind", "custom")}
    defaults = {"protocol_policy": "http-only", "http_port": 80, "https_port": 443}
    row.update({name: item.get(name, defaults.get(name, "")) for name in ORIGIN_FIELDS})
    return row


def _behavior_row(item: dict[str, Any] | None = None, position: int = 0) -> dict[str, Any]:
    item = item or {}
    row = {"original": str(position) if item else "", "compress": bool(item.get("compress", False))}
    defaults = {"viewer_protocol_policy": "allow-all", "allowed_methods": "GET_HEAD"}
    for name in BEHAVIOR_FIELDS:
        if name != "compress":
            value = item.get(name, defaults.get(name, ""))
            row[name] = "" if value is None else str(value)
    return row


def _group_row(item: dict[str, Any] | None = None) -> dict[str, Any]:
    item = item or {}
    return {"group_id": item.get("group_id", ""), "primary_origin_id": item.get("primary_origin_id", ""),
            "secondary_origin_id": item.get("secondary_origin_id", ""),
            "failover_status_codes": ", ".join(str(c) for c in item.get("failover_status_codes", [])), "original": ""}


def initial(representation: dict[str, Any] | None) -> dict[str, Any]:
    """The form's values for a new distribution (None) or for the API's representation of one."""
    rep = representation or {"comment": "", "enabled": True, "aliases": [], "default_root_object": "",
                             "origins": [], "cache_behaviors": []}
    behaviors = [_behavior_row(b, i) for i, b in enumerate(rep["cache_behaviors"])]
    if not behaviors:
        behaviors = [_behavior_row(None)]
        behaviors[0]["path_pattern"] = "*"
    return {
        "comment": rep.get("comment", ""), "enabled": bool(rep.get("enabled", True)),
        "aliases": "\n".join(rep.get("aliases", [])), "default_root_object": rep.get("default_root_object", ""),
        "origins": [_origin_row(o) for o in rep["origins"]] + [_origin_row() for _ in range(BLANK_ORIGINS)],
        "groups": [_group_row(g) for g in rep.get("origin_groups", [])] + [_group_row()],
        "behaviors": behaviors + [_behavior_row() for _ in range(BLANK_BEHAVIORS)],
    }


def from_post(post: QueryDict) -> dict[str, Any]:
    """The form's values as submitted: what a refused save shows again, every input kept."""
    def rows(prefix: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
        count = int(post.get(f"{prefix}-rows", "0")) if post.get(f"{prefix}-rows", "0").isdigit() else 0
        out = []
        for i in range(min(count, 200)):
            row = {name: post.get(f"{prefix}-{i}-{name}", "") for name in fields}
            row["original"] = post.get(f"{prefix}-{i}-original", "")
            if "compress" in fields:
                row["compress"] = post.get(f"{prefix}-{i}-compress") == "on"
            out.append(row)
        return out

    return {"comment": post.get("comment", ""), "enabled": post.get("enabled") == "on",
            "aliases": post.get("aliases", ""), "default_root_object": post.get("default_root_object", ""),
            "origins": rows("o", ORIGIN_FIELDS), "behaviors": rows("b", BEHAVIOR_FIELDS),
            # No group rows sent at all (not even a count): the groups stay as they are.
            "groups": rows("g", GROUP_FIELDS) if "g-rows" in post else None}


def _blank(row: dict[str, Any], keys: tuple[str, ...]) -> bool:
    return not any(str(row.get(k, "")).strip() for k in keys)


def payload(values: dict[str, Any], current: dict[str, Any] | None
            ) -> tuple[dict[str, Any], list[int], list[int], list[int]]:
    """The API's write body, and which form row each origin and behavior of it came from.

    `current` is the API's representation of the distribution being edited: the parts the
    form does not show are taken from it, by the origin's id and the behavior's position.
    """
    old_origins = {o["origin_id"]: o for o in (current or {}).get("origins", [])}
    old_behaviors = (current or {}).get("cache_behaviors", [])
    origins, origin_rows = [], []
    for index, row in enumerate(values["origins"]):
        if _blank(row, ("origin_id", "domain_name", "origin_path")):
            continue
        item = {k: v for k, v in old_origins.get(row["original"], {}).items() if k not in ("has_credentials",)}
        item.update({name: row[name] for name in ORIGIN_FIELDS})
        if item.get("kind", "custom") != "custom":  # an S3 origin's address is its bucket's: not the form's
            item.pop("domain_name", None)
            for name in ("protocol_policy", "http_port", "https_port"):
                item.pop(name, None)
        origins.append(item)
        origin_rows.append(index)
    behaviors, behavior_rows = [], []
    for index, row in enumerate(values["behaviors"]):
        if _blank(row, ("path_pattern", "target_origin_id")):
            continue
        original = row["original"]
        base = old_behaviors[int(original)] if original.isdigit() and int(original) < len(old_behaviors) else {}
        item = {k: v for k, v in base.items() if not k.endswith("_name")}
        item.update({name: row[name] for name in BEHAVIOR_FIELDS})
        item["origin_request_policy"] = row["origin_request_policy"] or None
        behaviors.append(item)
        behavior_rows.append(index)
    groups: list[dict[str, Any]] = []
    group_rows: list[int] = []
    if values.get("groups") is None:
        groups = [dict(g) for g in (current or {}).get("origin_groups", [])]
        group_rows = list(range(len(groups)))
    for index, row in enumerate(values.get("groups") or []):
        if _blank(row, GROUP_FIELDS):
            continue
        codes: list[Any] = []
        for part in row["failover_status_codes"].replace(",", " ").split():
            codes.append(int(part) if part.isdigit() else part)  # a non-number: the serializer's message
        groups.append({"group_id": row["group_id"], "primary_origin_id": row["primary_origin_id"],
                       "secondary_origin_id": row["secondary_origin_id"], "failover_status_codes": codes})
        group_rows.append(index)
    # The default behavior ("*") is evaluated last wherever its row is: pinned there.
    order = sorted(range(len(behaviors)), key=lambda i: behaviors[i].get("path_pattern") == "*")
    behaviors, behavior_rows = [behaviors[i] for i in order], [behavior_rows[i] for i in order]
    body = {"comment": values["comment"], "enabled": values["enabled"],
            "aliases": [line.strip() for line in values["aliases"].replace(",", "\n").splitlines() if line.strip()],
            "default_root_object": values["default_root_object"], "origins": origins, "origin_groups": groups,
            "cache_behaviors": behaviors}
    return body, origin_rows, group_rows, behavior_rows


def _lines(errors: Any) -> list[str]:
    if isinstance(errors, dict):
        return [f"{k}: {m}" if k != "non_field_errors" else m for k, v in errors.items() for m in _lines(v)]
    if isinstance(errors, list):
        return [m for e in errors for m in _lines(e)]
    return [str(errors)]


def errors_by_field(errors: dict[str, Any], origin_rows: list[int], group_rows: list[int],
                    behavior_rows: list[int]) -> dict[str, list[str]]:
    """The serializer's errors keyed by the form's input names (`o-2-http_port`), a section's
    or a row's own under `origins`, `o-2`, and anything else under `form`."""
    out: dict[str, list[str]] = {}

    def add(key: str, messages: list[str]) -> None:
        if messages:
            out.setdefault(key, []).extend(messages)

    for key, value in errors.items():
        if key in ("origins", "origin_groups", "cache_behaviors"):
            prefix, fields, rows = {"origins": ("o", ORIGIN_FIELDS, origin_rows),
                                    "origin_groups": ("g", GROUP_FIELDS, group_rows),
                                    "cache_behaviors": ("b", BEHAVIOR_FIELDS, behavior_rows)}[key]
            items = value
            if isinstance(value, dict):  # a list's errors by index
                items = [value.get(i, value.get(str(i), {})) for i in range(len(rows))]
            for i, item in enumerate(items):
                if isinstance(item, dict) and i < len(rows):
                    for field, messages in item.items():
                        name = f"{prefix}-{rows[i]}-{field}" if field in fields else f"{prefix}-{rows[i]}"
                        add(name, [f"{field}: {m}" if field not in fields and field != "non_field_errors" else m
                                   for m in _lines(messages)])
                else:
                    add(key, _lines(item))
        elif key in GENERAL_FIELDS:
            add(key, _lines(value))
        else:
            add("form", [f"{key}: {m}" if key != "non_field_errors" else m for m in _lines(value)])
    return out


def attach(values: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """Each row's errors beside its values, for the template: `row.errors.http_port`, `row.row_errors`."""
    if values.get("groups") is None:
        values["groups"] = []
    counts = {"o": len(values["origins"]), "g": len(values["groups"]), "b": len(values["behaviors"])}
    for name, messages in list(errors.items()):  # about a row the page does not show: at the top
        parts = name.split("-")
        if len(parts) >= 2 and parts[0] in counts and parts[1].isdigit() and int(parts[1]) >= counts[parts[0]]:
            errors.setdefault("form", []).extend(messages)
    for prefix, key in (("o", "origins"), ("g", "groups"), ("b", "behaviors")):
        for i, row in enumerate(values[key]):
            row["index"] = i
            row["errors"] = {name.rsplit("-", 1)[1]: messages for name, messages in errors.items()
                             if name.startswith(f"{prefix}-{i}-")}
            row["row_errors"] = errors.get(f"{prefix}-{i}", [])
    return values


def move(values: dict[str, Any], command: str) -> dict[str, Any]:
    """`b-3-up` / `b-3-down`: swap that behavior row with its neighbour; "*" stays last."""
    parts = command.split("-")
    rows = values["behaviors"]
    if len(parts) != 3 or parts[0] != "b" or not parts[1].isdigit() or parts[2] not in ("up", "down"):
        return values
    i = int(parts[1])
    j = i - 1 if parts[2] == "up" else i + 1
    if not (0 <= i < len(rows) and 0 <= j < len(rows)):
        return values
    if "*" in (rows[i].get("path_pattern"), rows[j].get("path_pattern")):
        return values  # the default behavior is pinned last
    rows[i], rows[j] = rows[j], rows[i]
    return values
