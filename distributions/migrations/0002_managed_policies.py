"""Seed the read-only managed policies, with CloudFront's own ids."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import migrations

CACHE_POLICIES = [
    {"id": "658327ea-f89d-4fab-a63d-7e88639e58f6", "name": "CachingOptimized",
     "comment": "Default policy when caching is enabled: long TTLs, nothing but the path in the cache key.",
     "min_ttl": 1, "default_ttl": 86400, "max_ttl": 31536000, "enable_gzip": True, "enable_brotli": True},
    {"id": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad", "name": "CachingDisabled",
     "comment": "Policy with caching disabled.",
     "min_ttl": 0, "default_ttl": 0, "max_ttl": 0, "enable_gzip": False, "enable_brotli": False},
]
ORIGIN_REQUEST_POLICIES = [
    {"id": "216adef6-5c7f-47e4-b989-5492eafa07d3", "name": "AllViewer",
     "comment": "Every query string, header and cookie of the viewer request.",
     "query_strings_behavior": "all", "headers_behavior": "all", "cookies_behavior": "all"},
    {"id": "88a5eaf4-2fd4-4709-b370-b4c650ea3fcf", "name": "CORS-S3Origin",
     "comment": "The headers an S3 origin needs for CORS.",
     "headers_behavior": "allowlist",
     "headers": ["access-control-request-headers", "access-control-request-method", "origin"]},
]


def seed(apps: Any, schema_editor: Any) -> None:
    CachePolicy = apps.get_model("distributions", "CachePolicy")
    OriginRequestPolicy = apps.get_model("distributions", "OriginRequestPolicy")
    for spec in CACHE_POLICIES:
        fields = dict(spec, id=uuid.UUID(spec["id"]), managed=True)
        CachePolicy.objects.update_or_create(id=fields.pop("id"), defaults=fields)
    for spec in ORIGIN_REQUEST_POLICIES:
        fields = dict(spec, id=uuid.UUID(spec["id"]), managed=True)
        OriginRequestPolicy.objects.update_or_create(id=fields.pop("id"), defaults=fields)


def unseed(apps: Any, schema_editor: Any) -> None:
    apps.get_model("distributions", "CachePolicy").objects.filter(managed=True).delete()
    apps.get_model("distributions", "OriginRequestPolicy").objects.filter(managed=True).delete()


class Migration(migrations.Migration):
    dependencies = [("distributions", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
