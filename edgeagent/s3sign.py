"""S3 origin requests: the object URL in S3's encoding, SigV4 signing (CloudFront's origin
access control), and what S3's refusals become for the viewer.

Signing is botocore's `S3SigV4Auth` on an `AWSRequest`; nothing here computes a MAC. It runs
after the origin request policy has chosen the headers (passthrough.PassThrough._fetch), on
the final URL, and signs only what S3 reads: the host, every `x-amz-*` header, the range and
conditional headers and the headers that describe a body. The other forwarded headers (Via,
X-Forwarded-For, ...) are sent unsigned, so a hop that rewrites them cannot break the
signature. Bodies are never buffered: a PUT or POST is signed with `UNSIGNED-PAYLOAD` and
streamed; a request without a body signs the SHA-256 of the empty payload.

Keys are encoded once, the way botocore's own S3 client does: the viewer's path is
percent-decoded to the key's bytes and encoded again with `quote(safe="/~")`, so a space is
`%20`, `+` is `%2B` (never S3's legacy "plus means space") and unicode is its UTF-8 bytes.
S3 signs the path as sent (no normalisation), so the URL sent is exactly the one signed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from urllib.parse import quote, unquote_to_bytes

from botocore.auth import EMPTY_SHA256_HASH, SIGNED_HEADERS_BLACKLIST, UNSIGNED_PAYLOAD, S3SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from multidict import CIMultiDict

from .config import Origin, S3Credentials, S3Settings
from .origin import OriginError, OriginResponse

# Viewer headers that change what S3 answers or stores: signed when forwarded.
SIGNED_HEADERS = frozenset({
    "range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since",
    "content-type", "content-md5", "content-encoding", "content-language", "content-disposition",
    "cache-control", "expires",
})
_STREAMED = "edgeagent_streamed_body"


# ---- the object URL ----


def object_path(path: str) -> str:
    """The viewer's path in S3's key encoding (percent-decoded once, encoded once)."""
    return quote(unquote_to_bytes(path), safe="/~")


def object_query(query: str) -> str:
    """A forwarded query string with each name and value in SigV4's encoding, order kept."""
    if not query:
        return query
    pairs = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, eq, value = pair.partition("=")
        encoded = quote(unquote_to_bytes(name), safe="-_.~")
        pairs.append(f"{encoded}={quote(unquote_to_bytes(value), safe='-_.~')}" if eq else encoded)
    return "&".join(pairs)


# ---- signing ----


class _SignedHeaders(dict[str, list[str]]):
    """The headers to sign as botocore's canonical_headers reads them (`get_all`, iteration),
    without the email.message-based HTTPHeaders it builds twice per request."""

    names: str | None = None  # SignedHeaders, once computed

    def get_all(self, name: str) -> list[str]:
        return self.get(name, [])


class _OriginAuth(S3SigV4Auth):
    """botocore's S3 signer, with what it recomputes per request kept: the headers to sign
    (built once per request, not twice) and the signing key (one per secret, day and region,
    from botocore's own HMAC helper). The payload hash is decided here, where the body is not
    in hand."""

    def payload(self, request: AWSRequest) -> str:
        return UNSIGNED_PAYLOAD if request.context.get(_STREAMED) else EMPTY_SHA256_HASH

    def headers_to_sign(self, request: AWSRequest) -> _SignedHeaders:
        memo = request.context.get(_HEADERS_MEMO)
        if memo is not None:
            return memo
        out = _SignedHeaders()
        for name, value in request.headers.items():
            low = name.lower()
            if low not in SIGNED_HEADERS_BLACKLIST:
                out.setdefault(low, []).append(value)
        if "host" not in out:
            out["host"] = [request.context[_HOST]]
        request.context[_HEADERS_MEMO] = out
        return out

    def canonical_headers(self, headers_to_sign: _SignedHeaders) -> str:
        """botocore's lines (`name:Trimall(value),...`, names sorted) from names already lowercase."""
        return "\n".join(f"{name}:{','.join(' '.join(v.split()) for v in headers_to_sign[name])}"
                         for name in sorted(headers_to_sign))

    def signed_headers(self, headers_to_sign: _SignedHeaders) -> str:
        """botocore's `a;b;c`, computed once per request (it asks twice)."""
        if headers_to_sign.names is None:
            headers_to_sign.names = ";".join(sorted(headers_to_sign))
        return headers_to_sign.names

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        day = request.context["timestamp"][0:8]
        key = (self.credentials.secret_key, day, self._region_name)
        signing_key = _SIGNING_KEYS.get(key)
        if signing_key is None:
            if len(_SIGNING_KEYS) >= _MAX_KEYS:
                _SIGNING_KEYS.clear()
            k_date = self._sign(f"AWS4{self.credentials.secret_key}".encode(), day)
            k_region = self._sign(k_date, self._region_name)
            k_service = self._sign(k_region, self._service_name)
            signing_key = _SIGNING_KEYS[key] = self._sign(k_service, "aws4_request")
        return self._sign(signing_key, string_to_sign, hex=True)


_HEADERS_MEMO = "edgeagent_headers_to_sign"
_HOST = "edgeagent_host"
_SIGNING_KEYS: dict[tuple[str, str, str], bytes] = {}
_AUTHS: dict[tuple[S3Credentials, str], _OriginAuth] = {}
_HOSTS: dict[str, str] = {}
_MAX_KEYS = 1024


def _auth(credentials: S3Credentials, region: str) -> _OriginAuth:
    auth = _AUTHS.get((credentials, region))
    if auth is None:
        if len(_AUTHS) >= _MAX_KEYS:
            _AUTHS.clear()
        auth = _AUTHS[(credentials, region)] = _OriginAuth(
            ReadOnlyCredentials(credentials.access_key_id, credentials.secret_access_key,
                                credentials.session_token or None), "s3", region)
    return auth


