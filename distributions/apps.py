from __future__ import annotations

from django.apps import AppConfig


class DistributionsConfig(AppConfig):
    name = "distributions"
    verbose_name = "CDN distributions"
    default_auto_field = "django.db.models.BigAutoField"
