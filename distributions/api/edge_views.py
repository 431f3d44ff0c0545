"""The API edges call (docs/edge-config.md): the edge's token is its identity."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..models import EdgeNode


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
    schema = None  # machine-to-machine; documented in docs/edge-config.md


class HeartbeatSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=0)
    invalidation_seq = serializers.IntegerField(min_value=0, default=0)
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
        return Response(latest.document)


class AckSerializer(serializers.Serializer):
    invalidations = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=10000)


class AckView(EdgeView):
    def post(self, request: Request) -> Response:
        data = AckSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"acknowledged": services.invalidation_ack(edge=request.auth, ids=data.validated_data["invalidations"])})


class DistributionCountersSerializer(serializers.Serializer):
    requests = serializers.IntegerField(min_value=0)
    hits = serializers.IntegerField(min_value=0, default=0)
    misses = serializers.IntegerField(min_value=0, default=0)
    bytes_out = serializers.IntegerField(min_value=0, default=0)
    bytes_in = serializers.IntegerField(min_value=0, default=0)
    status_2xx = serializers.IntegerField(min_value=0, default=0)
    status_3xx = serializers.IntegerField(min_value=0, default=0)
    status_4xx = serializers.IntegerField(min_value=0, default=0)
    status_5xx = serializers.IntegerField(min_value=0, default=0)
    blocked = serializers.IntegerField(min_value=0, default=0)
    latency_ms_buckets = serializers.ListField(child=serializers.IntegerField(min_value=0), max_length=14, default=list)


class StatsReportSerializer(serializers.Serializer):
    interval_start = serializers.IntegerField(min_value=0)
    interval_seconds = serializers.IntegerField(min_value=1, max_value=60)
    distributions = serializers.DictField(child=DistributionCountersSerializer())

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
