from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from ..api import urls as api_urls  # noqa: F401  (registers the distribution_id converter)
from . import views

app_name = "dashboard"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="dashboard/login.html",
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="dashboard:login"), name="logout"),
    path("", views.overview, name="overview"),
    path("stats.json", views.stats_json, name="stats-json"),
    path("edges/", views.edge_list, name="edge-list"),
    path("edges/<str:name>/", views.edge_detail, name="edge"),
    path("policies/", views.policy_list, name="policy-list"),
    path("policies/cache/new/", views.cache_policy_create, name="cache-policy-create"),
    path("distributions/", views.distribution_list, name="distribution-list"),
    path("distributions/new/", views.distribution_create, name="distribution-create"),
    path("distributions/<distribution_id:distribution_id>/", views.distribution_detail, name="distribution"),
    path("distributions/<distribution_id:distribution_id>/edit/", views.distribution_edit, name="distribution-edit"),
    path("distributions/<distribution_id:distribution_id>/status/", views.distribution_status, name="distribution-status"),
    path("distributions/<distribution_id:distribution_id>/invalidations/create/", views.invalidation_create,
         name="invalidation-create"),
    path("distributions/<distribution_id:distribution_id>/rollback/", views.distribution_rollback, name="rollback"),
    path("distributions/<distribution_id:distribution_id>/<str:tab>/", views.distribution_detail,
         name="distribution-tab"),
]
