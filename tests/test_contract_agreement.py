"""The control plane and the edge agree on the contract (cdncontract/).

One corpus of valid and invalid values (host names, header names and values, reserved
headers, path patterns, origin paths, root objects, error responses, status codes, TTLs,
method lists, an S3 origin's access control and credentials, invalidation paths and tags),
each put through the real API and the real edge parser (with S3 credentials sealed for the
edge, as it receives them):

- whatever the API accepts, the edge accepts in the document `compiler.py` makes of it
  (`edgeagent.config.parse_document`), and an invalidation message as the control plane
  sends it (`cdncontract.invalidations.parse_invalidation`, what the edge's admin API and
  link call);
- whatever the edge refuses, the API refused first, with a 400 naming the field, unless it
  publishes the value in a normal form the edge takes (a lowercased alias, a trimmed tag).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from cdncontract import sealing
from cdncontract.errors import ContractError
from cdncontract.headers import RESERVED_ORIGIN_HEADERS
from cdncontract.http import ERROR_CODES, FAILOVER_CODES, METHOD_LISTS
from cdncontract.invalidations import parse_invalidation
from cdncontract.signing import Verifier, signing_key
from cdncontract.stats import COUNTER_NAMES, STATS_INTERVAL_SECONDS
from cdncontract.ttl import MAX_TTL
from distributions import crypto, edge_client, selectors, services
from distributions.compiler import compile_document
from distributions.models import Invalidation, TrafficStat, hash_token
from edgeagent.config import ConfigError, parse_document
from edgeagent.stats import CLIENT_ABORT, EDGE, HIT, MISS, StatsCollector

pytestmark = pytest.mark.django_db

# Bounded: CI runs the suite twice; each example is a few API calls and one compile.
EXAMPLES = settings(max_examples=20, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

BASE: dict[str, Any] = {
    "comment": "agreement",
    "enabled": True,
    "aliases": ["www.agree.test"],
    "default_root_object": "index.html",
    "origins": [
        {"origin_id": "web", "kind": "custom", "domain_name": "127.0.0.1", "http_port": 8090,
         "protocol_policy": "http-only"},
        {"origin_id": "backup", "kind": "custom", "domain_name": "127.0.0.2"},
    ],
    "origin_groups": [{"group_id": "pair", "primary_origin_id": "web", "secondary_origin_id": "backup",
                       "failover_status_codes": [502]}],
    "cache_behaviors": [
        {"path_pattern": "/api/*", "target_origin_id": "pair", "cache_policy": "CachingDisabled",
         "allowed_methods": "ALL"},
        {"path_pattern": "*", "target_origin_id": "web", "cache_policy": "CachingOptimized"},
    ],
    "custom_error_responses": [],
}

# Text that reaches the edge's rules: printable ASCII, the characters the rules single out
# and a few beyond ASCII.
TEXT = st.text(alphabet=st.sampled_from([chr(c) for c in range(32, 127)] + list("\t\r\n\0\x7fü_*?#")),
               max_size=40)


def _distribution(document: dict[str, Any], distribution_id: str) -> dict[str, Any]:
    return next(d for d in document["distributions"] if d["id"] == distribution_id)


def _origin(dist: dict[str, Any], origin_id: str = "web") -> dict[str, Any]:
    return next(o for o in dist["origins"] if o["id"] == origin_id)


@dataclass(frozen=True)
class Case:
    """Where one kind of value goes in the API's input and in the edge's document."""

    name: str
    corpus: tuple[Any, ...]  # every value of it is checked on every run
    generated: st.SearchStrategy[Any]  # and a bounded number of these
    fields: tuple[str, ...]  # a 400 names one of these
    api: Callable[[dict[str, Any], Any], None]  # puts the value into a distribution body
    edge: Callable[[dict[str, Any], Any], None]  # puts the raw value into a compiled distribution
    published: Callable[[dict[str, Any]], Any]  # what the compiled distribution holds for it


def _set_origin(field: str) -> Callable[[dict[str, Any], Any], None]:
    def put(body: dict[str, Any], value: Any) -> None:
        body["origins"][0][field] = value
    return put


def _put_origin(field: str) -> Callable[[dict[str, Any], Any], None]:
    def put(dist: dict[str, Any], value: Any) -> None:
        _origin(dist)[field] = value
    return put


def _headers(pair: tuple[str, str]) -> list[dict[str, str]]:
    return [{"name": pair[0], "value": pair[1]}]


HOSTS = ("www.example.test", "a_b.example.test", "UPPER.example.test", "*.example.test", "*.test", "*",
         "*.*.example.test", "a..b.test", "-a.test", "a-.test", "x" * 63 + ".test", "x" * 64 + ".test",
         "trailing.dot.test.", "ü.test", "a b.test", "xn--bcher-kva.test", "127.0.0.1", "localhost",
         "foo.cdn.localhost", "a." * 120 + "test", "a." * 130 + "test")
GENERATED_HOSTS = st.from_regex(r"\A(\*\.)?[a-zA-Z0-9_-]{1,8}(\.[a-zA-Z0-9_-]{1,8}){0,3}\.?\Z")
ORIGIN_HOSTS = ("127.0.0.1", "::1", "[::1]", "2001:db8::1", "origin_1.test", "ORIGIN.test", "a b.test", "1.2.3.4.5",
                "origin.test.", "-x.test", "bucket.s3.us-east-1.amazonaws.com", *HOSTS)
HEADER_NAMES = (*sorted(RESERVED_ORIGIN_HEADERS), "Authorization", "X-Amz-Date", "x-amz-anything", "X-Edge-Secret",
                "X-Forwarded-Proto", "X-Real-IP", "Trailers", "X-Custom", "X-Origin-Verify", "Bad Name", "X:Y", "", "ü")
HEADER_VALUES = ("secret", "", "a\r\nb", "a\0b", "x" * 1783, "x" * 1784, "tab\there")
GENERATED_HEADERS = st.tuples(st.one_of(st.from_regex(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}\Z"), TEXT),
                              st.one_of(st.sampled_from(HEADER_VALUES), TEXT))
PATH_PATTERNS = ("/images/*", "*.jpg", "images/*.png", "/a?c", "/a b", "/" + "a" * 254, "/" + "a" * 255, "/a\x7f",
                 "/ü", "", "/\t", "*")
ORIGIN_PATHS = ("", "/", "/production", "/v1/", "v1", "/a b", "/a?b", "/a#b", "/a*", "/a\tb", "/a\x7fb", "/ü",
                "/a/..", "/./a", "/a\\b")
ROOT_OBJECTS = ("", "index.html", "/index.html", "a b", "a?b", "a#b", "a\nb", "a\tb", "dir/index.html", "ü.html")
ERROR_RESPONSES = (
    *({"error_code": code, "response_page_path": "", "response_code": None, "error_caching_min_ttl": 10}
      for code in (*ERROR_CODES, 200, 418)),
    *({"error_code": 404, "response_page_path": "/404.html", "response_code": rc, "error_caching_min_ttl": 10}
      for rc in (100, 199, 200, 404, 599, 600)),
    *({"error_code": 503, "response_page_path": page, "response_code": None, "error_caching_min_ttl": 0}
      for page in ("/503.html", "503.html", "/a\nb", "/a\tb", "/" + "a" * 4096)),
    *({"error_code": 502, "response_page_path": "", "response_code": None, "error_caching_min_ttl": ttl}
      for ttl in (-1, MAX_TTL, MAX_TTL + 1)),
)
GENERATED_ERROR_RESPONSES = st.fixed_dictionaries({
    "error_code": st.one_of(st.sampled_from(ERROR_CODES), st.integers(99, 600)),
    "response_page_path": st.one_of(st.sampled_from(["", "/404.html"]), TEXT),
    "response_code": st.one_of(st.none(), st.integers(0, 1000)),
    "error_caching_min_ttl": st.integers(-5, MAX_TTL + 5),
})
FAILOVER = ([], [502], list(FAILOVER_CODES), [501], [502, 502], [200], [True])
GENERATED_FAILOVER = st.lists(st.one_of(st.sampled_from(FAILOVER_CODES), st.integers(100, 599)), max_size=5)
METHOD_NAMES = (*METHOD_LISTS, "GET", "")
METHOD_PAIRS = tuple((a, c) for a in METHOD_NAMES for c in METHOD_NAMES)

EDGE_KEY = signing_key("the agreement's edge token")
S3_CREDENTIALS = ("AKIDEXAMPLE", "wJalrXUtnFEMI-K7MDENG-EXAMPLEKEY", "")
CREDENTIALS = (S3_CREDENTIALS, ("AKIDEXAMPLE", "s", "FwoGZXIvYXdzEXAMPLE"), ("AK", "secret", ""),
               ("A" * 128, "s" * 256, "t" * 4096), ("A" * 129, "s", ""), ("AKID", "s" * 257, ""),
               ("AKID", "secret", "t" * 4097), ("AKID/X", "secret", ""), ("AKID X", "secret", ""),
               ("AKID", "sec ret", ""), ("AKID", "secret\n", ""), ("AKID", "secret", "tok en"),
               ("AKID", "sécret", ""), ("AKIDü", "secret", ""), ("AKID", "", ""), ("", "secret", ""),
               ("", "", "token"), ("", "", ""), ("ak+id=,.@_-", "!#$%&'*+/=?^_`{|}~", "a/b+c=="))
GENERATED_CREDENTIALS = st.tuples(st.one_of(st.from_regex(r"\A[A-Za-z0-9_+=,.@/-]{1,20}\Z"), TEXT), TEXT, TEXT)
ACCESS_CONTROL = tuple(
    (behavior, protocol, style, endpoint)
    for behavior in ("always", "never", "no-override", "", "sometimes")
    for protocol in ("sigv4", "sigv2")
    for style in ("path", "virtual", "")
    for endpoint in ("http://127.0.0.1:9000", "https://s3.example.test", "http://minio:9000/"))


def _s3_origin(body: dict[str, Any], **fields: Any) -> None:
    body["origins"][0].update(kind="s3", bucket="agree-assets", region="eu-west-1", **fields)


def _put_s3(dist: dict[str, Any], credentials: tuple[str, str, str] | None = S3_CREDENTIALS, **s3: Any) -> None:
    """The raw value in a compiled distribution's first origin, made an S3 origin as the API would."""
    sealed = None if credentials is None else sealing.seal(
        dict(zip(sealing.CREDENTIAL_FIELDS, credentials)), sealing.edge_fernet(EDGE_KEY))
    block = {"bucket": "agree-assets", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:9000",
             "addressing_style": "path", "signing_behavior": "always", "signing_protocol": "sigv4",
             "credentials": sealed}
    block.update(s3)
    _origin(dist).update(kind="s3", s3=block)


