from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from distributions import services


class Command(BaseCommand):
    help = "Register an edge node and print its token (shown once; only its hash is stored)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--pop", required=True, help="short location code, e.g. fra")
        parser.add_argument("--url", required=True, help="base URL of the edge's admin endpoint, e.g. http://127.0.0.1:9081")

    def handle(self, *args: Any, name: str, pop: str, url: str, **options: Any) -> None:
        try:
            _, token = services.edge_register(name=name, pop=pop, url=url)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())) from exc
        self.stdout.write(token)
