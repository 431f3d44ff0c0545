"""How long the dashboard's pages take with many distributions and a month of stats (issue 13).

Generates the rows in a fresh SQLite database under a temporary CDN_VAR_DIR (never a
developer's var/): DISTRIBUTIONS distributions (each with an alias, an origin and a
behavior), EDGES edges, hourly stats for DAYS days and per-minute stats for the last hour
for every distribution on every edge; then times each page through Django's test client
(in process: the view, the queries and the template, no network), as a staff user who sees
everything. Reported, not asserted (docs/performance.md, "The dashboard").

    DEBUG=true .venv/bin/python -m bench.dashboard_pages [--distributions 1000] [--days 30] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distributions", type=int, default=1000)
    parser.add_argument("--edges", type=int, default=1)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="100 distributions, 2 days, 3 repeats: a smoke run")
    parser.add_argument("--output", type=Path, help="also write the table (Markdown) here")
    args = parser.parse_args(argv)
    if args.quick:
        args.distributions, args.days, args.repeat = 100, 2, 3

    state = Path(tempfile.mkdtemp(prefix="cdn-bench-dashboard-"))
    os.environ.update(CDN_VAR_DIR=str(state), DATABASE_URL=f"sqlite:///{state / 'db.sqlite3'}",
                      DJANGO_SETTINGS_MODULE="controlplane.settings")
    os.environ.setdefault("DEBUG", "true")
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    from distributions.models import Alias, CacheBehavior, CachePolicy, Distribution, EdgeNode, Origin, TrafficStat

    setup_test_environment()  # ALLOWED_HOSTS for the test client's "testserver"
    call_command("migrate", verbosity=0)
    started = time.monotonic()
    staff = User.objects.create_user("bench", password="bench-password-1", is_staff=True)
    policy = CachePolicy.objects.get(name="CachingOptimized", managed=True)
    distributions = Distribution.objects.bulk_create(
        Distribution(owner=staff, comment=f"bench {i}", config_version=1) for i in range(args.distributions))
    Alias.objects.bulk_create(Alias(distribution=d, name=f"d{i}.bench.test") for i, d in enumerate(distributions))
    Origin.objects.bulk_create(Origin(distribution=d, origin_id="web", domain_name="127.0.0.1", http_port=8090,
                                      protocol_policy="http-only") for d in distributions)
    CacheBehavior.objects.bulk_create(CacheBehavior(distribution=d, path_pattern="*", target_origin_id="web",
                                                    cache_policy=policy) for d in distributions)
    now = timezone.now()
    edges = [EdgeNode.objects.create(name=f"edge-{i}", pop=f"p{i}", url=f"http://127.0.0.1:{9100 + i}",
                                     token_hash=f"{i:064x}", applied_version=1, healthy=True, last_seen=now)
             for i in range(args.edges)]
    hour0 = now.replace(minute=0, second=0, microsecond=0)
    minute0 = now.replace(second=0, microsecond=0)
    rows = 0

    def stat(d: Distribution, e: EdgeNode, resolution: str, start: object) -> TrafficStat:
        return TrafficStat(distribution=d, edge=e, resolution=resolution, period_start=start, requests=600, hits=540,
                           misses=60, bytes_out=6_000_000, status_2xx=590, status_4xx=9, status_5xx=1,
                           latency_ms_buckets=[500, 80, 20])

    for hours_ago in range(args.days * 24):
        batch = [stat(d, e, "hour", hour0 - timedelta(hours=hours_ago)) for d in distributions for e in edges]
        TrafficStat.objects.bulk_create(batch, batch_size=5000)
        rows += len(batch)
    for minutes_ago in range(60):
        batch = [stat(d, e, "minute", minute0 - timedelta(minutes=minutes_ago)) for d in distributions for e in edges]
        TrafficStat.objects.bulk_create(batch, batch_size=5000)
        rows += len(batch)
    generated = time.monotonic() - started

    client = Client()
    client.force_login(staff)
    some = distributions[len(distributions) // 2].pk
    pages = [
        ("overview", "/dashboard/"),
        ("stats.json, everything, 1 h", "/dashboard/stats.json?range=1h"),
        ("stats.json, everything, 7 d", "/dashboard/stats.json?range=7d"),
        ("distributions list (page 1 of 50 a page)", "/dashboard/distributions/"),
        ("distributions list, search", "/dashboard/distributions/?q=d999"),
        ("distributions list, Deployed", "/dashboard/distributions/?status=Deployed"),
        ("a distribution", f"/dashboard/distributions/{some}/"),
        ("its stats tab, 7 d", f"/dashboard/distributions/{some}/stats/?range=7d"),
        ("its history tab", f"/dashboard/distributions/{some}/history/"),
        ("edges", "/dashboard/edges/"),
        ("an edge", f"/dashboard/edges/{edges[0].name}/"),
        ("policies", "/dashboard/policies/"),
    ]
    lines = [f"{args.distributions} distributions, {args.edges} edge(s), {args.days} days of hourly stats and an hour "
             f"of per-minute stats: {rows:,} stats rows (generated in {generated:.0f} s), SQLite, "
             f"{args.repeat} runs a page after one warm-up", "",
             "| page | median ms | max ms |", "|---|---:|---:|"]
    for name, url in pages:
        assert client.get(url).status_code == 200, url
        times = []
        for _ in range(args.repeat):
            begun = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - begun) * 1000)
            assert response.status_code == 200, url
        lines.append(f"| {name} | {statistics.median(times):.1f} | {max(times):.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
