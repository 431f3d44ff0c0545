"""parse_document: validation (every refusal names the field path), host and behavior
matching, resolved targets and precomputed origin URLs."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from cdncontract.schema import SCHEMA_VERSION
from edgeagent.config import ConfigError, EdgeConfig, compile_glob, normalise_host, \
    parse_document

DIST = "E2QWRUHAPOMQZL"


def policy(**over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "id": "658327ea", "name": "CachingOptimized", "min_ttl": 1, "default_ttl": 86400,
        "max_ttl": 31536000,
        "query_strings": {"behavior": "none", "names": []},
        "headers": {"behavior": "none", "names": []},
        "cookies": {"behavior": "none", "names": []},
        "enable_gzip": True, "enable_brotli": True,
    }
    p.update(over)
    return p


def behavior(pattern: str = "*", target: str = "web", **over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "path_pattern": pattern, "target": target, "viewer_protocol_policy": "allow-all",
        "allowed_methods": ["GET", "HEAD"], "cached_methods": ["GET", "HEAD"],
        "compress": True, "cache_policy": policy(), "origin_request_policy": None,
    }
    b.update(over)
    return b


def origin(oid: str = "web", **over: Any) -> dict[str, Any]:
    o: dict[str, Any] = {
        "id": oid, "kind": "custom", "domain_name": "127.0.0.1", "origin_path": "",
        "http_port": 8090, "https_port": 443, "protocol_policy": "http-only",
        "connect_timeout": 10, "read_timeout": 30, "connection_attempts": 3,
        "custom_headers": [], "s3": None,
    }
    o.update(over)
    return o


def distribution(did: str = DIST, **over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": did, "domain_name": f"{did.lower()}.cdn.localhost",
        "aliases": ["www.example.test"], "default_root_object": "index.html",
        "origins": [origin()], "origin_groups": [],
        "cache_behaviors": [behavior()], "custom_error_responses": [],
    }
    d.update(over)
    return d


def document(*dists: dict[str, Any], version: int = 7) -> dict[str, Any]:
    return {"schema_version": 1, "version": version,
            "distributions": list(dists) if dists else [distribution()]}


def refused(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_document(doc)
    return str(info.value)


def mutated(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = document(distribution(
        origins=[origin(), origin("backup")],
        origin_groups=[{"id": "grp", "primary": "web", "secondary": "backup",
                        "failover_status_codes": [500, 502]}],
        cache_behaviors=[behavior("/api/*", "grp"), behavior()],
        custom_error_responses=[{"error_code": 404, "response_page_path": "/404.html",
                                 "response_code": 404, "error_caching_min_ttl": 10}],
    ))
    change(doc)
    return doc


# ---- Accepting ----


def test_it_accepts_the_documented_example_shape() -> None:
    cfg = parse_document(mutated(lambda d: None))
    assert isinstance(cfg, EdgeConfig)
    assert cfg.version == 7
    dist = cfg.distributions[DIST]
    assert [b.path_pattern for b in dist.behaviors] == ["/api/*", "*"]
    assert dist.root_path == "/index.html"
    assert dist.error_responses[404].response_page_path == "/404.html"


def test_it_keeps_the_raw_document() -> None:
    doc = document()
    assert parse_document(doc).document is doc


def test_it_accepts_an_empty_distribution_list() -> None:
    cfg = parse_document(document(*[]) | {"distributions": []})
    assert cfg.distributions == {}
    assert cfg.find_distribution("anything.test") is None


def test_it_resolves_an_origin_group_target_to_primary_then_secondary() -> None:
    dist = parse_document(mutated(lambda d: None)).distributions[DIST]
    api = dist.match_behavior("/api/x")
    assert [o.id for o in dist.targets(api)] == ["web", "backup"]
    assert api.failover_status_codes == frozenset({500, 502})
    default = dist.match_behavior("/x")
    assert [o.id for o in dist.targets(default)] == ["web"]
    assert default.failover_status_codes == frozenset()


def test_it_normalises_policy_name_lists_to_sets() -> None:
    doc = document(distribution(cache_behaviors=[behavior(cache_policy=policy(
        query_strings={"behavior": "allowlist", "names": ["b", "a"]}))]))
    qs = parse_document(doc).distributions[DIST].behaviors[0].cache_policy.query_strings
    assert qs.names == ("a", "b")
    assert qs.selects("a") and not qs.selects("c")


def test_it_precomputes_origin_urls_per_protocol_policy() -> None:
    doc = document(distribution(origins=[
        origin("a", protocol_policy="match-viewer", origin_path="/v1", http_port=8090,
               https_port=443),
        origin("b", domain_name="::1", protocol_policy="https-only", https_port=8443),
        origin("c", protocol_policy="http-only", http_port=80),
        origin("s", kind="s3", s3={"bucket": "assets", "region": "eu-central-1",
                                   "endpoint_url": "http://127.0.0.1:9000"},
               origin_path="/site"),
    ], cache_behaviors=[behavior(target="a")]))
    origins = parse_document(doc).distributions[DIST].origins
    assert origins["a"].base_url("http") == "http://127.0.0.1:8090/v1"
    assert origins["a"].base_url("https") == "https://127.0.0.1/v1"
    assert origins["b"].base_url("http") == "https://[::1]:8443"
    assert origins["c"].base_url("https") == "http://127.0.0.1"
    assert origins["s"].base_url("https") == "http://127.0.0.1:9000/assets/site"
    assert origins["s"].scheme("https") == "http"


def test_it_keeps_custom_headers_in_order() -> None:
    doc = document(distribution(origins=[origin(custom_headers=[
        {"name": "X-Secret", "value": "1"}, {"name": "X-Other", "value": "2"}])]))
    o = parse_document(doc).distributions[DIST].origins["web"]
    assert o.custom_headers == (("X-Secret", "1"), ("X-Other", "2"))
    assert o.custom_header_names == frozenset({"x-secret", "x-other"})


def test_it_tolerates_unknown_keys() -> None:
    doc = document()
    doc["future"] = True
    doc["distributions"][0]["future"] = 1
    assert parse_document(doc).version == 7


# ---- Refusing, naming the field path ----


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("version"), "version: is required"),
        (lambda d: d.update(version="7"), "version: must be an integer"),
        (lambda d: d.update(version=True), "version: must be an integer"),
        (lambda d: d.update(version=0), "version: must be between"),
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1),
         f"schema_version: unsupported schema version {SCHEMA_VERSION + 1}"),
        (lambda d: d.update(distributions={}), "distributions: must be a list"),
        (lambda d: d["distributions"].append(1), "distributions[1]: must be an object"),
        (lambda d: d["distributions"][0].update(id="e2qwruhapomqzl"), "distributions[0].id:"),
        (lambda d: d["distributions"][0].pop("aliases"), "distributions[0].aliases: is required"),
        (lambda d: d["distributions"][0].update(aliases=["WWW.x.test"]),
         "distributions[0].aliases[0]: must be lowercase"),
        (lambda d: d["distributions"][0].update(aliases=["a b"]),
         "distributions[0].aliases[0]: domain name 'a b' is not a valid host name"),
        (lambda d: d["distributions"][0].update(domain_name="*.x.test"),
         "distributions[0].domain_name: domain name '*.x.test' may not be a wildcard"),
        (lambda d: d["distributions"][0].update(default_root_object="/index.html"),
         "distributions[0].default_root_object:"),
        (lambda d: d["distributions"][0].update(origins=[]),
         "distributions[0].origins: must contain at least one origin"),
        (lambda d: d["distributions"][0]["origins"][0].update(kind="ftp"),
         "distributions[0].origins[0].kind: must be one of custom, s3 (got 'ftp')"),
        (lambda d: d["distributions"][0]["origins"][0].update(http_port=0),
         "distributions[0].origins[0].http_port: must be between 1 and 65535"),
        (lambda d: d["distributions"][0]["origins"][0].update(https_port=70000),
         "distributions[0].origins[0].https_port: must be between 1 and 65535"),
        (lambda d: d["distributions"][0]["origins"][0].update(https_port="443"),
         "distributions[0].origins[0].https_port: must be an integer"),
        (lambda d: d["distributions"][0]["origins"][0].update(connect_timeout=11),
         "distributions[0].origins[0].connect_timeout: must be between 1 and 10"),
        (lambda d: d["distributions"][0]["origins"][0].update(read_timeout=61),
         "distributions[0].origins[0].read_timeout: must be between 1 and 60"),
        (lambda d: d["distributions"][0]["origins"][0].update(connection_attempts=4),
         "distributions[0].origins[0].connection_attempts: must be between 1 and 3"),
        (lambda d: d["distributions"][0]["origins"][0].update(protocol_policy="any"),
         "distributions[0].origins[0].protocol_policy: must be one of"),
        (lambda d: d["distributions"][0]["origins"][0].update(origin_path="/v1/"),
         "distributions[0].origins[0].origin_path:"),
        (lambda d: d["distributions"][0]["origins"][0].update(origin_path="v1"),
         "distributions[0].origins[0].origin_path:"),
        (lambda d: d["distributions"][0]["origins"][0].update(id="bad id"),
         "distributions[0].origins[0].id:"),
        (lambda d: d["distributions"][0]["origins"][1].update(id="web"),
         "distributions[0].origins[1].id: duplicate origin id web"),
        (lambda d: d["distributions"][0]["origins"][0].update(
            custom_headers=[{"name": "Connection", "value": "x"}]),
         "distributions[0].origins[0].custom_headers[0].name: 'Connection' is a hop-by-hop or reserved header"),
        (lambda d: d["distributions"][0]["origins"][0].update(
            custom_headers=[{"name": "Bad Name", "value": "x"}]),
         "distributions[0].origins[0].custom_headers[0].name: 'Bad Name' is not a valid header name"),
        (lambda d: d["distributions"][0]["origins"][0].update(
            custom_headers=[{"name": "X-A", "value": "a\r\nb"}]),
         "distributions[0].origins[0].custom_headers[0].value: the value of header 'X-A' must be a string "
         "of at most 1783 characters without line breaks"),
        (lambda d: d["distributions"][0]["origins"][0].update(
            custom_headers=[{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]),
         "distributions[0].origins[0].custom_headers[1].name: header 'x-a' is listed twice"),
        (lambda d: d["distributions"][0]["origins"][0].update(
            custom_headers=[{"name": "X-A"}]),
         "distributions[0].origins[0].custom_headers[0].value: is required"),
        (lambda d: d["distributions"][0]["origins"][0].update(
            s3={"bucket": "b", "region": "r", "endpoint_url": "http://x"}),
         "distributions[0].origins[0].s3: must be null for a custom origin"),
        (lambda d: d["distributions"][0]["origins"][0].update(kind="s3"),
         "distributions[0].origins[0].s3: must be an object"),
        (lambda d: d["distributions"][0]["origins"][0].update(
            kind="s3", s3={"bucket": "b", "region": "r", "endpoint_url": "http://x/"}),
         "distributions[0].origins[0].s3.endpoint_url:"),
        (lambda d: d["distributions"][0]["origin_groups"][0].update(secondary="nope"),
         "distributions[0].origin_groups[0].secondary: unknown origin 'nope'"),
        (lambda d: d["distributions"][0]["origin_groups"][0].update(id="web"),
         "distributions[0].origin_groups[0].id: duplicate origin or group id web"),
        (lambda d: d["distributions"][0]["origin_groups"][0].update(secondary="web"),
         "distributions[0].origin_groups[0].secondary: must differ from primary"),
        (lambda d: d["distributions"][0]["origin_groups"][0].update(
            failover_status_codes=[501]),
         "distributions[0].origin_groups[0].failover_status_codes[0]: 501 is not a failover status code"),
        (lambda d: d["distributions"][0]["cache_behaviors"][0].update(target="nope"),
         "distributions[0].cache_behaviors[0].target: unknown origin or origin group 'nope'"),
        (lambda d: d["distributions"][0]["cache_behaviors"].reverse(),
         "distributions[0].cache_behaviors[0].path_pattern: only the last"),
        (lambda d: d["distributions"][0]["cache_behaviors"].pop(),
         "distributions[0].cache_behaviors[0].path_pattern: the last behavior must have "
         "pattern '*'"),
        (lambda d: d["distributions"][0].update(cache_behaviors=[]),
         "distributions[0].cache_behaviors: must contain the default behavior"),
        (lambda d: d["distributions"][0]["cache_behaviors"][0].update(path_pattern="/" * 256),
         "distributions[0].cache_behaviors[0].path_pattern: path_pattern must be at most 255 characters"),
        (lambda d: d["distributions"][0]["cache_behaviors"][0].update(path_pattern="/a b"),
         "distributions[0].cache_behaviors[0].path_pattern: path_pattern may not contain spaces"),
        (lambda d: d["distributions"][0]["cache_behaviors"][0].update(
            viewer_protocol_policy="http-only"),
         "distributions[0].cache_behaviors[0].viewer_protocol_policy: must be one of"),
        (lambda d: d["distributions"][0]["cache_behaviors"][0].update(
            allowed_methods=["GET"]),
         "distributions[0].cache_behaviors[0].allowed_methods: allowed_methods must be one of"),
        (lambda d: d["distributions"][0]["cache_behaviors"][0].update(
            allowed_methods=["HEAD", "GET"]),
         "distributions[0].cache_behaviors[0].allowed_methods: allowed_methods must be one of"),
        (lambda d: d["distributions"][0]["cache_behaviors"][0].update(
            cached_methods=["GET", "HEAD", "OPTIONS"]),
         "distributions[0].cache_behaviors[0].cached_methods: OPTIONS can only be cached when "
         "allowed_methods includes OPTIONS"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1].update(compress="yes"),
         "distributions[0].cache_behaviors[1].compress: must be a boolean"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1]["cache_policy"].update(
            min_ttl=90000),
         "distributions[0].cache_behaviors[1].cache_policy.min_ttl: min_ttl must not exceed "
         "default_ttl"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1]["cache_policy"].update(
            max_ttl=10),
         "distributions[0].cache_behaviors[1].cache_policy.default_ttl: default_ttl must not "
         "exceed max_ttl"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1]["cache_policy"].update(
            max_ttl=3153600001),
         "distributions[0].cache_behaviors[1].cache_policy.max_ttl: must be between"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1]["cache_policy"].update(
            min_ttl=-1),
         "distributions[0].cache_behaviors[1].cache_policy.min_ttl: must be between"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1]["cache_policy"].update(
            headers={"behavior": "all", "names": []}),
         "distributions[0].cache_behaviors[1].cache_policy.headers.behavior: must be one of "
         "none, allowlist"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1]["cache_policy"].update(
            headers={"behavior": "allowlist", "names": ["X-Upper"]}),
         "distributions[0].cache_behaviors[1].cache_policy.headers.names[0]: must be lowercase"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1]["cache_policy"].update(
            cookies={"behavior": "allowlist", "names": ["a", "a"]}),
         "distributions[0].cache_behaviors[1].cache_policy.cookies.names: must be unique"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1]["cache_policy"].update(
            query_strings={"behavior": "none", "names": ["a"]}),
         "distributions[0].cache_behaviors[1].cache_policy.query_strings.names: must be "
         "empty when behavior is none"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1]["cache_policy"].pop(
            "enable_gzip"),
         "distributions[0].cache_behaviors[1].cache_policy.enable_gzip: is required"),
        (lambda d: d["distributions"][0]["cache_behaviors"][1].update(
            origin_request_policy={"id": "x", "name": "y",
                                   "query_strings": {"behavior": "some", "names": []},
                                   "headers": {"behavior": "all", "names": []},
                                   "cookies": {"behavior": "all", "names": []}}),
         "distributions[0].cache_behaviors[1].origin_request_policy.query_strings.behavior: "
         "must be one of"),
        (lambda d: d["distributions"][0]["custom_error_responses"][0].update(error_code=418),
         "distributions[0].custom_error_responses[0].error_code: error_code 418 is not one of"),
        (lambda d: d["distributions"][0]["custom_error_responses"][0].update(
            response_page_path="404.html"),
         "distributions[0].custom_error_responses[0].response_page_path:"),
        (lambda d: d["distributions"][0]["custom_error_responses"][0].update(
            response_code="404"),
         "distributions[0].custom_error_responses[0].response_code: must be an integer"),
        (lambda d: d["distributions"][0]["custom_error_responses"].append(
            dict(d["distributions"][0]["custom_error_responses"][0])),
         "distributions[0].custom_error_responses[1].error_code: duplicate error code 404"),
    ],
)
def test_it_refuses_a_malformed_document_naming_the_field(
        change: Callable[[dict[str, Any]], None], message: str) -> None:
    assert refused(mutated(change)).startswith(message)


def test_it_refuses_a_document_that_is_not_an_object() -> None:
    assert refused([]) == "document: must be an object"  # type: ignore[arg-type]


def test_it_refuses_duplicate_distribution_ids() -> None:
    assert refused(document(distribution(), distribution(aliases=[]))).startswith(
        "distributions[1].id: duplicate distribution id")


def test_it_refuses_a_host_name_used_by_two_distributions() -> None:
    other = distribution("E0000000000001", aliases=["www.example.test"])
    assert refused(document(distribution(), other)).startswith(
        "distributions[1].aliases[0]: host name www.example.test is already used by "
        "E2QWRUHAPOMQZL")


def test_it_refuses_the_same_wildcard_alias_twice() -> None:
    a = distribution(aliases=["*.example.test"])
    b = distribution("E0000000000001", aliases=["*.example.test"])
    assert refused(document(a, b)).startswith("distributions[1].aliases[0]:")


def test_config_error_exposes_the_path_separately() -> None:
    with pytest.raises(ConfigError) as info:
        parse_document(mutated(lambda d: d["distributions"][0]["origins"][0].update(
            http_port=0)))
    assert info.value.path == "distributions[0].origins[0].http_port"
    assert isinstance(info.value, ValueError)


def test_it_never_mutates_the_document_it_validates() -> None:
    doc = mutated(lambda d: None)
    before = copy.deepcopy(doc)
    parse_document(doc)
    assert doc == before


# ---- Host matching ----


def hosts_config() -> EdgeConfig:
    return parse_document(document(
        distribution(aliases=["*.example.test", "www.example.test"]),
        distribution("E0000000000001", aliases=["*.deep.example.test", "deep.example.test"]),
    ))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("e2qwruhapomqzl.cdn.localhost", DIST),
        ("E2QWRUHAPOMQZL.CDN.LOCALHOST", DIST),
        ("e2qwruhapomqzl.cdn.localhost:8080", DIST),
        ("e2qwruhapomqzl.cdn.localhost.", DIST),
        ("e2qwruhapomqzl.cdn.localhost.:8080", DIST),
        ("www.example.test", DIST),
        ("a.example.test", DIST),
        ("a.b.example.test", DIST),
        ("deep.example.test", "E0000000000001"),
        ("x.deep.example.test", "E0000000000001"),
        ("x.y.deep.example.test", "E0000000000001"),
        ("example.test", None),
        ("other.test", None),
        ("", None),
        ("[::1]:8080", None),
    ],
)
def test_it_finds_the_distribution_by_host(host: str, expected: str | None) -> None:
    found = hosts_config().find_distribution(host)
    assert (found.id if found else None) == expected


def test_an_exact_name_wins_over_a_wildcard_matching_it() -> None:
    cfg = parse_document(document(
        distribution(aliases=["*.example.test"]),
        distribution("E0000000000001", aliases=["api.example.test"]),
    ))
    found = cfg.find_distribution("api.example.test")
    assert found is not None and found.id == "E0000000000001"
    other = cfg.find_distribution("web.example.test")
    assert other is not None and other.id == DIST


def test_repeated_host_lookups_give_the_same_answer_after_memo_fills() -> None:
    cfg = hosts_config()
    for i in range(5000):
        cfg.find_distribution(f"h{i}.nowhere.test")
    found = cfg.find_distribution("www.example.test")
    assert found is not None and found.id == DIST


@pytest.mark.parametrize(
    ("raw", "name"),
    [("Example.COM", "example.com"), ("example.com:80", "example.com"),
     ("example.com.", "example.com"), ("[::1]:8080", "[::1]"), ("  a.test ", "a.test")],
)
def test_host_normalisation_strips_port_case_and_trailing_dot(raw: str, name: str) -> None:
    assert normalise_host(raw) == name


# ---- Behavior matching (CloudFront globs) ----


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*", "/anything/at/all", True),
        ("/images/*", "/images/a.png", True),
        ("/images/*", "/images/sub/dir/a.png", True),
        ("images/*", "/images/a.png", True),
        ("/images/*", "/Images/a.png", False),
        ("/images/*", "/images", False),
        ("/images/*.jpg", "/images/a/b.jpg", True),
        ("/images/*.jpg", "/images/a.jpeg", False),
        ("*.jpg", "/deep/path/x.jpg", True),
        ("*.jpg", "/x.JPG", False),
        ("/file?.txt", "/file1.txt", True),
        ("/file?.txt", "/file12.txt", False),
        ("/file?.txt", "/file.txt", False),
        ("/a?c/*", "/a/c/x", True),
        ("/exact.html", "/exact.html", True),
        ("/exact.html", "/exact.html/x", False),
        ("/a.b", "/axb", False),
        ("/a+(b)[c]", "/a+(b)[c]", True),
        ("/*/index.html", "/x/y/index.html", True),
        ("/*/index.html", "/index.html", False),
        ("*.js?", "/app.jsx", True),
        ("*.js?", "/app.js", False),
        ("/caf\u00e9/*", "/caf\u00e9/x", True),
    ],
)
def test_path_patterns_follow_cloudfront_glob_rules(pattern: str, path: str,
                                                    matches: bool) -> None:
    assert compile_glob(pattern)(path) is matches


def test_the_first_matching_behavior_wins_and_star_is_the_fallback() -> None:
    doc = document(distribution(cache_behaviors=[
        behavior("/api/v1/*"), behavior("/api/*"), behavior("*.css"), behavior("*"),
    ]))
    dist = parse_document(doc).distributions[DIST]
    assert dist.match_behavior("/api/v1/users").index == 0
    assert dist.match_behavior("/api/v2/users").index == 1
    assert dist.match_behavior("/api/site.css").index == 1
    assert dist.match_behavior("/static/site.css").index == 2
    assert dist.match_behavior("/static/site.js").index == 3


def test_a_behavior_knows_its_allow_header_and_method_sets() -> None:
    doc = document(distribution(cache_behaviors=[behavior(
        allowed_methods=["GET", "HEAD", "OPTIONS"], cached_methods=["GET", "HEAD", "OPTIONS"])]))
    b = parse_document(doc).distributions[DIST].behaviors[0]
    assert b.allow_header == "GET, HEAD, OPTIONS"
    assert "OPTIONS" in b.cached_methods and "POST" not in b.allowed_methods