def _published_credentials(dist: dict[str, Any]) -> tuple[str, ...] | None:
    sealed = (_origin(dist)["s3"] or {}).get("credentials")
    if sealed is None:
        return None
    opened = sealing.unseal(sealed, sealing.edge_fernet(EDGE_KEY))
    return tuple(opened[name] for name in sealing.CREDENTIAL_FIELDS)


def _published_access_control(dist: dict[str, Any]) -> tuple[str, ...]:
    s3 = _origin(dist)["s3"] or {}
    return tuple(s3.get(key, "") for key in ("signing_behavior", "signing_protocol", "addressing_style",
                                             "endpoint_url"))


CASES = [
    Case("alias", HOSTS, GENERATED_HOSTS, ("aliases",),
         lambda body, v: body.update(aliases=[v]),
         lambda dist, v: dist.update(aliases=[v]),
         lambda dist: dist["aliases"][0]),
    Case("origin domain name", ORIGIN_HOSTS, GENERATED_HOSTS, ("origins",),
         _set_origin("domain_name"), _put_origin("domain_name"),
         lambda dist: _origin(dist)["domain_name"]),
    Case("custom header", (*((name, "x") for name in HEADER_NAMES), *(("X-Custom", v) for v in HEADER_VALUES)),
         GENERATED_HEADERS, ("origins",),
         lambda body, v: _set_origin("custom_headers")(body, _headers(v)),
         lambda dist, v: _put_origin("custom_headers")(dist, _headers(v)),
         lambda dist: tuple(_origin(dist)["custom_headers"][0].values())),
    Case("origin path", ORIGIN_PATHS, TEXT, ("origins",), _set_origin("origin_path"), _put_origin("origin_path"),
         lambda dist: _origin(dist)["origin_path"]),
    Case("path pattern", PATH_PATTERNS, TEXT, ("cache_behaviors",),
         lambda body, v: body["cache_behaviors"][0].update(path_pattern=v),
         lambda dist, v: dist["cache_behaviors"][0].update(path_pattern=v),
         lambda dist: dist["cache_behaviors"][0]["path_pattern"]),
    Case("default root object", ROOT_OBJECTS, TEXT, ("default_root_object",),
         lambda body, v: body.update(default_root_object=v),
         lambda dist, v: dist.update(default_root_object=v),
         lambda dist: dist["default_root_object"]),
    Case("custom error response", ERROR_RESPONSES, GENERATED_ERROR_RESPONSES, ("custom_error_responses",),
         lambda body, v: body.update(custom_error_responses=[v]),
         lambda dist, v: dist.update(custom_error_responses=[v]),
         lambda dist: dist["custom_error_responses"][0]),
    Case("failover status codes", FAILOVER, GENERATED_FAILOVER, ("origin_groups",),
         lambda body, v: body["origin_groups"][0].update(failover_status_codes=v),
         lambda dist, v: dist["origin_groups"][0].update(failover_status_codes=v),
         lambda dist: dist["origin_groups"][0]["failover_status_codes"]),
    Case("method lists", METHOD_PAIRS, st.nothing(), ("cache_behaviors",),
         lambda body, v: body["cache_behaviors"][0].update(allowed_methods=v[0], cached_methods=v[1]),
         lambda dist, v: dist["cache_behaviors"][0].update(allowed_methods=list(METHOD_LISTS.get(v[0], [v[0]])),
                                                           cached_methods=list(METHOD_LISTS.get(v[1], [v[1]]))),
         lambda dist: (dist["cache_behaviors"][0]["allowed_methods"], dist["cache_behaviors"][0]["cached_methods"])),
    Case("s3 credentials", CREDENTIALS, GENERATED_CREDENTIALS, ("origins",),
         lambda body, v: _s3_origin(body, **dict(zip(sealing.CREDENTIAL_FIELDS, v))),
         lambda dist, v: _put_s3(dist, v),
         _published_credentials),
    Case("s3 access control", ACCESS_CONTROL, st.nothing(), ("origins",),
         lambda body, v: _s3_origin(body, signing_behavior=v[0], signing_protocol=v[1], addressing_style=v[2],
                                    endpoint_url=v[3], **dict(zip(sealing.CREDENTIAL_FIELDS, S3_CREDENTIALS))),
         lambda dist, v: _put_s3(dist, None if v[0] == "never" else S3_CREDENTIALS, signing_behavior=v[0],
                                 signing_protocol=v[1], addressing_style=v[2], endpoint_url=v[3]),
         _published_access_control),
]


