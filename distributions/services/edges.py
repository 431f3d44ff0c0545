"""The fleet: registration, heartbeats, what a push left an edge running, health.

The heartbeat rule: an edge is unhealthy once it has been silent for MISSED_HEARTBEATS
heartbeat intervals *while the control plane was there to hear it*. Silence that overlaps the
control plane's own outage does not count. The control plane notices its outage two ways:
its health check did not run for OUTAGE_HEARTBEATS intervals (the whole control plane was
down), or no edge at all reached it for as long (its heartbeat intake was down: the web
processes, or the network in front of them). Either way it records the outage in FleetState and re-judges every edge, so
the first heartbeats after it come back find their edges healthy.

The check runs from the heartbeat intake (at most once a second, on the web processes, where
no push can delay it) and from every fleet tick.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .. import selectors
from ..models import EdgeNode, FleetState, hash_token
from .invalidations import invalidation_message, invalidations_check_complete, pending_invalidations

log = logging.getLogger(__name__)

MISSED_HEARTBEATS = 3  # an edge is unhealthy after this many missed heartbeats
OUTAGE_HEARTBEATS = 2  # a silence of the whole fleet (or of the health check) this long is the control plane's own
CHECK_EVERY = timedelta(seconds=1)  # how often the heartbeat intake runs the health check
PUSH_BACKOFF_BASE_SECONDS = 1.0  # after a failed push, the edge's next push waits 1, 2, 4 ... seconds
PUSH_BACKOFF_CAP_SECONDS = 60.0  # and never longer than this


def heartbeat_threshold() -> timedelta:
    return timedelta(seconds=settings.CDN_HEARTBEAT_SECONDS * MISSED_HEARTBEATS)


def outage_gap() -> timedelta:
    return timedelta(seconds=settings.CDN_HEARTBEAT_SECONDS * OUTAGE_HEARTBEATS)


def silence(last_seen: datetime, now: datetime, outage_start: datetime | None, outage_end: datetime | None) -> timedelta:
    """How long an edge has been silent while the control plane was up: the rule, in one place."""
    silent = now - last_seen
    if outage_start is not None and outage_end is not None:
        overlap = min(now, outage_end) - max(last_seen, outage_start)
        if overlap > timedelta(0):
            silent -= overlap
    return silent


def _fleet_state() -> FleetState:
    state, _ = FleetState.objects.get_or_create(id=1)
    return state


def _record_outage(state: FleetState, start: datetime, end: datetime) -> None:
    """Remember the control plane's own outage; one that touches the last one extends it."""
    if state.outage_start is not None and state.outage_end is not None and state.outage_end >= start:
        start = min(start, state.outage_start)
    state.outage_start, state.outage_end = start, end
    FleetState.objects.filter(id=1).update(outage_start=start, outage_end=end)
    log.warning("the control plane heard nothing from %s to %s: that silence is not held against the edges",
                start.isoformat(timespec="seconds"), end.isoformat(timespec="seconds"))


def edge_register(*, name: str, pop: str, url: str) -> tuple[EdgeNode, str]:
    """Create an edge and return its token, which is shown once and stored only as a hash."""
    edge = EdgeNode(name=name, pop=pop, url=url.rstrip("/"))
    token = secrets.token_hex(32)  # hex: never starts with '-', safe on any command line
    edge.set_token(token)
    edge.full_clean()
    edge.save()
    return edge, token


EDGE_FIELDS = ("name", "pop", "url", "drained")  # what people edit; the rest is what the fleet protocol records


def edge_update(*, edge: EdgeNode, data: dict[str, Any]) -> EdgeNode:
    """Rename or move an edge; keys of `data` other than EDGE_FIELDS are ignored."""
    edge = EdgeNode.objects.get(pk=edge.pk)
    changed = [key for key in EDGE_FIELDS if key in data]
    for key in changed:
        setattr(edge, key, data[key])
    edge.url = edge.url.rstrip("/")
    edge.full_clean()
    edge.save(update_fields=changed)
    if "drained" in changed:
        invalidations_check_complete()  # a drained edge no longer holds invalidations; an undrained one may
    return edge


def edge_for_token(token: str) -> EdgeNode | None:
    return EdgeNode.objects.filter(token_hash=hash_token(token)).first() if token else None


def edge_heartbeat(*, edge: EdgeNode, version: int, invalidation_seq: int, error: str | None = None) -> dict[str, Any]:
    """Record that the edge is alive and what it runs; `error` is why it refused the newest config."""
    now = timezone.now()
    # The fleet's newest heartbeat is at least this edge's last one: only an edge silent for
    # longer than the outage gap has to ask whether everybody was.
    recent = edge.last_seen is not None and now - edge.last_seen <= outage_gap()
    newest = edge.last_seen if recent else EdgeNode.objects.aggregate(newest=Max("last_seen"))["newest"]
    state = _fleet_state()
    outage = newest is not None and now - newest > outage_gap()
    if outage:  # nobody reached the control plane for a while: its intake was down, not the fleet
        _record_outage(state, newest, now)
    fields: dict[str, Any] = {"last_seen": now, "healthy": True, "unhealthy_since": None,
                              "invalidation_seq": invalidation_seq}
    if error is not None:
        fields["last_error"] = error
    if version != edge.applied_version:
        fields.update(applied_version=version, applied_at=now)
    EdgeNode.objects.filter(pk=edge.pk).update(**fields)
    if not edge.healthy:
        log.info("edge %s is healthy again", edge.name)
        # Its return may release invalidations and distributions waiting on it, or hold them.
        invalidations_check_complete()
    if outage or state.checked_at is None or now - state.checked_at >= CHECK_EVERY:
        fleet_check_health(now)
    return {
        "name": edge.name,
        "pop": edge.pop,
        "version": selectors.latest_version_number(),
        "heartbeat_interval": settings.CDN_HEARTBEAT_SECONDS,
        "invalidations": [invalidation_message(i) for i in pending_invalidations(edge)],
    }


