from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

handler404 = "distributions.api.errors.page_not_found"

urlpatterns = [
    path("", RedirectView.as_view(url="/dashboard/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("distributions.api.urls")),
    path("dashboard/", include("distributions.dashboard.urls")),
]
