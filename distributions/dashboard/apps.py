from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """Its own app so that its templates and static files are found like any app's."""

    name = "distributions.dashboard"
    label = "dashboard"
    verbose_name = "Operator dashboard"
