from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("distributions", views.DistributionViewSet, basename="distribution")
router.register("cache-policies", views.CachePolicyViewSet, basename="cache-policy")
router.register("origin-request-policies", views.OriginRequestPolicyViewSet, basename="origin-request-policy")
router.register("edges", views.EdgeNodeViewSet, basename="edge")
router.register("config-versions", views.ConfigVersionViewSet, basename="config-version")

invalidations = views.InvalidationViewSet.as_view({"get": "list", "post": "create"})
invalidation = views.InvalidationViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="auth-token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("distributions/<str:distribution_id>/invalidations/", invalidations, name="invalidation-list"),
    path("distributions/<str:distribution_id>/invalidations/<str:id>/", invalidation, name="invalidation-detail"),
    path("", include(router.urls)),
]
