"""The API edges call (docs/edge-config.md): the edge's token is its identity."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdncontract.limits import CLOCK_SKEW_SECONDS, MAX_DB_INTEGER
from cdncontract.signed_urls import PUBLIC_KEY_ID
from cdncontract.stats import (COUNTER_NAMES, LATENCY_BUCKETS, MAX_SIGNING_KEYS, MAX_STATS_COUNTER, SIGNED_REQUESTS,
                               STATS_INTERVALS)

from .. import crypto, selectors, services
from ..models import EdgeNode
from .parsers import BoundedJSONParser


class EdgeTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, EdgeNode] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("expected 'Authorization: Bearer <edge token>'")
        edge = services.edge_for_token(header[1])
        if edge is None:
            raise exceptions.AuthenticationFailed("unknown edge token")
        return (None, edge)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class IsEdge(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, EdgeNode)


class EdgeView(APIView):
    authentication_classes = [EdgeTokenAuthentication]
    permission_classes = [IsEdge]
    parser_classes = [BoundedJSONParser]
    schema = None  # machine-to-machine; documented in docs/edge-config.md


class HeartbeatSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=0, max_value=MAX_DB_INTEGER)
    invalidation_seq = serializers.IntegerField(min_value=0, max_value=MAX_DB_INTEGER, default=0)
    error = serializers.CharField(max_length=2000, allow_blank=True, required=False, trim_whitespace=False)


class HeartbeatView(EdgeView):
    def post(self, request: Request) -> Response:
        data = HeartbeatSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(services.edge_heartbeat(edge=request.auth, **data.validated_data))


class ConfigView(EdgeView):
    def get(self, request: Request) -> Response:
        latest = selectors.config_version_latest()
        if latest is None:
            return Response({"detail": "no config version has been published yet"}, status=status.HTTP_404_NOT_FOUND)
        return Response(crypto.document_for_edge(latest.document, request.auth.token_hash))


class AckSerializer(serializers.Serializer):
    invalidations = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_DB_INTEGER),
                                          max_length=10000)


class AckView(EdgeView):
    def post(self, request: Request) -> Response:
        data = AckSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"acknowledged": services.invalidation_ack(edge=request.auth, ids=data.validated_data["invalidations"])})


def _counter(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=MAX_STATS_COUNTER, **kwargs)


class DistributionCountersSerializer(serializers.Serializer):
    """One distribution's counters (cdncontract.stats.COUNTER_NAMES); only `requests` is required."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields: dict[str, serializers.Field] = {
            name: _counter() if name == "requests" else _counter(default=0) for name in COUNTER_NAMES}
        fields["latency_ms_buckets"] = serializers.ListField(child=_counter(), max_length=LATENCY_BUCKETS,
                                                             default=list)
        fields[SIGNED_REQUESTS] = serializers.DictField(child=_counter(), required=False, default=dict)
        return fields

    def validate_signed_requests(self, value: dict[str, int]) -> dict[str, int]:
        if len(value) > MAX_SIGNING_KEYS:
            raise serializers.ValidationError(f"at most {MAX_SIGNING_KEYS} public keys")
        for key_id in value:
            if not PUBLIC_KEY_ID.fullmatch(key_id):
                raise serializers.ValidationError(f"{key_id[:32]!r} is not a public key id")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["hits"] + attrs["misses"] > attrs["requests"]:
            raise serializers.ValidationError({"hits": "hits and misses together cannot be more than requests"})
        return attrs


class StatsReportSerializer(serializers.Serializer):
    """One interval of one edge (docs/edge-config.md), checked against the contract.

    Only the edges' own interval length is taken and the start must be aligned to it, so the
    idempotency key (edge, interval_start) covers each window once: one 10 s window re-sent
    as shorter reports would otherwise be counted again. A start in the future (beyond the
    clock skew the fleet allows) cannot come from a closed interval.
    """

    interval_start = serializers.IntegerField(min_value=0)
    interval_seconds = serializers.IntegerField()
    distributions = serializers.DictField(child=DistributionCountersSerializer())

    def validate_interval_seconds(self, value: int) -> int:
        if value not in STATS_INTERVALS:
            allowed = ", ".join(str(seconds) for seconds in sorted(STATS_INTERVALS))
            raise serializers.ValidationError(f"must be one of the edges' reporting intervals: {allowed}")
        return value

    def validate_interval_start(self, value: int) -> int:
        if value > timezone.now().timestamp() + CLOCK_SKEW_SECONDS:
            raise serializers.ValidationError("is in the future: a report covers an interval that has closed")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["interval_start"] % attrs["interval_seconds"]:
            raise serializers.ValidationError({"interval_start": "must be a multiple of interval_seconds"})
        return attrs


class StatsView(EdgeView):
    def post(self, request: Request) -> Response:
        data = StatsReportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        accepted = services.stats_ingest(edge=request.auth, interval_start=data.validated_data["interval_start"],
                                         distributions=data.validated_data["distributions"])
        return Response({"accepted": accepted})
