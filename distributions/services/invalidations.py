"""Invalidations: created once per caller_reference, sent to the edges in `seq` order,
completed when every edge that must apply them acknowledged them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import selectors
from ..models import Distribution, EdgeNode, Invalidation, InvalidationAck
from .errors import Conflict
from .publishing import run_hooks

log = logging.getLogger(__name__)

# Called with a new Invalidation after its transaction commits.
invalidation_created_hooks: list[Callable[[Invalidation], None]] = []

PENDING_INVALIDATIONS_LIMIT = 1000


def invalidation_create(*, distribution: Distribution, user: AbstractBaseUser | None, paths: list[str],
                        tags: list[str], caller_reference: str | None) -> tuple[Invalidation, bool]:
    """Create an invalidation, or return the one made earlier with the same caller_reference.

    Like CloudFront, reusing a caller_reference with a different batch is a conflict.
    """
    reference = caller_reference or uuid.uuid4().hex
    existing = Invalidation.objects.filter(distribution=distribution, caller_reference=reference).first()
    if existing is None:
        try:
            with transaction.atomic():
                invalidation = Invalidation(distribution=distribution, paths=paths, tags=tags,
                                            caller_reference=reference, created_by=user)
                invalidation.full_clean()
                invalidation.save()
                transaction.on_commit(lambda: run_hooks(invalidation_created_hooks, invalidation))
            return invalidation, True
        except IntegrityError:
            existing = Invalidation.objects.get(distribution=distribution, caller_reference=reference)
    invalidation_check_reuse(existing=existing, paths=paths, tags=tags)
    return existing, False


def invalidation_check_reuse(*, existing: Invalidation, paths: list[str], tags: list[str]) -> None:
    """Refuse a caller_reference reused with another batch; the admin form asks before it saves."""
    if existing.paths != paths or existing.tags != tags:
        raise Conflict(f"caller_reference {existing.caller_reference!r} was already used for invalidation {existing.id} "
                       "with other paths or tags", invalidation=existing.id)



def pending_invalidations(edge: EdgeNode) -> list[Invalidation]:
    return list(
        Invalidation.objects.filter(created_at__gte=edge.created_at)
        .exclude(acks__edge=edge)
        .order_by("seq")[:PENDING_INVALIDATIONS_LIMIT]
    )


def in_progress_missing(edges: Iterable[EdgeNode], limit: int) -> dict[int, list[Invalidation]]:
    """For each edge (by pk), the in-progress invalidations it has not acknowledged, oldest first.

    What the fleet tick re-sends, in two queries for the whole fleet: one query per edge
    every tick was a third of the worker's time at 300 edges (docs/performance.md). A completed
    invalidation an edge missed (it was away past the grace period, drained, or its push
    failed after the others completed it) reaches it with its next heartbeat, the one that
    makes it healthy again (`pending_invalidations`), before anything waits for it.
    """
    candidates = list(Invalidation.objects.filter(status="InProgress").order_by("seq"))
    if not candidates:
        return {}
    acked = set(InvalidationAck.objects.filter(invalidation__in=candidates).values_list("invalidation_id", "edge_id"))
    return {edge.pk: [inv for inv in candidates
                      if inv.created_at >= edge.created_at and (inv.seq, edge.pk) not in acked][:limit]
            for edge in edges}


def invalidation_message(invalidation: Invalidation) -> dict[str, Any]:
    return {"id": invalidation.seq, "distribution_id": invalidation.distribution_id,
            "paths": list(invalidation.paths), "tags": list(invalidation.tags)}



def invalidation_ack(*, edge: EdgeNode, ids: Iterable[int]) -> int:
    """The edge applied these invalidations (by seq); how many of them exist."""
    return invalidation_acks(acks=[(edge, seq) for seq in ids])


def invalidation_acks(*, acks: Iterable[tuple[EdgeNode, int]]) -> int:
    """Record (edge, invalidation seq) acknowledgements in one insert and one completion check,
    however many edges they come from; how many name an invalidation that exists."""
    wanted = list(acks)
    existing = set(Invalidation.objects.filter(seq__in={seq for _, seq in wanted}).values_list("seq", flat=True))
    known = sorted({(edge.pk, seq) for edge, seq in wanted if seq in existing})
    InvalidationAck.objects.bulk_create(
        [InvalidationAck(invalidation_id=seq, edge_id=edge_id) for edge_id, seq in known], ignore_conflicts=True)
    invalidations_check_complete(existing)
    return len(known)


def invalidations_check_complete(seqs: Iterable[int] | None = None) -> int:
    """Complete every in-progress invalidation that all the edges that must apply it acknowledged.

    The edges are those of `selectors.edges_serving` (the rule `Deployed` follows too) that
    existed when it was made; with none, it is not complete.
    """
    serving = selectors.edges_serving()
    pending = Invalidation.objects.filter(status="InProgress")
    if seqs is not None:
        pending = pending.filter(seq__in=list(seqs))
    done = {}
    for inv in pending.prefetch_related("acks"):
        edges = selectors.invalidation_edges(inv, serving)
        if edges and {edge.pk for edge in edges} <= {ack.edge_id for ack in inv.acks.all()}:
            done[inv.seq] = inv.id
    completed = Invalidation.objects.filter(seq__in=list(done), status="InProgress").update(
        status="Completed", completed_at=timezone.now())
    if completed:
        log.info("invalidation %s completed on every edge", ", ".join(done.values()))
    return completed
