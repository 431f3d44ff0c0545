"""The second demo distribution of `make run`: a private S3 bucket (moto) behind a signed origin.

moto keeps its state in memory, so every run seeds a new bucket user and this command gives
the distribution that run's key. The key comes in the environment (CDN_DEMO_S3_ACCESS_KEY_ID,
CDN_DEMO_S3_SECRET_ACCESS_KEY), never on the command line, where ps would show it, and is
stored encrypted like any origin credential. Prints the distribution's id and domain as JSON.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from distributions import services
from distributions.models import CachePolicy, Distribution, Origin

S3_DEMO_COMMENT = "private S3 bucket demo (make run)"
S3_DEMO_ALIAS = "private.localhost"


class Command(BaseCommand):
    help = "Create or update the signed S3 demo distribution; print its id and domain as JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--endpoint", required=True, help="the S3 endpoint URL, e.g. http://127.0.0.1:8092")
        parser.add_argument("--bucket", required=True)
        parser.add_argument("--region", default="us-east-1")
        parser.add_argument("--owner", default="admin")

    def handle(self, *args: Any, endpoint: str, bucket: str, region: str, owner: str, **options: Any) -> None:
        key_id = os.environ.get("CDN_DEMO_S3_ACCESS_KEY_ID", "")
        secret = os.environ.get("CDN_DEMO_S3_SECRET_ACCESS_KEY", "")
        if not key_id or not secret:
            raise CommandError("CDN_DEMO_S3_ACCESS_KEY_ID and CDN_DEMO_S3_SECRET_ACCESS_KEY must be set")
        user = User.objects.get(username=owner)
        origin = {"origin_id": "private-bucket", "kind": "s3", "bucket": bucket, "region": region,
                  "endpoint_url": endpoint, "addressing_style": "path", "signing_behavior": "always",
                  "access_key_id": key_id, "secret_access_key": secret}
        checked = Origin(**origin)
        checked.clean()  # the API's rules; it also names the bucket's domain
        origin["domain_name"] = checked.domain_name
        with transaction.atomic():
            existing = Distribution.objects.filter(owner=user, comment=S3_DEMO_COMMENT).first()
            if existing is not None:
                distribution = services.distribution_update(distribution=existing, user=user,
                                                            data={"origins": [origin]})
            else:
                optimized = CachePolicy.objects.get(name="CachingOptimized", managed=True)
                distribution = services.distribution_create(user=user, data={
                    "comment": S3_DEMO_COMMENT,
                    "enabled": True,
                    "default_root_object": "index.html",
                    "aliases": [S3_DEMO_ALIAS],
                    "origins": [origin],
                    "origin_groups": [],
                    "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "private-bucket",
                                         "cache_policy": optimized, "allowed_methods": "ALL"}],
                })
        self.stdout.write(json.dumps({"distribution_id": distribution.id, "domain_name": distribution.domain_name,
                                      "alias": S3_DEMO_ALIAS}))
