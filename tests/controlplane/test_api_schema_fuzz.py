"""Schemathesis over the schema the API serves: every operation, as a user and as staff.

No input it generates may reach a 5xx, and every answer must be one the schema describes
(status code, content type, headers and body). The database is seeded so that path
parameters name real objects as often as made-up ones, and the run is bounded and
deterministic (a fixed seed, a few examples per operation).

The schema is loaded when the module is collected, from the schema view itself but without
a database (schemathesis' fixture-loaded schemas do not run under pytest 9);
`test_the_fuzzed_schema_is_the_one_the_api_serves` proves that it is what a token holder gets.
"""

from __future__ import annotations

import json
import socket
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authtoken.models import Token
from rest_framework.test import APIRequestFactory, force_authenticate
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.mutations import OperatorKind
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario, FuzzingPhaseData, TestPhase

from distributions import services

from .conftest import client_for, minimal
from .test_fleet_api import edge_client, report

pytestmark = pytest.mark.django_db

SCHEMA_PATH = "/api/v1/schema/"
CONFIG = schemathesis.Config.from_dict({
    "seed": 9,
    "generation": {"max-examples": 10, "deterministic": True, "database": "none"},
    # No learning from answers: each test rolls its objects back and the next gets new random
    # ids, so what one test saw would be a stale id in the next, and the run would not replay.
    "phases": {"stateful": {"enabled": False},
               "examples": {"extra-data-sources": {"responses": False}},
               "coverage": {"extra-data-sources": {"responses": False}},
               "fuzzing": {"extra-data-sources": {"responses": False}, "error-feedback": {"enabled": False}}},
    # Off: a request the schema allows may still break a rule no JSON Schema can say
    # (min_ttl <= default_ttl, a behavior names an existing origin, a password that matches).
    "checks": {"positive_data_acceptance": {"enabled": False},
               # A stale If-Match is refused before the body is read (RFC 9110, 13.2.1).
               "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "406", "409",
                                                                 "412", "415", "422", "428", "429", "5xx"]},
               # A missing If-Match is 428 Precondition Required, the status made for it (RFC 6585, 3).
               "missing_required_header": {"expected-statuses": ["400", "401", "403", "406", "415", "422", "428"]}},
})


