"""Reads. Views and tasks ask here instead of building querysets themselves."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Max, Q, QuerySet, Sum
from django.utils import timezone

from .models import (
    COUNTERS,
    LATENCY_BUCKETS_MS,
    CacheBehavior,
    CachePolicy,
    ConfigVersion,
    ConfigVersionChange,
    Distribution,
    EdgeNode,
    Invalidation,
    KeyGroup,
    OriginRequestPolicy,
    PublicKey,
    Status,
    TrafficStat,
)

User = AbstractBaseUser | AnonymousUser


def _is_staff(user: User) -> bool:
    return bool(getattr(user, "is_staff", False))


def distribution_list(user: User) -> QuerySet[Distribution]:
    qs = Distribution.objects.select_related("owner").prefetch_related(
        "alias_set", "origins", "origin_groups", "cache_behaviors__cache_policy", "cache_behaviors__origin_request_policy",
        "cache_behaviors__trusted_key_groups",
    )
    return qs if _is_staff(user) else qs.filter(owner=user)


def distributions_for_compile() -> QuerySet[Distribution]:
    return Distribution.objects.filter(enabled=True).prefetch_related(
        "alias_set", "origins", "origin_groups", "cache_behaviors__cache_policy", "cache_behaviors__origin_request_policy",
        "cache_behaviors__trusted_key_groups__public_keys",
    )


def cache_policy_list(user: User) -> QuerySet[CachePolicy]:
    qs = CachePolicy.objects.all()
    return qs if _is_staff(user) else qs.filter(Q(managed=True) | Q(owner=user))


def origin_request_policy_list(user: User) -> QuerySet[OriginRequestPolicy]:
    qs = OriginRequestPolicy.objects.all()
    return qs if _is_staff(user) else qs.filter(Q(managed=True) | Q(owner=user))


def public_key_list(user: User) -> QuerySet[PublicKey]:
    """Public keys the user may see and use: their own (staff: all), like distributions."""
    qs = PublicKey.objects.select_related("owner").prefetch_related("key_groups")
    return qs if _is_staff(user) else qs.filter(owner=user)


def key_group_list(user: User) -> QuerySet[KeyGroup]:
    qs = KeyGroup.objects.select_related("owner").prefetch_related("public_keys")
    return qs if _is_staff(user) else qs.filter(owner=user)


def behaviors_by_policy(user: User) -> dict[str, list[CacheBehavior]]:
    """The cache behaviors of the distributions the user sees, under the id of each policy they
    use (cache policies and origin request policies alike: the ids are UUIDs, never shared)."""
    behaviors = (CacheBehavior.objects.filter(distribution__in=distribution_list(user).values("pk"))
                 .select_related("distribution").order_by("distribution_id", "position"))
    used: dict[str, list[CacheBehavior]] = {}
    for behavior in behaviors:
        used.setdefault(str(behavior.cache_policy_id), []).append(behavior)
        if behavior.origin_request_policy_id is not None:
            used.setdefault(str(behavior.origin_request_policy_id), []).append(behavior)
    return used


def invalidation_list(distribution: Distribution) -> QuerySet[Invalidation]:
    return distribution.invalidations.prefetch_related("acks")


def edge_list() -> QuerySet[EdgeNode]:
    return EdgeNode.objects.all()


def edges_healthy() -> QuerySet[EdgeNode]:
    return EdgeNode.objects.filter(healthy=True)


def edges_push_due(now: datetime | None = None) -> QuerySet[EdgeNode]:
    """The healthy edges a push may go to now: not those backing off after failed pushes."""
    return edges_healthy().exclude(push_retry_at__gt=now or timezone.now())


def edges_behind(version: int) -> QuerySet[EdgeNode]:
    """The healthy edges, not backing off, that run something older than `version`: where a push goes."""
    return edges_push_due().filter(applied_version__lt=version)


def invalidation_by_seq(seq: int) -> Invalidation | None:
    return Invalidation.objects.filter(seq=seq).first()


def config_version_latest() -> ConfigVersion | None:
    return ConfigVersion.objects.order_by("-version").first()


class ServingEdge(NamedTuple):
    """What the status rules read of an edge: a row, not a model instance (building a
    thousand instances was most of a distribution's GET with a thousand edges)."""

    pk: int
    name: str
    applied_version: int
    created_at: datetime


def edges_serving(now: datetime | None = None) -> list[ServingEdge]:
    """The edges every change and invalidation waits for: `Deployed` and `Completed` in one rule.

    Every edge but those an operator drained and those unhealthy by the heartbeat rule for
    longer than CDN_UNHEALTHY_GRACE_SECONDS (an edge never heard from counts as unhealthy
    since it was registered). Computed once per request by the caller.
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.CDN_UNHEALTHY_GRACE_SECONDS)
    rows = EdgeNode.objects.filter(drained=False).values_list("pk", "name", "applied_version", "created_at",
                                                              "healthy", "unhealthy_since")
    return [ServingEdge(pk, name, applied, created) for pk, name, applied, created, healthy, unhealthy_since in rows
            if healthy or (unhealthy_since or created) >= cutoff]


NO_EDGES = "no edge serves distributions yet: register one, or undrain one"


def distribution_deployment(distribution: Distribution, serving: list[ServingEdge]) -> dict[str, Any]:
    """How many of the edges that should serve the distribution run its last change, and which do not yet."""
    pending = sorted(edge.name for edge in serving if edge.applied_version < distribution.config_version)
    answer: dict[str, Any] = {"edges_total": len(serving), "edges_current": len(serving) - len(pending),
                              "edges_pending": pending}
    if not serving:
        answer["detail"] = NO_EDGES
    return answer


def distribution_status(distribution: Distribution, serving: list[ServingEdge]) -> str:
    """Deployed once every edge that should serve it runs a version that includes its last change.

    Never for want of edges: with none to count, a change has reached no one and is InProgress.
    """
    if serving and all(edge.applied_version >= distribution.config_version for edge in serving):
        return Status.DEPLOYED
    return Status.IN_PROGRESS


def invalidation_edges(invalidation: Invalidation, serving: list[ServingEdge]) -> list[ServingEdge]:
    """The edges that must apply an invalidation: those serving that existed when it was made."""
    return [edge for edge in serving if edge.created_at <= invalidation.created_at]


def invalidation_acknowledgements(invalidation: Invalidation, serving: list[ServingEdge]) -> dict[str, Any]:
    acked = {ack.edge_id for ack in invalidation.acks.all()}
    edges = invalidation_edges(invalidation, serving)
    pending = sorted(edge.name for edge in edges if edge.pk not in acked)
    answer: dict[str, Any] = {"edges_total": len(edges), "edges_acknowledged": len(edges) - len(pending),
                              "edges_pending": pending}
    if not edges:
        answer["detail"] = NO_EDGES
    return answer


def latest_version_number() -> int:
    return ConfigVersion.objects.aggregate(v=Max("version"))["v"] or 0


# ---- Traffic statistics ----

def _percentile(buckets: list[int], fraction: float) -> float | None:
    """Estimate a latency percentile (ms) from the fixed histogram, linear inside a bucket."""
    total = sum(buckets)
    if not total:
        return None
    rank = fraction * total
    seen = 0
    lower = 0.0
    for count, upper in zip(buckets, LATENCY_BUCKETS_MS):
        if count and seen + count >= rank:
            if upper is None:
                return lower
            return round(lower + (upper - lower) * (rank - seen) / count, 3)
        seen += count
        lower = float(upper) if upper is not None else lower
    return lower


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {name: sum(r[name] for r in rows) for name in COUNTERS}
    buckets = [0] * len(LATENCY_BUCKETS_MS)
    for row in rows:
        for i, count in enumerate(row["latency_ms_buckets"][: len(buckets)]):
            buckets[i] += count
    signed: dict[str, int] = {}
    for row in rows:
        for key_id, count in (row.get("signed_requests") or {}).items():
            signed[key_id] = signed.get(key_id, 0) + count
    requests = totals["requests"]
    totals.update(
        hit_ratio=round(totals["hits"] / requests, 4) if requests else None,
        error_rate_4xx=round(totals["status_4xx"] / requests, 4) if requests else None,
        error_rate_5xx=round(totals["status_5xx"] / requests, 4) if requests else None,
        latency_p50_ms=_percentile(buckets, 0.50),
        latency_p95_ms=_percentile(buckets, 0.95),
        latency_ms_buckets=buckets,
        signed_requests=dict(sorted(signed.items())),
    )
    return totals


def traffic_stats(distribution_ids: list[str], *, start: datetime, end: datetime, interval: str,
                  edge_id: int | None = None) -> dict[str, Any]:
    """Traffic of the distributions, per period; `edge_id` keeps what one edge served."""
    qs = TrafficStat.objects.filter(distribution_id__in=distribution_ids, resolution=interval,
                                    period_start__gte=start, period_start__lt=end)
    if edge_id is not None:
        qs = qs.filter(edge_id=edge_id)
    rows = list(
        qs.order_by("period_start")
        .values("period_start", "latency_ms_buckets", "signed_requests", *COUNTERS)
    )
    by_period: dict[datetime, list[dict[str, Any]]] = {}
    for row in rows:
        by_period.setdefault(row["period_start"], []).append(row)
    series = [{"start": period, **_summarise(group)} for period, group in by_period.items()]
    # The totals from the periods' sums (the same counters and latency buckets): each row is read once.
    return {"interval": interval, "start": start, "end": end, "series": series, "totals": _summarise(series)}


def traffic_counters(distributions: QuerySet[Distribution] | list[str], *, start: datetime, end: datetime,
                     interval: str, edge_id: int | None = None) -> dict[str, Any]:
    """The counters of `traffic_stats` (no latency), summed by the database per period.

    For charts across many distributions: `traffic_stats` reads every row into Python for
    its latency percentiles, 0.8 s for an hour of 1,000 distributions (docs/performance.md,
    "The dashboard"); this reads one row a period. `distributions` may be a queryset (a
    subquery, no list of ids in the SQL) or ids.
    """
    qs = TrafficStat.objects.filter(resolution=interval, period_start__gte=start, period_start__lt=end)
    qs = qs.filter(distribution_id__in=distributions.values("pk") if isinstance(distributions, QuerySet)
                   else distributions)
    if edge_id is not None:
        qs = qs.filter(edge_id=edge_id)
    series = [dict(row) for row in qs.values("period_start").annotate(**{name: Sum(name) for name in COUNTERS})
              .order_by("period_start")]

    def rates(counts: dict[str, Any]) -> dict[str, Any]:
        requests = counts["requests"]
        return dict(counts, hit_ratio=round(counts["hits"] / requests, 4) if requests else None,
                    error_rate_4xx=round(counts["status_4xx"] / requests, 4) if requests else None,
                    error_rate_5xx=round(counts["status_5xx"] / requests, 4) if requests else None)

    totals = rates({name: sum(row[name] or 0 for row in series) for name in COUNTERS})
    return {"interval": interval, "start": start, "end": end, "totals": totals,
            "series": [rates({"start": row.pop("period_start"), **{k: v or 0 for k, v in row.items()}})
                       for row in series]}


# ---- Config history ----

def config_version_get(number: int) -> ConfigVersion | None:
    return ConfigVersion.objects.filter(version=number).first()


def distribution_history(distribution_id: str) -> QuerySet[ConfigVersionChange]:
    """The versions that changed a distribution, newest first (its config history)."""
    return (ConfigVersionChange.objects.filter(distribution_id=distribution_id)
            .select_related("version__created_by").defer("version__document").order_by("-version_id"))


def distribution_history_before(distribution_id: str, number: int) -> int | None:
    """The newest version before `number` that changed the distribution."""
    return (ConfigVersionChange.objects.filter(distribution_id=distribution_id, version__lt=number)
            .aggregate(v=Max("version"))["v"])
