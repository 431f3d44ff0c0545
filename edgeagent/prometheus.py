"""The edge's Prometheus metrics: counters since the process started, and `GET /metrics`.

Counters are plain integer attributes on slotted objects so the hit path pays one
attribute increment per counter, nothing else; the rendering cost is paid by the scraper.
They are grouped per distribution (`DistributionMetrics`) because every request belongs to
one, and the fast path's routing memo holds its distribution's object directly.

Not to be confused with `stats.py`: the per-interval reports posted to the control plane
(`POST /api/v1/edge/stats`), which are counted apart and reset every interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

# ---- Per-distribution counters ----

RESULTS = ("hit", "refresh_hit", "miss", "pass", "error")


class DistributionMetrics:
    """Traffic counters of one distribution since the agent started."""

    __slots__ = (
        "hit",
        "refresh_hit",
        "miss",
        "pass_",
        "error",
        "status_2xx",
        "status_3xx",
        "status_4xx",
        "status_5xx",
        "bytes_out",
        "origin_requests",
        "origin_failures",
        "origin_bytes",
        "collapsed",
        "stale_served",
        "signed_refused",
    )

    def __init__(self) -> None:
        self.hit = 0
        self.refresh_hit = 0
        self.miss = 0
        self.pass_ = 0
        self.error = 0
        self.status_2xx = 0
        self.status_3xx = 0
        self.status_4xx = 0
        self.status_5xx = 0
        self.bytes_out = 0
        self.origin_requests = 0
        self.origin_failures = 0
        self.origin_bytes = 0
        self.collapsed = 0
        self.stale_served = 0
        self.signed_refused = 0

    def count_status(self, status: int) -> None:
        if status < 300:
            self.status_2xx += 1
        elif status < 400:
            self.status_3xx += 1
        elif status < 500:
            self.status_4xx += 1
        else:
            self.status_5xx += 1


class Metrics:
    """Every counter of one agent process."""

    def __init__(self) -> None:
        self.started = time.time()
        self.distributions: dict[str, DistributionMetrics] = {}
        self.connections_open = 0
        self.connections_total = 0
        self.bad_requests = 0
        self.unknown_host = 0
        self.config_applied = 0
        self.config_rejected = 0
        self.invalidations_applied = 0
        self.objects_invalidated = 0

    def for_distribution(self, distribution_id: str) -> DistributionMetrics:
        stats = self.distributions.get(distribution_id)
        if stats is None:
            stats = self.distributions[distribution_id] = DistributionMetrics()
        return stats


# ---- Prometheus text format ----


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(
    lines: list[str], name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]
) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        # repr, not :g, for floats: six significant digits would round a Unix time to 1000 s.
        lines.append(f"{name}{labels} {value!r}" if isinstance(value, float) else f"{name}{labels} {value}")


def render(
    metrics: Metrics,
    name: str,
    pop: str,
    version: int,
    gauges: Callable[[], dict[str, int]],
    families: Iterable[tuple[str, str, str, float]] = (),
) -> str:
    """Prometheus exposition text; `gauges` supplies store sizes read at scrape time, and
    `families` (name, type, help, value) the unlabelled values of other parts (the link)."""
    lines: list[str] = []
    dists = sorted(metrics.distributions.items())

    def per_dist(attr: str) -> list[tuple[str, float]]:
        return [(f'{{distribution="{_escape(d)}"}}', getattr(s, attr)) for d, s in dists]

    _family(
        lines,
        "edge_info",
        "gauge",
        "Identity of this edge agent.",
        [(f'{{name="{_escape(name)}",pop="{_escape(pop)}"}}', 1)],
    )
    _family(lines, "edge_config_version", "gauge", "Config version being served (0: none).", [("", version)])
    _family(lines, "edge_start_time_seconds", "gauge", "Unix time the agent started.", [("", metrics.started)])
    _family(
        lines,
        "edge_requests_total",
        "counter",
        "Viewer requests by distribution and cache result.",
        [
            (f'{{distribution="{_escape(d)}",result="{r}"}}', getattr(s, "pass_" if r == "pass" else r))
            for d, s in dists
            for r in RESULTS
        ],
    )
    _family(
        lines,
        "edge_responses_total",
        "counter",
        "Viewer responses by distribution and status class.",
        [
            (f'{{distribution="{_escape(d)}",code="{c}xx"}}', getattr(s, f"status_{c}xx"))
            for d, s in dists
            for c in (2, 3, 4, 5)
        ],
    )
    _family(lines, "edge_response_bytes_total", "counter", "Body bytes sent to viewers.", per_dist("bytes_out"))
    _family(lines, "edge_origin_requests_total", "counter", "Requests sent to origins.", per_dist("origin_requests"))
    _family(
        lines,
        "edge_origin_failures_total",
        "counter",
        "Origin requests that failed (connection error, timeout).",
        per_dist("origin_failures"),
    )
    _family(lines, "edge_origin_bytes_total", "counter", "Body bytes received from origins.", per_dist("origin_bytes"))
    _family(
        lines,
        "edge_collapsed_requests_total",
        "counter",
        "Misses served from another request's origin fetch.",
        per_dist("collapsed"),
    )
    _family(
        lines,
        "edge_stale_served_total",
        "counter",
        "Stale objects served (stale-while-revalidate, stale-if-error, origin down).",
        per_dist("stale_served"),
    )
    _family(
        lines,
        "edge_signed_refused_total",
        "counter",
        "Requests refused (403) on a behavior that trusts key groups: no valid signed URL or cookie.",
        per_dist("signed_refused"),
    )
    _family(lines, "edge_connections_open", "gauge", "Open viewer connections.", [("", metrics.connections_open)])
    _family(lines, "edge_connections_total", "counter", "Viewer connections accepted.", [("", metrics.connections_total)])
    _family(lines, "edge_bad_requests_total", "counter", "Malformed viewer requests (400).", [("", metrics.bad_requests)])
    _family(
        lines, "edge_unknown_host_total", "counter", "Requests for no known distribution (404).", [("", metrics.unknown_host)]
    )
    _family(lines, "edge_config_applied_total", "counter", "Config documents swapped in.", [("", metrics.config_applied)])
    _family(lines, "edge_config_rejected_total", "counter", "Config documents refused.", [("", metrics.config_rejected)])
    _family(
        lines, "edge_invalidations_total", "counter", "Invalidations applied.", [("", metrics.invalidations_applied)]
    )
    _family(
        lines,
        "edge_invalidated_objects_total",
        "counter",
        "Cached objects removed by invalidations.",
        [("", metrics.objects_invalidated)],
    )
    for gauge, value in sorted(gauges().items()):
        _family(lines, f"edge_{gauge}", "gauge", f"Cache store {gauge.replace('_', ' ')}.", [("", value)])
    for family, kind, help_text, number in families:
        _family(lines, family, kind, help_text, [("", number)])
    return "\n".join(lines) + "\n"
