"""The OpenAPI schema documents the errors an operation can answer, not only its successes.

drf-spectacular lists the 2xx answers; a client (and the schemathesis run in the test suite)
also needs to know which 4xx answers to expect and what their bodies look like. Which ones
an operation can give follows from what it takes and who may call it, so they are derived
here once instead of being repeated on every view.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers


class ErrorSerializer(serializers.Serializer):
    """Every refusal that is not about the fields of the request: `{"detail": "..."}`."""

    detail = serializers.CharField()


class ConflictSerializer(ErrorSerializer):
    """A 409 also names what is in the way, when it can (for example `name` or `invalidation_id`)."""


VALIDATION_ERROR = OpenApiResponse(
    response={"type": "object", "additionalProperties": {},
              "description": "Field errors, by field name (a list of messages, or nested errors for an object or "
                             "a list of objects); `non_field_errors` for the request as a whole; `detail` when the "
                             "body cannot be parsed."},
    description="The request is malformed or a field is invalid",
)
ERRORS = {
    "400": VALIDATION_ERROR,
    "401": OpenApiResponse(ErrorSerializer, description="No credentials, or credentials that are not valid"),
    "403": OpenApiResponse(ErrorSerializer, description="The caller may not do this (staff only, a managed "
                                                        "policy, or a session write without its CSRF token)"),
    "404": OpenApiResponse(ErrorSerializer, description="No such object among those the caller can see, or no "
                                                        "such page"),
    "409": OpenApiResponse(ConflictSerializer, description="The change conflicts with the current state"),
    "415": OpenApiResponse(ErrorSerializer, description="A body in a media type the API does not read (send "
                                                        "`Content-Type: application/json`)"),
    "429": OpenApiResponse(ErrorSerializer, description="Too many failed logins for this username or from this "
                                                        "address: every login, with the right password too, is "
                                                        "refused until the time in `Retry-After` has passed"),
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "required": True,
                               "description": "Seconds until a login may be tried again"}}
# Query parameters that answer a bad value with 404 (no such page) rather than 400.
PAGING = {"page"}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, plus the 4xx answers each operation can give."""

    def get_operation(self, path: str, path_regex: str, path_prefix: str, method: str,
                      registry: Any) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for code in self.error_codes(operation):
            if code not in responses:
                responses[code] = self._get_response_for_code(ERRORS[code], code)
        if "429" in responses:
            responses["429"]["headers"] = RETRY_AFTER
        return operation

    def error_codes(self, operation: dict[str, Any]) -> list[str]:
        parameters = operation.get("parameters", [])
        queries = {p["name"] for p in parameters if p["in"] == "query"}
        writes = self.method not in permissions.SAFE_METHODS
        needs_credentials = {} not in operation.get("security", [{}])
        codes = []
        if "requestBody" in operation or queries - PAGING:
            codes.append("400")
        if needs_credentials:
            codes.append("401")
            staff_only = any(issubclass(p, permissions.IsAdminUser) for p in self.view.permission_classes)
            if writes or staff_only:
                codes.append("403")
        if any(p["in"] == "path" for p in parameters) or queries & PAGING:
            codes.append("404")
        if writes and needs_credentials:
            codes.append("409")
        if "requestBody" in operation:
            codes.append("415")
        if getattr(self.view, "login_throttled", False):
            codes.append("429")
        return codes
