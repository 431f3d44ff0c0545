"""Reads. Views and tasks ask here instead of building querysets themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Max, Q, QuerySet

from .models import (
    COUNTERS,
    LATENCY_BUCKETS_MS,
    CachePolicy,
    ConfigVersion,
    Distribution,
    EdgeNode,
    Invalidation,
    OriginRequestPolicy,
    Status,
    TrafficStat,
)

User = AbstractBaseUser | AnonymousUser


def _is_staff(user: User) -> bool:
    return bool(getattr(user, "is_staff", False))


def distribution_list(user: User) -> QuerySet[Distribution]:
    qs = Distribution.objects.select_related("owner").prefetch_related(
        "alias_set", "origins", "origin_groups", "cache_behaviors__cache_policy", "cache_behaviors__origin_request_policy"
    )
    return qs if _is_staff(user) else qs.filter(owner=user)


def distributions_for_compile() -> QuerySet[Distribution]:
    return Distribution.objects.filter(enabled=True).prefetch_related(
        "alias_set", "origins", "origin_groups", "cache_behaviors__cache_policy", "cache_behaviors__origin_request_policy"
    )


def cache_policy_list(user: User) -> QuerySet[CachePolicy]:
    qs = CachePolicy.objects.all()
    return qs if _is_staff(user) else qs.filter(Q(managed=True) | Q(owner=user))


def origin_request_policy_list(user: User) -> QuerySet[OriginRequestPolicy]:
    qs = OriginRequestPolicy.objects.all()
    return qs if _is_staff(user) else qs.filter(Q(managed=True) | Q(owner=user))


def invalidation_list(distribution: Distribution) -> QuerySet[Invalidation]:
    return distribution.invalidations.all()


def edge_list() -> QuerySet[EdgeNode]:
    return EdgeNode.objects.all()


def edges_healthy() -> QuerySet[EdgeNode]:
    return EdgeNode.objects.filter(healthy=True)


def edges_behind(version: int) -> QuerySet[EdgeNode]:
    """The healthy edges that run something older than `version`: where a push goes."""
    return edges_healthy().filter(applied_version__lt=version)


def invalidation_by_seq(seq: int) -> Invalidation | None:
    return Invalidation.objects.filter(seq=seq).first()


def config_version_latest() -> ConfigVersion | None:
    return ConfigVersion.objects.order_by("-version").first()


def deployed_version_floor() -> int | None:
    """The lowest version any healthy edge runs, or None when there is no healthy edge."""
    edges = EdgeNode.objects.filter(healthy=True)
    if not edges.exists():
        return None
    return min(edge.applied_version for edge in edges)


def distribution_status(distribution: Distribution, floor: int | None) -> str:
    """InProgress until every healthy edge runs a version that includes the distribution's last change.

    `floor` is `deployed_version_floor()`, computed once per request by the caller.
    """
    if floor is None or distribution.config_version <= floor:
        return Status.DEPLOYED
    return Status.IN_PROGRESS


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
    requests = totals["requests"]
    totals.update(
        hit_ratio=round(totals["hits"] / requests, 4) if requests else None,
        error_rate_4xx=round(totals["status_4xx"] / requests, 4) if requests else None,
        error_rate_5xx=round(totals["status_5xx"] / requests, 4) if requests else None,
        latency_p50_ms=_percentile(buckets, 0.50),
        latency_p95_ms=_percentile(buckets, 0.95),
        latency_ms_buckets=buckets,
    )
    return totals


def traffic_stats(distribution_ids: list[str], *, start: datetime, end: datetime, interval: str) -> dict[str, Any]:
    rows = list(
        TrafficStat.objects.filter(distribution_id__in=distribution_ids, resolution=interval,
                                   period_start__gte=start, period_start__lt=end)
        .order_by("period_start")
        .values("period_start", "latency_ms_buckets", *COUNTERS)
    )
    by_period: dict[datetime, list[dict[str, Any]]] = {}
    for row in rows:
        by_period.setdefault(row["period_start"], []).append(row)
    series = [{"start": period, **_summarise(group)} for period, group in by_period.items()]
    return {"interval": interval, "start": start, "end": end, "series": series, "totals": _summarise(rows)}
