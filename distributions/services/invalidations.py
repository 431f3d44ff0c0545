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


def invalidation_message(invalidation: Invalidation) -> dict[str, Any]:
    return {"id": invalidation.seq, "distribution_id": invalidation.distribution_id,
            "paths": list(invalidation.paths), "tags": list(invalidation.tags)}



def invalidation_ack(*, edge: EdgeNode, ids: Iterable[int]) -> int:
    wanted = set(ids)
    existing = set(Invalidation.objects.filter(seq__in=wanted).values_list("seq", flat=True))
    InvalidationAck.objects.bulk_create(
        [InvalidationAck(invalidation_id=seq, edge=edge) for seq in sorted(existing)], ignore_conflicts=True)
    invalidations_check_complete(existing)
    return len(existing)


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
