"""An S3 origin's access control (CloudFront's origin access control, OAC) and its credentials.

The rules both halves apply: the API refuses with a field error what the edge would refuse
in the document. Messages never repeat a credential's value, so a refusal can be shown,
logged or returned without leaking it.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from .errors import ContractError

# CloudFront's SigningBehavior: sign every origin request, never sign, or sign unless the
# viewer sent its own Authorization header (then it is forwarded as it came).
SIGNING_BEHAVIORS = ("always", "never", "no-override")
SIGNING_PROTOCOLS = ("sigv4",)
# How the bucket is named in the URL (botocore's addressing_style): path-style
# {endpoint}/{bucket}/key, or virtual-hosted {scheme}://{bucket}.{endpoint host}/key.
ADDRESSING_STYLES = ("path", "virtual")

# AWS access key ids are 16-128 word characters; MinIO and other S3-compatible stores allow
# shorter ones and a few more characters. Never '/' or whitespace: SigV4 puts the id in
# `Credential=<id>/<date>/<region>/s3/aws4_request`.
ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9_+=,.@-]{3,128}")
MAX_SECRET_ACCESS_KEY = 256
MAX_SESSION_TOKEN = 4096  # STS tokens are about 1 KB; room for federated ones
_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space


def default_endpoint(region: str) -> str:
    return f"https://s3.{region}.amazonaws.com"


def check_access_key_id(value: object) -> None:
    if not isinstance(value, str) or not ACCESS_KEY_ID.fullmatch(value):
        raise ContractError("access_key_id must be 3-128 letters, digits or _+=,.@-", "access_key_id")


def check_secret_access_key(value: object) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_SECRET_ACCESS_KEY or not _PRINTABLE.fullmatch(value):
        raise ContractError(f"secret_access_key must be 1-{MAX_SECRET_ACCESS_KEY} printable ASCII characters "
                            "without spaces", "secret_access_key")


def check_session_token(value: object) -> None:
    """`""` for none (long-term keys)."""
    if not isinstance(value, str) or len(value) > MAX_SESSION_TOKEN or (value and not _PRINTABLE.fullmatch(value)):
        raise ContractError(f"session_token must be at most {MAX_SESSION_TOKEN} printable ASCII characters "
                            "without spaces", "session_token")


def check_credentials(access_key_id: object, secret_access_key: object, session_token: object) -> None:
    check_access_key_id(access_key_id)
    check_secret_access_key(secret_access_key)
    check_session_token(session_token)


def check_signing(behavior: object, protocol: object, has_credentials: bool) -> None:
    if behavior not in SIGNING_BEHAVIORS:
        raise ContractError(f"signing_behavior must be one of {', '.join(SIGNING_BEHAVIORS)}", "signing_behavior")
    if protocol not in SIGNING_PROTOCOLS:
        raise ContractError(f"signing_protocol must be one of {', '.join(SIGNING_PROTOCOLS)}", "signing_protocol")
    if behavior != "never" and not has_credentials:
        raise ContractError(f"signing_behavior {behavior!r} needs credentials (access_key_id and "
                            "secret_access_key); use 'never' for a public bucket", "signing_behavior")


def check_addressing(style: object, endpoint_url: str, bucket: str) -> None:
    """Virtual-hosted style puts the bucket in the host name: the endpoint must be a DNS name,
    and over HTTPS the bucket a single label, or the endpoint's wildcard certificate cannot match."""
    if style not in ADDRESSING_STYLES:
        raise ContractError(f"addressing_style must be one of {', '.join(ADDRESSING_STYLES)}", "addressing_style")
    if style == "path":
        return
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise ContractError("addressing_style 'virtual' needs an endpoint_url with a host name, not an IP address; "
                            "use 'path'", "addressing_style")
    if parts.scheme == "https" and "." in bucket:
        raise ContractError("addressing_style 'virtual' over https needs a bucket name without '.' (the endpoint's "
                            "certificate covers one label); use 'path'", "addressing_style")


def bucket_base_url(endpoint_url: str, bucket: str, style: str) -> str:
    """Everything of an object's URL before its key (no trailing slash)."""
    if style == "path":
        return f"{endpoint_url}/{bucket}"
    scheme, rest = endpoint_url.split("://", 1)
    return f"{scheme}://{bucket}.{rest}"