def _host(url: str) -> str:
    """The Host header aiohttp sends for `url` (botocore's rule: no default port), per origin."""
    slash = url.find("/", url.find("//") + 2)
    prefix = url if slash < 0 else url[:slash]
    host = _HOSTS.get(prefix)
    if host is None:
        if len(_HOSTS) >= _MAX_KEYS:
            _HOSTS.clear()
        host = _HOSTS[prefix] = _host_from_url(prefix)
    return host


def signs(s3: S3Settings, forwarded: Sequence[tuple[str, str]]) -> bool:
    """CloudFront's SigningBehavior: `no-override` forwards a viewer's own Authorization unsigned.

    `forwarded` are the origin request's headers as the origin request policy chose them:
    a viewer's Authorization is among them only when the cache policy keys on it
    (policy.forwarded_authorization), as CloudFront requires for `no-override`; a viewer
    Authorization that is not forwarded leaves the request to be signed.
    """
    if s3.signing_behavior == "never" or s3.credentials is None:
        return False
    return s3.signing_behavior == "always" or not any(name.lower() == "authorization" for name, _ in forwarded)


def sign(s3: S3Settings, method: str, url: str, headers: Sequence[tuple[str, str]],
         streamed: bool) -> list[tuple[str, str]]:
    """The origin request's headers with SigV4 added; any Authorization or signing header the
    viewer sent is replaced. `url` is the final, already encoded URL."""
    credentials = s3.credentials
    assert credentials is not None
    signed: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for name, value in headers:
        low = name.lower()
        if low == "authorization":
            continue
        if low in SIGNED_HEADERS or low.startswith("x-amz-"):
            signed[low] = f"{signed[low]},{value}" if low in signed else value
        else:
            out.append((name, value))
    request = AWSRequest(method=method, url=url)
    # Case-insensitive like botocore's HTTPHeaders, in C rather than on email.message.
    request.headers = CIMultiDict(signed)
    request.context[_STREAMED] = streamed
    request.context[_HOST] = _host(url)
    _auth(credentials, s3.region or "us-east-1").add_auth(request)
    out.extend(request.headers.items())
    return out


# ---- S3's refusals ----

# Codes that say the edge's access is wrong (credentials, bucket, region), not the viewer's
# request: a 502, as CloudFront answers when it cannot use its origin.
_MISCONFIGURED = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
    "AuthorizationHeaderMalformed", "RequestTimeTooSkewed", "MissingSecurityHeader", "InvalidSecurity",
    "InvalidRequest", "NoSuchBucket", "InvalidBucketName", "PermanentRedirect", "TemporaryRedirect",
    "AccountProblem", "AllAccessDisabled",
})
_SCREENED = frozenset({301, 307, 400, 403, 404})
_ERROR_PEEK = 64 * 1024  # S3 error documents are under 1 KiB
_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
_REQUEST_ID = re.compile(rb"<RequestId>([A-Za-z0-9+/=_-]{1,128})</RequestId>")
_SAFE_ID = re.compile(r"[A-Za-z0-9+/=_-]{1,128}")
_REQUEST_ID_HEADERS = ("x-amz-request-id", "x-amzn-requestid")  # S3's; other AWS-compatible stores'


class S3Refused(OriginError):
    """S3 refused the edge's request: the viewer gets `status` and the code and request id,
    never S3's body (a SignatureDoesNotMatch document repeats the string that was signed)."""

    def __init__(self, origin_id: str, status: int, code: str, request_id: str) -> None:
        super().__init__(origin_id, f"S3 refused the request: {status} {code or 'no error code'}"
                         f" (S3 request id {request_id or 'none'})", False)
        self.origin_status = status
        self.status = 502 if code in _MISCONFIGURED else 403
        self.code = code
        self.request_id = request_id

    def viewer_text(self) -> str:
        code = f" ({self.code})" if self.code else ""
        rid = f"; S3 request id {self.request_id}" if self.request_id else ""
        if self.status == 403:
            return f"403 Forbidden: the S3 origin denied access{code}{rid}."
        return f"502 Bad Gateway: the S3 origin refused the CDN's request{code}{rid}."


class _Replayed(OriginResponse):
    """An origin answer whose first bytes were read to find S3's error code."""

    __slots__ = ("_head", "_inner")

    def __init__(self, inner: OriginResponse, head: bytes) -> None:
        for name in OriginResponse.__slots__:
            setattr(self, name, getattr(inner, name))
        self._inner = inner
        self._head = head

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._head:
            yield self._head
        async for chunk in self._inner.chunks():
            yield chunk

    def release(self) -> None:
        self._inner.release()


async def screen(origin: Origin, response: OriginResponse) -> OriginResponse:
    """Raise S3Refused for S3's refusals; anything else (NoSuchKey's 404 too) goes on as it came."""
    if response.status not in _SCREENED:
        return response
    head = b""
    try:
        async for chunk in response.chunks():
            head += chunk
            if len(head) >= _ERROR_PEEK:
                break
    except OriginError:
        response.release()
        raise
    match = _CODE.search(head)
    code = match.group(1).decode() if match else ""
    if response.status == 403 or code in _MISCONFIGURED:
        response.release()
        request_id = next((v for n, v in response.headers if n.lower() in _REQUEST_ID_HEADERS), "")
        if not request_id:
            found = _REQUEST_ID.search(head)
            request_id = found.group(1).decode() if found else ""
        raise S3Refused(origin.id, response.status, code, request_id if _SAFE_ID.fullmatch(request_id) else "")
    return _Replayed(response, head)
