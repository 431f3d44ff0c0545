from __future__ import annotations

from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from . import edge_views, request_views, views


class DistributionIdConverter:
    """Only what can be a distribution id reaches a view; anything else (a NUL byte, which
    PostgreSQL cannot even compare) is the API's JSON 404 for a URL that matches no route."""

    regex = views.DistributionViewSet.lookup_value_regex

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class InvalidationIdConverter(DistributionIdConverter):
    regex = "I[A-Z0-9]{13}"  # models.new_invalidation_id


register_converter(DistributionIdConverter, "distribution_id")
register_converter(InvalidationIdConverter, "invalidation_id")

router = DefaultRouter()
router.register("distributions", views.DistributionViewSet, basename="distribution")
router.register("cache-policies", views.CachePolicyViewSet, basename="cache-policy")
router.register("origin-request-policies", views.OriginRequestPolicyViewSet, basename="origin-request-policy")
router.register("public-keys", views.PublicKeyViewSet, basename="public-key")
router.register("key-groups", views.KeyGroupViewSet, basename="key-group")
router.register("edges", views.EdgeNodeViewSet, basename="edge")
router.register("config-versions", views.ConfigVersionViewSet, basename="config-version")
router.register("stats", views.StatsViewSet, basename="stats")

invalidations = views.InvalidationViewSet.as_view({"get": "list", "post": "create"})
invalidation = views.InvalidationViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    path("auth/token/", views.AuthTokenView.as_view(), name="auth-token"),
    path("auth/", include("rest_framework.urls")),
    path("edge/heartbeat", edge_views.HeartbeatView.as_view(), name="edge-heartbeat"),
    path("edge/config", edge_views.ConfigView.as_view(), name="edge-config"),
    path("edge/acks", edge_views.AckView.as_view(), name="edge-acks"),
    path("edge/stats", edge_views.StatsView.as_view(), name="edge-stats"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", views.DocsView.as_view(url_name="schema"), name="docs"),
    path("distributions/<distribution_id:distribution_id>/invalidations/", invalidations, name="invalidation-list"),
    path("distributions/<distribution_id:distribution_id>/requests/", request_views.RecentRequestsView.as_view(),
         name="distribution-requests"),
    path("distributions/<distribution_id:distribution_id>/invalidations/<invalidation_id:id>/", invalidation,
         name="invalidation-detail"),
    path("", include(router.urls)),
]
