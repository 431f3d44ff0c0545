"""The stats report an edge sends for each closed interval (docs/edge-config.md)."""

from __future__ import annotations

# The counters of one distribution in one report, in the order the edge writes them.
# `client_aborts` are responses the viewer abandoned before their last byte: counted in
# `requests`, in no status class. `lost_estimate` is what an edge that stopped without
# saving its counts (SIGKILL, a crash) believes it lost: the requests of the last second
# it saved, since it saves every STATS_CHECKPOINT_SECONDS.
COUNTER_NAMES = (
    "requests", "hits", "misses", "bytes_out", "bytes_in",
    "status_2xx", "status_3xx", "status_4xx", "status_5xx", "blocked",
    "client_aborts", "lost_estimate",
)  # fmt: skip

# Requests admitted on a signed URL or signed cookies, per public key id (signed_urls.PUBLIC_KEY_ID):
# an optional object beside the counters, left out when empty; at most this many keys per
# distribution and report (a report holds only keys the distribution's behaviors trust).
SIGNED_REQUESTS = "signed_requests"
MAX_SIGNING_KEYS = 64

# Upper bounds (inclusive) of the latency buckets, in ms; one more bucket takes the rest.
LATENCY_BOUNDS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LATENCY_BUCKETS = len(LATENCY_BOUNDS_MS) + 1

# Edges count traffic in intervals of this length aligned to Unix time; the control plane
# accepts no other length, so one window can never be re-sent as several shorter ones.
STATS_INTERVAL_SECONDS = 10
STATS_INTERVALS = frozenset({STATS_INTERVAL_SECONDS})
# An edge writes the counts of its current interval to disk this often, so a crash loses at
# most this much of them.
STATS_CHECKPOINT_SECONDS = 1
# One counter of one interval report: 2**48 bytes in 10 s is 28 TB/s, beyond any edge, and an
# hour row sums at most 360 reports of one edge, so it stays far within limits.MAX_DB_INTEGER.
MAX_STATS_COUNTER = 2**48 - 1


def interval_start(now: float) -> int:
    """The start of the interval `now` falls in."""
    return int(now) // STATS_INTERVAL_SECONDS * STATS_INTERVAL_SECONDS