@pytest.fixture
def api(db: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("agreement", password="agreement-password-1"))
    return client


def compiled() -> dict[str, Any]:
    """The document the control plane would publish now, as an edge receives it (JSON, sealed for it)."""
    stored = crypto.seal_document(compile_document(selectors.distributions_for_compile(), 1))
    return json.loads(json.dumps(crypto.document_for_edge(stored, EDGE_KEY.hex())))


def refused_by_edge(document: dict[str, Any]) -> str | None:
    try:
        parse_document(document, edge_key=EDGE_KEY)
    except ConfigError as exc:
        return str(exc)
    return None


def check_field_error(response: Any, fields: tuple[str, ...]) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:500])
    named = set(response.json())
    assert named & set(fields), (fields, response.json())


def check_agreement(api: APIClient, case: Case, value: Any) -> None:
    """The API refuses `value` naming the field, or the edge takes what the API publishes."""
    body = copy.deepcopy(BASE)
    case.api(body, copy.deepcopy(value))
    with transaction.atomic():
        response = api.post("/api/v1/distributions/", body, format="json")
        if response.status_code != 201:
            check_field_error(response, case.fields)
            transaction.set_rollback(True)
            return
        document = compiled()
        transaction.set_rollback(True)
    assert refused_by_edge(document) is None, (value, refused_by_edge(document))
    dist = _distribution(document, response.json()["id"])
    raw = copy.deepcopy(document)
    case.edge(_distribution(raw, dist["id"]), copy.deepcopy(value))
    refusal = refused_by_edge(raw)
    if refusal is not None:
        # The API took it, so it must have published a normal form, which the edge took above.
        assert case.published(dist) != value, (value, refusal)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_edge_accepts_what_the_api_accepts_and_the_api_refuses_first(api: APIClient, case: Case) -> None:
    for value in case.corpus:
        check_agreement(api, case, value)


