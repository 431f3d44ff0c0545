"""Thin Celery tasks: load by id, call the fleet and the services."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from . import crypto, edge_client, selectors, services
from .models import EdgeNode, Invalidation

log = logging.getLogger(__name__)


def _targets(edges: Any) -> list[edge_client.Target]:
    return [edge_client.Target(edge.name, edge.url, edge.token_hash) for edge in edges]


@shared_task(ignore_result=True)
def push_config(version: int | None = None) -> dict[str, int]:
    """Push the NEWEST version to every healthy edge that is behind.

    A burst of edits queues several of these; each pushes whatever is newest when it runs,
    and edges refuse anything older than what they run, so a slow push never rolls an edge back.
    """
    latest = selectors.config_version_latest()
    if latest is None:
        return {}
    edges = selectors.edges_behind(latest.version)
    results: dict[str, int] = {}
    def for_edge(target: edge_client.Target) -> dict[str, Any]:
        return crypto.document_for_edge(latest.document, target.key_hex)

    for outcome in edge_client.broadcast(_targets(edges), "PUT", "/config", for_edge):
        running = int(outcome.body.get("version", 0) or 0)
        if outcome.ok or outcome.status == 409:  # 409: the edge already runs something newer
            services.edge_applied(edge_name=outcome.name, version=running or latest.version)
        else:
            services.edge_push_failed(edge_name=outcome.name, version=latest.version, error=outcome.error)
        results[outcome.name] = outcome.status
    return results


def _push_invalidations(edges: list[EdgeNode], invalidations: list[Invalidation]) -> None:
    for invalidation in invalidations:
        message = services.invalidation_message(invalidation)
        for outcome in edge_client.broadcast(_targets(edges), "POST", "/invalidations", message):
            if outcome.ok:
                edge = next(e for e in edges if e.name == outcome.name)
                services.invalidation_ack(edge=edge, ids=[invalidation.seq])
            else:
                log.warning("edge %s did not apply invalidation %s: %s", outcome.name, invalidation.id, outcome.error)


@shared_task(ignore_result=True)
def push_invalidation(seq: int) -> None:
    invalidation = selectors.invalidation_by_seq(seq)
    if invalidation is None:
        return
    _push_invalidations(list(selectors.edges_healthy()), [invalidation])
    services.invalidations_check_complete([seq])


@shared_task(ignore_result=True)
def fleet_tick() -> None:
    """The safety net: health, re-push of config and invalidations, completion."""
    services.fleet_check_health()
    push_config()
    for edge in selectors.edges_healthy():
        pending = services.pending_invalidations(edge)[:100]
        if pending:
            _push_invalidations([edge], pending)
    services.invalidations_check_complete()


@shared_task(ignore_result=True)
def stats_prune() -> int:
    return services.stats_prune()
