"""The fleet: registration, heartbeats, what a push left an edge running, health."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .. import selectors
from ..models import EdgeNode, hash_token
from .invalidations import invalidation_message, invalidations_check_complete, pending_invalidations

log = logging.getLogger(__name__)

MISSED_HEARTBEATS = 3  # an edge is unhealthy after this many missed heartbeats


def edge_register(*, name: str, pop: str, url: str) -> tuple[EdgeNode, str]:
    """Create an edge and return its token, which is shown once and stored only as a hash."""
    edge = EdgeNode(name=name, pop=pop, url=url.rstrip("/"))
    token = secrets.token_hex(32)  # hex: never starts with '-', safe on any command line
    edge.set_token(token)
    edge.full_clean()
    edge.save()
    return edge, token


EDGE_FIELDS = ("name", "pop", "url")  # what people edit; the rest is what the fleet protocol records


def edge_update(*, edge: EdgeNode, data: dict[str, Any]) -> EdgeNode:
    """Rename or move an edge; keys of `data` other than EDGE_FIELDS are ignored."""
    edge = EdgeNode.objects.get(pk=edge.pk)
    changed = [key for key in EDGE_FIELDS if key in data]
    for key in changed:
        setattr(edge, key, data[key])
    edge.url = edge.url.rstrip("/")
    edge.full_clean()
    edge.save(update_fields=changed)
    return edge


def edge_for_token(token: str) -> EdgeNode | None:
    return EdgeNode.objects.filter(token_hash=hash_token(token)).first() if token else None


def edge_heartbeat(*, edge: EdgeNode, version: int, invalidation_seq: int, error: str | None = None) -> dict[str, Any]:
    """Record that the edge is alive and what it runs; `error` is why it refused the newest config."""
    now = timezone.now()
    fields: dict[str, Any] = {"last_seen": now, "healthy": True, "invalidation_seq": invalidation_seq}
    if error is not None:
        fields["last_error"] = error
    if version != edge.applied_version:
        fields.update(applied_version=version, applied_at=now)
    EdgeNode.objects.filter(pk=edge.pk).update(**fields)
    if not edge.healthy:
        log.info("edge %s is healthy again", edge.name)
        # Its return may release invalidations and distributions waiting on it, or hold them.
        invalidations_check_complete()
    return {
        "name": edge.name,
        "pop": edge.pop,
        "version": selectors.latest_version_number(),
        "heartbeat_interval": settings.CDN_HEARTBEAT_SECONDS,
        "invalidations": [invalidation_message(i) for i in pending_invalidations(edge)],
    }


def edge_applied(*, edge_name: str, version: int, error: str = "") -> None:
    """Record what a push left the edge running; a version never goes back through a push."""
    now = timezone.now()
    EdgeNode.objects.filter(name=edge_name, applied_version__lt=version).update(applied_version=version, applied_at=now)
    EdgeNode.objects.filter(name=edge_name).update(last_error=error[:2000])


def edge_push_failed(*, edge_name: str, version: int, error: str) -> None:
    """Record why a push of `version` did not reach the edge; it keeps what it ran."""
    EdgeNode.objects.filter(name=edge_name).update(last_error=error[:2000])
    log.warning("edge %s did not take version %s: %s", edge_name, version, error)


def edge_delete(*, edge: EdgeNode) -> None:
    """Remove an edge from the fleet; invalidations that waited only for it complete now."""
    edge.delete()
    invalidations_check_complete()


def fleet_check_health() -> list[str]:
    """Mark edges that missed their heartbeats unhealthy; return their names."""
    cutoff = timezone.now() - timedelta(seconds=settings.CDN_HEARTBEAT_SECONDS * MISSED_HEARTBEATS)
    stale = EdgeNode.objects.filter(healthy=True).filter(Q(last_seen__lt=cutoff) | Q(last_seen__isnull=True))
    names = list(stale.values_list("name", flat=True))
    if names:
        EdgeNode.objects.filter(name__in=names).update(healthy=False)
        log.warning("edges missed %s heartbeats and are now unhealthy: %s", MISSED_HEARTBEATS, ", ".join(names))
        invalidations_check_complete()
    return names

