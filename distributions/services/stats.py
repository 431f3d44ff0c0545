"""Traffic statistics: exactly-once interval reports from the edges, and their retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from cdncontract.stats import SIGNED_REQUESTS

from ..models import COUNTERS, LATENCY_BUCKETS_MS, Distribution, EdgeNode, StatsReceipt, TrafficStat


def _bucket_sum(a: list[int], b: list[int]) -> list[int]:
    size = max(len(a), len(b), len(LATENCY_BUCKETS_MS))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(size)]


def _add_to_row(*, distribution_id: str, edge: EdgeNode, resolution: str, period_start: datetime,
                counters: dict[str, Any]) -> None:
    row, _ = TrafficStat.objects.select_for_update().get_or_create(
        distribution_id=distribution_id, edge=edge, resolution=resolution, period_start=period_start)
    for name in COUNTERS:
        setattr(row, name, getattr(row, name) + int(counters.get(name, 0)))
    row.latency_ms_buckets = _bucket_sum(list(row.latency_ms_buckets), list(counters.get("latency_ms_buckets", [])))
    signed = counters.get(SIGNED_REQUESTS)
    if signed:
        merged = dict(row.signed_requests or {})
        for key_id, count in signed.items():
            merged[key_id] = merged.get(key_id, 0) + int(count)
        row.signed_requests = dict(sorted(merged.items()))
    row.save()


@transaction.atomic
def stats_ingest(*, edge: EdgeNode, interval_start: int, distributions: dict[str, dict[str, Any]]) -> bool:
    """Add one interval report to the minute and hour rows; False (nothing counted) for a retry.

    Both resolutions are written here rather than rolled up later, so a report that arrives
    late (an edge buffered it through an outage) lands in the right hour too.
    """
    start = datetime.fromtimestamp(interval_start, tz=dt_timezone.utc)
    try:
        with transaction.atomic():
            StatsReceipt.objects.create(edge=edge, interval_start=start)
    except IntegrityError:
        return False
    known = set(Distribution.objects.filter(id__in=list(distributions)).values_list("id", flat=True))
    minute = start.replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    for distribution_id in sorted(known):
        counters = distributions[distribution_id]
        _add_to_row(distribution_id=distribution_id, edge=edge, resolution="minute", period_start=minute,
                    counters=counters)
        _add_to_row(distribution_id=distribution_id, edge=edge, resolution="hour", period_start=hour,
                    counters=counters)
    return True


MINUTE_RETENTION = timedelta(days=7)
HOUR_RETENTION = timedelta(days=400)


def stats_prune(now: datetime | None = None) -> int:
    now = now or timezone.now()
    removed = TrafficStat.objects.filter(resolution="minute", period_start__lt=now - MINUTE_RETENTION).delete()[0]
    removed += TrafficStat.objects.filter(resolution="hour", period_start__lt=now - HOUR_RETENTION).delete()[0]
    StatsReceipt.objects.filter(interval_start__lt=now - MINUTE_RETENTION).delete()
    return removed
