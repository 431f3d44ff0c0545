from __future__ import annotations

from django.apps import AppConfig


class DistributionsConfig(AppConfig):
    name = "distributions"
    verbose_name = "CDN distributions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, services, tasks  # noqa: F401 (checks registers itself)

        services.version_published_hooks.append(lambda version: tasks.push_config.delay(version.version))
        services.invalidation_created_hooks.append(lambda invalidation: tasks.push_invalidation.delay(invalidation.seq))