@pytest.mark.parametrize("case", [case for case in CASES if not case.generated.is_empty], ids=lambda case: case.name)
@EXAMPLES
@given(data=st.data())
def test_the_same_holds_for_generated_values(api: APIClient, case: Case, data: st.DataObject) -> None:
    check_agreement(api, case, data.draw(case.generated, label=case.name))


TTLS = st.one_of(st.sampled_from([0, 1, 86400, MAX_TTL, MAX_TTL + 1, -1]), st.integers(-2, MAX_TTL + 2))


@EXAMPLES
@given(ttls=st.tuples(TTLS, TTLS, TTLS))
def test_ttls_the_api_accepts_are_ttls_the_edge_accepts(api: APIClient, ttls: tuple[int, int, int]) -> None:
    min_ttl, default_ttl, max_ttl = ttls
    with transaction.atomic():
        policy = api.post("/api/v1/cache-policies/", {"name": "agree", "min_ttl": min_ttl, "default_ttl": default_ttl,
                                                      "max_ttl": max_ttl}, format="json")
        if policy.status_code != 201:
            check_field_error(policy, ("min_ttl", "default_ttl", "max_ttl"))
            transaction.set_rollback(True)
            return
        body = copy.deepcopy(BASE)
        body["cache_behaviors"][1]["cache_policy"] = policy.json()["id"]
        response = api.post("/api/v1/distributions/", body, format="json")
        assert response.status_code == 201, response.json()
        document = compiled()
        transaction.set_rollback(True)
    assert refused_by_edge(document) is None, (ttls, refused_by_edge(document))
    published = _distribution(document, response.json()["id"])["cache_behaviors"][1]["cache_policy"]
    assert (published["min_ttl"], published["default_ttl"], published["max_ttl"]) == ttls


