"""First-start set-up of a local cluster (`make run`, docker-compose): the admin user,
three edges and a demo distribution.

Idempotent: a later run reuses what exists, only moving edge URLs and the demo origin
to the addresses of this run. Edge tokens are shown once by registration, so they are
kept in var/edges.json (mode 0600), and with --tokens-dir also one file per edge (what
EDGE_TOKEN_FILE reads), for the local edges to start with.

`make run` reads the tokens from the JSON on stdout; docker-compose passes --hide-secrets,
because its logs are shared: then no password or token is printed, only where they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
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
        parser.add_argument("--edge-url", default="http://{host}:{port}",
                            help="admin URL template with {host}, {name} and {port} (docker-compose: http://{name}:{port})")
        parser.add_argument("--origin-port", type=int, required=True)
        parser.add_argument("--origin-host", help="the demo origin's host (default: --host)")
        parser.add_argument("--tokens-dir", type=Path, help="also write each edge's token to DIR/<edge name>")
        parser.add_argument("--owner", default="admin")
        parser.add_argument("--hide-secrets", action="store_true",
                            help="print no password or token, only the files that hold them (for shared logs)")

    def handle(self, *args: Any, host: str, edge_admin_ports: str, edge_url: str, origin_port: int,
               origin_host: str | None, tokens_dir: Path | None, owner: str, hide_secrets: bool = False,
               **options: Any) -> None:
        ports = [int(p) for p in edge_admin_ports.split(",")]
        if len(ports) != len(LOCAL_EDGES):
            raise CommandError(f"--edge-admin-ports needs {len(LOCAL_EDGES)} ports, one per local edge")
        if not User.objects.filter(username=owner).exists():
            call_command("cdn_bootstrap", username=owner, hide_secrets=hide_secrets, stdout=self.stderr)
        path = Path(settings.VAR_DIR) / "edges.json"
        tokens: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        with transaction.atomic():
            for (name, pop), port in zip(LOCAL_EDGES, ports, strict=True):
                url = edge_url.format(host=host, name=name, port=port)
                edge = EdgeNode.objects.filter(name=name).first()
                if edge is None or name not in tokens:
                    if edge is not None:
                        services.edge_delete(edge=edge)
                    _, tokens[name] = services.edge_register(name=name, pop=pop, url=url)
                elif edge.url != url:
                    services.edge_update(edge=edge, data={"url": url})
            path.write_text(json.dumps(tokens, indent=2) + "\n")
            path.chmod(0o600)
            if tokens_dir is not None:
                tokens_dir.mkdir(parents=True, exist_ok=True)
                for name, token in tokens.items():
                    (tokens_dir / name).write_text(token + "\n")
            distribution = self._demo_distribution(User.objects.get(username=owner), origin_host or host, origin_port)
        summary: dict[str, Any] = {"edges": tokens, "distribution_id": distribution.id,
                                   "domain_name": distribution.domain_name}
        if hide_secrets:
            summary["edges"] = sorted(tokens)
            summary["tokens_file"] = str(path)
            if tokens_dir is not None:
                summary["tokens_dir"] = str(tokens_dir)
        self.stdout.write(json.dumps(summary))

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
