"""Thin Celery tasks: load by id, call the fleet and the services.

Every push is one fan-out (edge_client.fan_out): all edges at once, each within its own
deadline, each outcome recorded as it arrives. Nothing sleeps to retry: what an edge missed
is sent again by a later `fleet_tick`, and the edge pulls it with its next heartbeat anyway.
An edge whose push failed backs off (services.edge_push_backoff: 1, 2, 4 ... 60 s after each
failure in a row); until then no push goes to it, so one failing edge never holds a fan-out.
"""

from __future__ import annotations

import logging

from celery import shared_task

from . import crypto, edge_client, selectors, services
from .models import ConfigVersion, EdgeNode, Invalidation

log = logging.getLogger(__name__)

Plan = list[tuple[EdgeNode, list[edge_client.Request]]]


def _config_request(latest: ConfigVersion, edge: EdgeNode) -> edge_client.Request:
    """The version as this edge receives it: its S3 credentials sealed for that edge alone."""
    return edge_client.Request("PUT", "/config", crypto.document_for_edge(latest.document, edge.token_hash))


def _invalidation_request(invalidation: Invalidation) -> edge_client.Request:
    return edge_client.Request("POST", "/invalidations", services.invalidation_message(invalidation))


def _deliver(plan: Plan, latest_version: int = 0) -> dict[str, int]:
    """Send the plan and record the outcomes as they arrive, each batch in a few statements."""
    edges = {edge.name: edge for edge, _ in plan}
    targets = [(edge_client.Target(edge.name, edge.url, edge.token_hash), requests) for edge, requests in plan]
    results: dict[str, int] = {}
    for batch in edge_client.fan_out(targets):
        applied: dict[str, int] = {}
        acked: list[tuple[EdgeNode, int]] = []
        for outcome in batch:
            request = outcome.request
            assert request is not None
            if request.path == "/config":
                running = int(outcome.body.get("version", 0) or 0)
                if outcome.ok or outcome.status == 409:  # 409: the edge already runs something newer
                    applied[outcome.name] = running or latest_version
                else:
                    services.edge_push_failed(edge_name=outcome.name, version=latest_version, error=outcome.error)
                results[outcome.name] = outcome.status
            elif outcome.ok:
                acked.append((edges[outcome.name], request.payload["id"]))
            else:
                services.edge_push_backoff(edge_name=outcome.name)
                log.warning("edge %s did not apply invalidation %s: %s", outcome.name, request.payload["id"],
                            outcome.error)
        if applied:
            services.edges_applied(versions=applied)
        if acked:
            services.invalidation_acks(acks=acked)
            services.edge_push_ok(edge_names=[edge.name for edge, _ in acked if edge.push_failures])
    return results


@shared_task(ignore_result=True)
def push_config(version: int | None = None) -> dict[str, int]:
    """Push the NEWEST version to every healthy edge that is behind.

    A burst of edits queues several of these; each pushes whatever is newest when it runs,
    and edges refuse anything older than what they run, so a slow push never rolls an edge back.
    """
    latest = selectors.config_version_latest()
    if latest is None:
        return {}
    plan: Plan = [(edge, [_config_request(latest, edge)]) for edge in selectors.edges_behind(latest.version)]
    return _deliver(plan, latest.version)


@shared_task(ignore_result=True)
def push_invalidation(seq: int) -> None:
    invalidation = selectors.invalidation_by_seq(seq)
    if invalidation is None:
        return
    request = _invalidation_request(invalidation)
    _deliver([(edge, [request]) for edge in selectors.edges_push_due().exclude(invalidation_acks__invalidation=invalidation)])
    services.invalidations_check_complete([seq])


@shared_task(ignore_result=True)
def fleet_tick() -> None:
    """The safety net: health, then one fan-out of what each healthy edge is missing (the newest config,
    in-progress invalidations it has not acknowledged), then completion."""
    services.fleet_check_health()
    latest = selectors.config_version_latest()
    due = list(selectors.edges_push_due())  # not those backing off: their retry is scheduled, not waited for
    missing = services.in_progress_missing(due, limit=100)
    plan: Plan = []
    for edge in due:
        requests = [_config_request(latest, edge)] if latest is not None and edge.applied_version < latest.version else []
        requests += [_invalidation_request(i) for i in missing.get(edge.pk, [])]
        plan.append((edge, requests))
    _deliver(plan, latest.version if latest is not None else 0)
    services.invalidations_check_complete()


@shared_task(ignore_result=True)
def stats_prune() -> int:
    return services.stats_prune()
