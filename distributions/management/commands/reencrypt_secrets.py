from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from distributions import services


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret (S3 credentials, in origins and in stored config versions) with the "
            "first key of CDN_SECRET_KEYS, so that older keys can be dropped from it.")

    def handle(self, *args: Any, **options: Any) -> None:
        origins, versions = services.secrets_reencrypt()
        self.stdout.write(f"re-encrypted the secrets of {origins} origin(s) and {versions} config version(s) "
                          "with the first key of CDN_SECRET_KEYS")