INVALIDATION_PATHS = st.lists(st.one_of(st.sampled_from(["/", "/index.html", "/images/*", "index.html", "/a b", "/a\tb",
                                                         "/" + "a" * 4095, "/" + "a" * 4096, "/ü", "",
                                                         "/a/../b", "/%2e%2e/x", "/a%2Fb", "/%zz", "/a\\b",
                                                         "/%78?v=1"]), TEXT),
                              max_size=3)
TAGS = st.lists(st.one_of(st.sampled_from(["product-1", "a b", " padded ", "", "x" * 1024, "x" * 1025, "t\x7f"]), TEXT),
                max_size=3)


@EXAMPLES
@given(paths=INVALIDATION_PATHS, tags=TAGS)
def test_invalidations_the_api_accepts_are_invalidations_the_edge_accepts(
        api: APIClient, paths: list[str], tags: list[str]) -> None:
    with transaction.atomic():
        created = api.post("/api/v1/distributions/", BASE, format="json")
        assert created.status_code == 201, created.json()
        dist_id = created.json()["id"]
        response = api.post(f"/api/v1/distributions/{dist_id}/invalidations/", {"paths": paths, "tags": tags},
                            format="json")
        if response.status_code != 201:
            check_field_error(response, ("paths", "tags"))
            transaction.set_rollback(True)
            return
        invalidation = Invalidation.objects.get(id=response.json()["id"])
        message = json.loads(json.dumps(services.invalidation_message(invalidation)))
        transaction.set_rollback(True)
    parsed = parse_invalidation(message)  # what the edge's admin API and its link both call
    try:
        parse_invalidation({**message, "paths": paths, "tags": tags})
    except ContractError as exc:
        assert (parsed.paths, parsed.tags) != (paths, tags), exc  # published in a normal form


