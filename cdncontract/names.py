"""Names in the document: host names (with the wildcard rule), ids and edge names.

Host names follow what a TLS certificate can cover, as CloudFront requires of alternate
domain names: lowercase labels of letters, digits and hyphens (no underscore), at most 253
characters, a wildcard only as the whole first label of a name with two more labels.
"""

from __future__ import annotations

import ipaddress
import re

from .errors import ContractError

HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_HOSTNAME = 253
DISTRIBUTION_ID = re.compile(r"^E[A-Z0-9]{13}$")
ORIGIN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")  # origin ids and origin group ids
EDGE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
S3_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


def hostname(value: str, *, allow_wildcard: bool = False, what: str = "domain name") -> str:
    """The normalised host name (lowercase, no trailing dot), or ContractError."""
    name = value.strip().lower().rstrip(".")
    if not name:
        raise ContractError(f"{what} must not be empty")
    if len(name) > MAX_HOSTNAME:
        raise ContractError(f"{what} {value!r} is longer than {MAX_HOSTNAME} characters")
    labels = name.split(".")
    if labels[0] == "*":
        if not allow_wildcard:
            raise ContractError(f"{what} {value!r} may not be a wildcard")
        labels = labels[1:]
        if len(labels) < 2:
            raise ContractError(f"wildcard {value!r} must name a domain with at least two labels after '*.'")
    if "*" in name.lstrip("*"):
        raise ContractError(f"{what} {value!r}: '*' is only allowed as the whole first label ('*.example.com')")
    for label in labels:
        if not HOSTNAME_LABEL.fullmatch(label):
            raise ContractError(
                f"{what} {value!r} is not a valid host name (labels of letters, digits and hyphens, 1-63 characters)"
            )
    return name


def origin_host(value: str) -> str:
    """An origin's host: a host name or an IP literal (IPv6 bare, brackets dropped)."""
    raw = value.strip()
    try:
        ipaddress.ip_address(raw.strip("[]"))
        return raw.strip("[]").lower()
    except ValueError:
        return hostname(raw, what="origin domain name")


def check_origin_id(value: object, what: str = "origin_id") -> None:
    if not isinstance(value, str) or not ORIGIN_ID.fullmatch(value):
        raise ContractError(f"{what} must be 1-128 letters, digits, '_', '.' or '-'")


def check_distribution_id(value: object) -> None:
    if not isinstance(value, str) or not DISTRIBUTION_ID.fullmatch(value):
        raise ContractError("a distribution id is E followed by 13 uppercase letters or digits")


def check_edge_name(value: str) -> None:
    if not EDGE_NAME.fullmatch(value):
        raise ContractError("edge name must be lowercase letters, digits and '-', starting with a letter or digit")
