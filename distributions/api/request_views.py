"""A distribution's recent requests, tailed from every healthy edge's access log."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from django.shortcuts import get_object_or_404
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdncontract.limits import MAX_TAIL_RECORDS

from .. import edge_client, selectors
from ..models import EdgeNode

DEFAULT_LIMIT = 100


class RecentRequestsView(APIView):
    """GET /api/v1/distributions/{id}/requests/?limit=N: a bounded, merged sample, newest last."""

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description=f"1-{MAX_TAIL_RECORDS}, default {DEFAULT_LIMIT}")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, distribution_id: str) -> Response:
        distribution = get_object_or_404(selectors.distribution_list(request.user), pk=distribution_id)
        raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_TAIL_RECORDS:
            raise serializers.ValidationError({"limit": f"must be an integer from 1 to {MAX_TAIL_RECORDS}"})
        edges = EdgeNode.objects.filter(healthy=True).order_by("name")
        targets = [edge_client.Target(edge.name, edge.url, edge.token_hash) for edge in edges]
        return Response(edge_client.recent_requests(targets, distribution.pk, int(raw)))