def test_the_corpus_holds_values_each_side_refuses(api: APIClient) -> None:
    """Not a vacuous agreement: the edge refuses values the corpus draws, and so does the API, by field."""
    with transaction.atomic():
        assert api.post("/api/v1/distributions/", BASE, format="json").status_code == 201
        document = compiled()
        transaction.set_rollback(True)
    samples = {
        "alias": "a_b.example.test", "origin domain name": "origin_1.test", "custom header": ("X-Amz-Date", "x"),
        "origin path": "/a\tb", "path pattern": "/a b", "default root object": "/index.html",
        "custom error response": {"error_code": 404, "response_page_path": "/404.html", "response_code": 100,
                                  "error_caching_min_ttl": 10},
        "failover status codes": [], "method lists": ("GET_HEAD", "GET_HEAD_OPTIONS"),
        "s3 credentials": ("AKID/X", "secret", ""),
        "s3 access control": ("always", "sigv4", "virtual", "http://127.0.0.1:9000"),
    }
    for case in CASES:
        raw = copy.deepcopy(document)
        case.edge(raw["distributions"][0], samples[case.name])
        assert refused_by_edge(raw) is not None, case.name
        body = copy.deepcopy(BASE)
        case.api(body, samples[case.name])
        check_field_error(api.post("/api/v1/distributions/", body, format="json"), case.fields)


def test_a_request_the_control_plane_signs_is_one_the_edge_verifies() -> None:
    token = "edge-token-for-the-agreement"
    body = b'{"id":1}'
    # The control plane signs with the token hash it stores; the edge holds the token itself.
    headers = edge_client.signed_headers(hash_token(token), "POST", "/invalidations", body)
    verifier = Verifier(token)
    check = (headers["X-Edge-Timestamp"], headers["X-Edge-Nonce"], headers["X-Edge-Signature"])
    assert verifier.check(*check, "POST", "/invalidations", body) is None
    assert verifier.check(*check, "POST", "/invalidations", body) == "replayed request"
    tampered = edge_client.signed_headers("00" * 32, "POST", "/invalidations", body)
    assert Verifier(token).check(tampered["X-Edge-Timestamp"], tampered["X-Edge-Nonce"],
                                 tampered["X-Edge-Signature"], "POST", "/invalidations", body) == "bad signature"


def test_a_report_the_edge_writes_is_one_the_control_plane_counts(api: APIClient) -> None:
    created = api.post("/api/v1/distributions/", BASE, format="json")
    assert created.status_code == 201, created.json()
    dist_id = created.json()["id"]
    _, token = services.edge_register(name="edge-agree", pop="agr", url="http://127.0.0.1:9089")
    now = [1_700_000_005.0]
    collector = StatsCollector(clock=lambda: now[0])
    collector.record(dist_id, 200, HIT, 1000, 0.0004)
    collector.record(dist_id, 404, MISS, 50, 0.03)
    collector.record(dist_id, 301, EDGE, 0, 0.0001)
    collector.record(dist_id, CLIENT_ABORT, MISS, 500, 1.0)
    collector.count_origin_bytes(dist_id, 70)
    now[0] += STATS_INTERVAL_SECONDS
    report = collector.rotate()
    assert report is not None
    edge = APIClient()
    edge.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    answer = edge.post("/api/v1/edge/stats", json.loads(json.dumps(report)), format="json")
    assert answer.status_code == 200 and answer.json() == {"accepted": True}, answer.content
    row = TrafficStat.objects.get(distribution_id=dist_id, resolution="minute")
    assert {name: getattr(row, name) for name in COUNTER_NAMES} == {
        "requests": 4, "hits": 1, "misses": 2, "bytes_out": 1550, "bytes_in": 70,
        "status_2xx": 1, "status_3xx": 1, "status_4xx": 1, "status_5xx": 0, "blocked": 0,
        "client_aborts": 1, "lost_estimate": 0}
