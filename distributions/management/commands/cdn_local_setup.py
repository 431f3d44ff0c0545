"""First-start set-up of the local CDN (`make run`): three edges and a demo distribution.

Idempotent: a later run reuses what exists, only moving edge URLs and the demo origin
port to the ports of this run. Edge tokens are shown once by registration, so they are
kept in var/edges.json (mode 0600) for the local edges to start with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from distributions import services
from distributions.models import CachePolicy, Distribution, EdgeNode

LOCAL_EDGES = (("edge-fra", "fra"), ("edge-iad", "iad"), ("edge-sin", "sin"))
DEMO_COMMENT = "demo site (make run)"


class Command(BaseCommand):
    help = "Register the local edges and the demo distribution once; print what `make run` needs as JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--edge-admin-ports", required=True, help="comma-separated, one per local edge")
        parser.add_argument("--origin-port", type=int, required=True)
        parser.add_argument("--owner", default="admin")

    def handle(self, *args: Any, host: str, edge_admin_ports: str, origin_port: int, owner: str, **options: Any) -> None:
        ports = [int(p) for p in edge_admin_ports.split(",")]
        path = Path(settings.VAR_DIR) / "edges.json"
        tokens: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        with transaction.atomic():
            for (name, pop), port in zip(LOCAL_EDGES, ports):
                url = f"http://{host}:{port}"
                edge = EdgeNode.objects.filter(name=name).first()
                if edge is None or name not in tokens:
                    if edge is not None:
                        edge.delete()
                    _, tokens[name] = services.edge_register(name=name, pop=pop, url=url)
                elif edge.url != url:
                    EdgeNode.objects.filter(pk=edge.pk).update(url=url)
            path.write_text(json.dumps(tokens, indent=2) + "\n")
            path.chmod(0o600)
            distribution = self._demo_distribution(User.objects.get(username=owner), host, origin_port)
        self.stdout.write(json.dumps({"edges": tokens, "distribution_id": distribution.id,
                                      "domain_name": distribution.domain_name}))

    def _demo_distribution(self, owner: User, host: str, origin_port: int) -> Distribution:
        existing = Distribution.objects.filter(owner=owner, comment=DEMO_COMMENT).first()
        if existing is not None:
            origin = existing.origins.get(origin_id="demo-origin")
            if origin.http_port != origin_port or origin.domain_name != host:
                services.distribution_update(distribution=existing, user=owner, data={"origins": [
                    {"origin_id": "demo-origin", "kind": "custom", "domain_name": host, "http_port": origin_port,
                     "protocol_policy": "http-only"}]})
            return existing
        optimized = CachePolicy.objects.get(name="CachingOptimized", managed=True)
        disabled = CachePolicy.objects.get(name="CachingDisabled", managed=True)
        return services.distribution_create(user=owner, data={
            "comment": DEMO_COMMENT,
            "enabled": True,
            "default_root_object": "index.html",
            "aliases": ["demo.localhost"],
            "origins": [{"origin_id": "demo-origin", "kind": "custom", "domain_name": host, "http_port": origin_port,
                         "protocol_policy": "http-only"}],
            "origin_groups": [],
            "cache_behaviors": [
                {"path_pattern": "/api/*", "target_origin_id": "demo-origin", "cache_policy": disabled,
                 "allowed_methods": "ALL"},
                {"path_pattern": "*", "target_origin_id": "demo-origin", "cache_policy": optimized, "compress": True},
            ],
        })