@transaction.atomic
def edges_applied(*, versions: Mapping[str, int]) -> None:
    """Record what pushes left edges running (edge name: version), in one statement per version.

    A version never goes back through a push; a push that took clears the edge's last error
    and its backoff. The rows are locked first in one order (by pk), so two fan-outs
    recording at once wait for each other instead of deadlocking.
    """
    now = timezone.now()
    list(EdgeNode.objects.select_for_update().filter(name__in=list(versions)).order_by("pk").values_list("pk"))
    by_version: dict[int, list[str]] = {}
    for name, version in versions.items():
        by_version.setdefault(version, []).append(name)
    for version, names in by_version.items():
        EdgeNode.objects.filter(name__in=names, applied_version__lt=version).update(applied_version=version,
                                                                                  applied_at=now)
    EdgeNode.objects.filter(name__in=list(versions)).update(last_error="", push_failures=0, push_retry_at=None)


def push_backoff(failures: int) -> timedelta:
    """How long after its `failures`-th failed push in a row an edge is next pushed to: 1, 2, 4 ... 60 s."""
    return timedelta(seconds=min(PUSH_BACKOFF_CAP_SECONDS, PUSH_BACKOFF_BASE_SECONDS * 2 ** max(failures - 1, 0)))


def edge_push_backoff(*, edge_name: str, now: datetime | None = None) -> datetime | None:
    """A push to the edge failed: schedule its next one, later after each failure in a row.

    Nothing waits for that time: pushes (the fleet tick's retries and a new change's push
    alike) skip the edge until then, so an edge that keeps failing costs the others nothing,
    and it still pulls what it missed with its own heartbeat.
    """
    now = now or timezone.now()
    failures = EdgeNode.objects.filter(name=edge_name).values_list("push_failures", flat=True).first()
    if failures is None:
        return None
    retry_at = now + push_backoff(failures + 1)
    EdgeNode.objects.filter(name=edge_name).update(push_failures=failures + 1, push_retry_at=retry_at)
    return retry_at


def edge_push_ok(*, edge_names: Iterable[str]) -> None:
    """Pushes reached these edges: they are pushed to as usual again."""
    names = list(edge_names)
    if names:
        EdgeNode.objects.filter(name__in=names, push_failures__gt=0).update(push_failures=0, push_retry_at=None)


def edge_push_failed(*, edge_name: str, version: int, error: str) -> None:
    """Record why a push of `version` did not reach the edge; it keeps what it ran, and backs off."""
    EdgeNode.objects.filter(name=edge_name).update(last_error=error[:2000])
    retry_at = edge_push_backoff(edge_name=edge_name)
    log.warning("edge %s did not take version %s: %s (next push not before %s)", edge_name, version, error,
                retry_at.isoformat(timespec="seconds") if retry_at else "-")


def edge_delete(*, edge: EdgeNode) -> None:
    """Remove an edge from the fleet; invalidations that waited only for it complete now."""
    edge.delete()
    invalidations_check_complete()


def fleet_check_health(now: datetime | None = None) -> list[str]:
    """Judge every edge by the heartbeat rule; return the names of those that just turned unhealthy.

    Edges marked unhealthy for silence that turns out to be the control plane's own outage
    are healthy again, from the moment the outage is known.
    """
    now = now or timezone.now()
    state = _fleet_state()
    if state.checked_at is not None and now - state.checked_at > outage_gap():
        _record_outage(state, state.checked_at, now)  # the health check itself did not run: we were down
    FleetState.objects.filter(id=1).update(checked_at=now)
    threshold = heartbeat_threshold()
    stale: list[str] = []
    back: list[str] = []
    for name, last_seen, healthy in EdgeNode.objects.values_list("name", "last_seen", "healthy"):
        ok = last_seen is not None and silence(last_seen, now, state.outage_start, state.outage_end) <= threshold
        if healthy and not ok:
            stale.append(name)
        elif ok and not healthy:
            back.append(name)
    if stale:
        EdgeNode.objects.filter(name__in=stale).update(healthy=False, unhealthy_since=now)
        log.warning("edges missed %s heartbeats and are now unhealthy: %s", MISSED_HEARTBEATS, ", ".join(stale))
    if back:
        EdgeNode.objects.filter(name__in=back).update(healthy=True, unhealthy_since=None)
        log.info("edges are healthy again (their silence was the control plane's outage): %s", ", ".join(back))
    if stale or back:
        invalidations_check_complete()
    return stale