def served_schema() -> dict[str, Any]:
    """What the schema view answers a signed-in user, asked without a database (no user is stored yet)."""
    request = APIRequestFactory().get(SCHEMA_PATH, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    force_authenticate(request, user=User(pk=0, username="schema-reader"))  # a pk: querysets filter by owner
    response = SpectacularAPIView.as_view()(request)
    assert response.status_code == 200, response.data
    return json.loads(response.render().content)


schema = schemathesis.openapi.from_dict(served_schema(), config=CONFIG)
schema.app = get_wsgi_application()

# Filled by `seeded` before each fuzzed test: real values by (the collection named just before
# the parameter, the parameter): ("invalidations", "id") in .../invalidations/{id}/.
SEEDED: dict[tuple[str, str], list[str]] = {}
SCALAR_TYPES = {"string", "integer", "number", "boolean"}
SCALARS = (str, int, float, bool)
# A public key to seed the signed-URL keys and groups with (generated once: RSA generation is slow).
SEED_PUBLIC_KEY = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def seeded_path(case: schemathesis.Case) -> None:
    """About half the fuzzed valid path parameters are swapped for a seeded object, to reach past 404s.

    Which ones follows from the generated value (its CRC-32), so a run replays exactly (a
    hypothesis draw here would need `@schema.given`, which turns the coverage phase off).
    Only fuzzed cases are new objects each time: an example or coverage case is the same
    object for both personas, and would carry the first test's ids, gone in the next.
    """
    meta = case.meta
    if meta is None or meta.phase.name != TestPhase.FUZZING or not case.path_parameters:
        return
    component = meta.components.get(ParameterLocation.PATH)
    if component is not None and component.mode.is_negative:
        return
    segments = case.path.strip("/").split("/")
    for name, value in list(case.path_parameters.items()):
        real = SEEDED.get((segments[segments.index(f"{{{name}}}") - 1], name))
        if real and zlib.crc32(str(value).encode()) % 2 == 0:
            case.path_parameters[name] = real[0]


def declared(pointer: str, node: dict[str, Any]) -> dict[str, Any]:
    """The schema at a JSON pointer into a request body schema, following $refs."""
    for part in [p for p in pointer.split("/") if p]:
        while "$ref" in node:
            node = schema.raw_schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        node = node[part] if part != "type" else node
    while "$ref" in node:
        node = schema.raw_schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def read_as_text(case: schemathesis.Case) -> bool:
    """A scalar given where another scalar type is declared, which the API reads as that type.

    `0` for a boolean is false, `5` for a string is "5", "80" for an integer is 80: DRF's fields
    read scalars as CloudFront's XML API reads element text. Anything else of the wrong type
    (null, a list, an object, for a scalar or the other way round) must still be refused.
    """
    data = case.meta.phase.data if case.meta else None
    if isinstance(data, CoveragePhaseData):
        if data.scenario != CoverageScenario.INCORRECT_TYPE or data.parameter_location != ParameterLocation.BODY:
            return False
        body = case.operation.definition.raw["requestBody"]["content"]["application/json"]["schema"]
        values = [case.body]  # what sits at the pointer: every item, under "items"
        for part in (data.location or "").split("/"):
            if part == "items":
                values = [item for value in values if isinstance(value, list) for item in value]
            elif part not in ("", "properties", "type"):
                values = [value[part] for value in values if isinstance(value, dict) and part in value]
        return (declared(data.location or "", body).get("type") in SCALAR_TYPES and bool(values)
                and all(isinstance(value, SCALARS) for value in values))
    if isinstance(data, FuzzingPhaseData) and data.mutations:
        return all(m.operator == OperatorKind.CHANGE_TYPE and m.parameter_location == ParameterLocation.BODY
                   and m.original_value in SCALAR_TYPES and m.new_value in SCALAR_TYPES for m in data.mutations)
    return False


def empty_means_absent(case: schemathesis.Case) -> bool:
    """`?page=` or `?end=` with nothing after it is the parameter's default, as if it were absent.

    A repeated parameter is read as its last value (Django's `QueryDict.get`).
    """
    data = case.meta.phase.data if case.meta else None
    if isinstance(data, CoveragePhaseData):
        names = [data.parameter] if data.parameter_location == ParameterLocation.QUERY else []
    elif isinstance(data, FuzzingPhaseData) and data.mutations:
        names = [m.parameter for m in data.mutations if m.parameter_location == ParameterLocation.QUERY]
        if len(names) != len(data.mutations):
            return False
    else:
        return False
    read = {name: value[-1] if isinstance(value, list) and value else value for name, value in (case.query or {}).items()}
    return bool(names) and all(read.get(name) == "" for name in names)


@schema.hook
def filter_failure(context: Any, failure: Any, case: schemathesis.Case, response: Any) -> bool:
    """Every failure counts, except an accepted "wrong type" that the API reads as the right one."""
    return not (isinstance(failure, AcceptedNegativeData) and (read_as_text(case) or empty_means_absent(case)))


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound and not listening: the seeded edge refuses at once, and nothing else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def requests_keep_the_test_connection() -> Iterator[None]:
    """The WSGI handler closes the database connection after each request; in a test that is the
    connection holding the test's transaction. Django's test client skips this the same way."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def seeded(alice: User, staff: User, closed_port: int,
           django_capture_on_commit_callbacks: Any) -> Iterator[None]:
    """Real objects of every kind for the fuzzer's path parameters to name."""
    api = client_for(alice)
    with django_capture_on_commit_callbacks(execute=True):
        distribution = api.post("/api/v1/distributions/", minimal(), format="json").json()
    policy = api.post("/api/v1/cache-policies/", {"name": "alice-short", "min_ttl": 0, "default_ttl": 60,
                                                   "max_ttl": 600}, format="json").json()
    request_policy = api.post("/api/v1/origin-request-policies/", {"name": "alice-headers"}, format="json").json()
    public_key = api.post("/api/v1/public-keys/", {"name": "alice-signer", "encoded_key": SEED_PUBLIC_KEY},
                          format="json").json()
    key_group = api.post("/api/v1/key-groups/", {"name": "alice-signers", "public_keys": [public_key["id"]]},
                         format="json").json()
    invalidation = api.post(f"/api/v1/distributions/{distribution['id']}/invalidations/",
                            {"paths": ["/index.html"]}, format="json").json()
    edge, token = services.edge_register(name="edge-fra", pop="fra", url=f"http://127.0.0.1:{closed_port}")
    beat = edge_client(token).post("/api/v1/edge/heartbeat", {"version": 0, "invalidation_seq": 0}, format="json")
    assert beat.status_code == 200, beat.content
    start = int(timezone.now().timestamp()) // 60 * 60 - 120
    stats = edge_client(token).post("/api/v1/edge/stats", report(start, distribution["id"], 10, 7), format="json")
    assert stats.status_code == 200, stats.content
    SEEDED.update({
        ("distributions", "id"): [distribution["id"]],
        ("distributions", "distribution_id"): [distribution["id"]],
        ("invalidations", "id"): [invalidation["id"]],
        ("cache-policies", "id"): [policy["id"]],
        ("origin-request-policies", "id"): [request_policy["id"]],
        ("public-keys", "id"): [public_key["id"]],
        ("key-groups", "id"): [key_group["id"]],
        ("edges", "name"): [edge.name],
        ("config-versions", "version"): ["1"],
    })
    yield
    SEEDED.clear()


def test_the_fuzzed_schema_is_the_one_the_api_serves(alice: User) -> None:
    response = client_for(alice).get(SCHEMA_PATH, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json() == served_schema()


@pytest.mark.usefixtures("seeded")
def test_every_path_parameter_has_a_seeded_object_to_name(staff: User) -> None:
    """Without this the fuzzing below could quietly never get past a 404."""
    reads = [operation for operation in schema.get_all_operations()
             if operation.ok().method.upper() == "GET" and "{" in operation.ok().path]
    assert reads
    for result in reads:
        operation = result.ok()
        segments = operation.path.strip("/").split("/")
        values = {segment[1:-1]: SEEDED[(segments[i - 1], segment[1:-1])][0]
                  for i, segment in enumerate(segments) if segment.startswith("{")}
        response = client_for(staff).get(operation.path.format(**values))
        assert response.status_code == 200, (operation.path, values, response.content)


@pytest.mark.usefixtures("seeded", "requests_keep_the_test_connection")
@pytest.mark.parametrize("persona", ["alice", "root"])
@schema.parametrize()
def test_every_operation_answers_as_the_schema_says(case: schemathesis.Case, persona: str) -> None:
    seeded_path(case)
    token, _ = Token.objects.get_or_create(user=User.objects.get(username=persona))
    case.call_and_validate(headers={"Authorization": f"Token {token.key}"})

