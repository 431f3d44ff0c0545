"""Per-distribution traffic stats for the control plane, in fixed 10 s intervals.

`StatsCollector.record` runs once per viewer response, on the hit fast path too, so it is
a dict lookup and a few integer adds into preallocated slots. Intervals are aligned to
multiples of 10 s of Unix time, so `(edge, interval_start)` is a stable idempotency key
however often a report is retried. Closed intervals go to `StatsBuffer`, one small JSON
file each under the cache dir, so an outage of the control plane (or a restart of the
edge) loses nothing until the bound is reached, and then the oldest go first.

The current interval is saved into its file every second too (a checkpoint, without fsync:
it is there for a process that dies, which the kernel outlives), so an edge killed with
SIGKILL loses at most the last second of counts. A `running` marker beside the files says
an edge is up and holds the requests of its last saved second; an edge that finds it at
start stopped without saving, logs so, and reports that second's requests as
`lost_estimate`: the loss is a number the control plane shows, never silent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cdncontract.stats import (COUNTER_NAMES, LATENCY_BOUNDS_MS, LATENCY_BUCKETS, SIGNED_REQUESTS,
                               STATS_CHECKPOINT_SECONDS, interval_start)
from cdncontract.stats import STATS_INTERVAL_SECONDS as INTERVAL_SECONDS

from .files import write_atomically

log = logging.getLogger("edgeagent.stats")

_BOUNDS_S = tuple(bound / 1000 for bound in LATENCY_BOUNDS_MS)
_FIRST_BOUND_S = _BOUNDS_S[0]

# What answered a request, as `record` takes it: an int indexes a preallocated list.
EDGE = 0  # answered by the edge itself without the cache or an origin (redirects, errors)
HIT = 1  # Hit or RefreshHit
MISS = 2  # went to the origin
BLOCKED = 3  # 403 for a method or viewer protocol policy

# The status `record` takes for a response the viewer abandoned (CloudFront logs 000).
CLIENT_ABORT = 0

_REPORT_FILE = re.compile(r"(\d+)\.json")
RUNNING_MARKER = "running"


def latency_bucket(seconds: float) -> int:
    """Index of the bucket a time to last byte falls in; a bound belongs to its own bucket."""
    return bisect_left(_BOUNDS_S, seconds)


class Counters:
    """One distribution's counters for the current interval, reset in place when it closes.

    The object lives as long as the collector, so a caller on the hit fast path may keep a
    reference to it (next to its routing memo) and skip the lookup by distribution id.
    """

    __slots__ = ("requests", "outcomes", "bytes_out", "bytes_in", "statuses", "latency", "fast_hits", "lost_estimate",
                 "signed_requests")

    def __init__(self) -> None:
        self.requests = 0
        self.outcomes = [0, 0, 0, 0]
        self.bytes_out = 0
        self.bytes_in = 0
        # Indexed by status // 100; [0] counts client aborts (CLIENT_ABORT), and 1xx and
        # anything odd an origin sends are not reported.
        self.statuses = [0] * 10
        self.latency = [0] * LATENCY_BUCKETS
        # Fast-path hits by status // 100, folded into the other counters only when read.
        self.fast_hits = [0] * 10
        self.lost_estimate = 0
        # Requests admitted by a signature, per public key id (signed URLs and cookies).
        self.signed_requests: dict[str, int] = {}

    def signed(self, key_id: str) -> None:
        """One request admitted on a signature by `key_id` (counted as a request by `count` or `fast_hit`)."""
        self.signed_requests[key_id] = self.signed_requests.get(key_id, 0) + 1

    def count(self, status: int, outcome: int, bytes_out: int, seconds: float) -> None:
        """One finished response; `seconds` is the time to its last byte."""
        self.requests += 1
        self.outcomes[outcome] += 1
        self.statuses[status // 100 % 10] += 1
        self.bytes_out += bytes_out
        self.latency[bisect_left(_BOUNDS_S, seconds)] += 1

    def fast_hit(self, status: int, bytes_out: int, seconds: float) -> None:
        """A hit answered by the synchronous fast path: three adds rather than five.

        `seconds` is the time it took, measured like every other response's; the request
        and status counts are folded into the other counters only when read.
        """
        self.fast_hits[status // 100 % 10] += 1
        self.bytes_out += bytes_out
        # Nearly every fast hit is in the first bucket: no search for those.
        self.latency[0 if seconds <= _FIRST_BOUND_S else bisect_left(_BOUNDS_S, seconds)] += 1

    @property
    def empty(self) -> bool:
        return self.requests == 0 and self.bytes_in == 0 and not any(self.fast_hits) and not self.lost_estimate

    def reset(self) -> None:
        self.requests = 0
        self.outcomes[:] = [0, 0, 0, 0]
        self.bytes_out = 0
        self.bytes_in = 0
        self.statuses[:] = [0] * 10
        self.latency[:] = [0] * LATENCY_BUCKETS
        self.fast_hits[:] = [0] * 10
        self.lost_estimate = 0
        self.signed_requests = {}

    def as_report(self) -> dict[str, Any]:
        fast = self.fast_hits
        fast_total = sum(fast)
        statuses = [a + b for a, b in zip(self.statuses, fast)]
        outcomes = self.outcomes
        report: dict[str, Any] = {
            "requests": self.requests + fast_total,
            "hits": outcomes[HIT] + fast_total,
            "misses": outcomes[MISS],
            "bytes_out": self.bytes_out,
            "bytes_in": self.bytes_in,
            "status_2xx": statuses[2],
            "status_3xx": statuses[3],
            "status_4xx": statuses[4],
            "status_5xx": statuses[5],
            "blocked": outcomes[BLOCKED],
            "client_aborts": statuses[CLIENT_ABORT],
            "lost_estimate": self.lost_estimate,
            "latency_ms_buckets": list(self.latency),
        }
        if self.signed_requests:
            report[SIGNED_REQUESTS] = dict(sorted(self.signed_requests.items()))
        return report


def merge_reports(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Add `other`'s counts to `into`: two parts of one interval become one report."""
    dists: dict[str, dict[str, Any]] = into["distributions"]
    for dist_id, counts in other["distributions"].items():
        mine = dists.get(dist_id)
        if mine is None:
            # A file written before an upgrade may lack the newer counters.
            dists[dist_id] = {name: counts.get(name, 0) for name in COUNTER_NAMES} | {
                "latency_ms_buckets": list(counts["latency_ms_buckets"])
            }
            if counts.get(SIGNED_REQUESTS):
                dists[dist_id][SIGNED_REQUESTS] = dict(counts[SIGNED_REQUESTS])
            continue
        for name in COUNTER_NAMES:
            mine[name] = mine.get(name, 0) + counts.get(name, 0)
        mine["latency_ms_buckets"] = [a + b for a, b in zip(mine["latency_ms_buckets"], counts["latency_ms_buckets"])]
        if counts.get(SIGNED_REQUESTS):
            signed = mine.setdefault(SIGNED_REQUESTS, {})
            for key_id, n in counts[SIGNED_REQUESTS].items():
                signed[key_id] = signed.get(key_id, 0) + n
    return into


# ---- On-disk buffer of closed intervals ----


class StatsBuffer:
    """Reports waiting for the control plane, one `<interval_start>.json` file each."""

    def __init__(self, directory: Path, max_reports: int) -> None:
        self.directory = directory
        self.max_reports = max(1, max_reports)
        self.dropped = 0
        directory.mkdir(parents=True, exist_ok=True)
        starts: list[int] = []
        for entry in directory.iterdir():
            match = _REPORT_FILE.fullmatch(entry.name)
            if match is not None:
                starts.append(int(match.group(1)))
            elif entry.name.startswith("."):
                entry.unlink(missing_ok=True)  # a write cut short by a crash
        self._starts = sorted(starts)
        self._enforce_bound()

    def __len__(self) -> int:
        return len(self._starts)

    def _path(self, start: int) -> Path:
        return self.directory / f"{start}.json"

    def put(self, report: dict[str, Any], durable: bool = True) -> None:
        """Store an interval's counts; a later part of an unsent interval is added to the first.

        `durable=False` (the per-second checkpoint) skips the fsync (files.write_atomically).
        """
        start = int(report["interval_start"])
        if start in self._starts:
            earlier = self.load(start)
            if earlier is not None:
                report = merge_reports(earlier, report)
        write_atomically(self._path(start), json.dumps(report, separators=(",", ":")).encode(), durable=durable)
        if start not in self._starts:
            self._starts.append(start)
            self._starts.sort()
        self._enforce_bound()

    def _enforce_bound(self) -> None:
        while len(self._starts) > self.max_reports:
            oldest = self._starts.pop(0)
            self._path(oldest).unlink(missing_ok=True)
            self.dropped += 1
            log.warning("stats buffer full (%d reports): dropped the interval starting at %d", self.max_reports, oldest)

    def pending(self, before: int) -> list[int]:
        """Interval starts waiting to be sent, oldest first, among those older than `before`."""
        return [start for start in self._starts if start < before]

    def load(self, start: int) -> dict[str, Any] | None:
        """The stored report, or None (and the file dropped) when it is unreadable."""
        try:
            report = json.loads(self._path(start).read_bytes())
            if not isinstance(report, dict) or not isinstance(report.get("distributions"), dict):
                raise ValueError("not a stats report")
            return report
        except (OSError, ValueError) as exc:
            log.error("dropping unreadable stats report %s: %s", self._path(start), exc)
            self.remove(start)
            self.dropped += 1
            return None

    def remove(self, start: int) -> None:
        if start in self._starts:
            self._starts.remove(start)
        self._path(start).unlink(missing_ok=True)


# ---- Collector ----


class StatsCollector:
    """Counts the current interval, saves it every second and hands closed ones to the buffer."""

    def __init__(self, buffer: StatsBuffer | None = None, clock: Callable[[], float] = time.time) -> None:
        self.buffer = buffer
        self.clock = clock
        self.current_start = interval_start(clock())
        self._counters: dict[str, Counters] = {}
        self.unclean_stops = 0
        self._last_saved: dict[str, int] = {}
        if buffer is not None:
            self._recover_marker(buffer.directory / RUNNING_MARKER)

    def _recover_marker(self, marker: Path) -> None:
        """At start: a marker left behind means the last run died without saving its counts."""
        try:
            saved = json.loads(marker.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            saved = {}
            log.error("unreadable stats marker %s (%s): the loss of the last run is unknown", marker, exc)
        self.unclean_stops += 1
        lost = saved.get("last_second") if isinstance(saved, dict) else None
        lost = {d: n for d, n in lost.items() if isinstance(n, int) and n > 0} if isinstance(lost, dict) else {}
        for dist_id, requests in lost.items():
            self.counters(dist_id).lost_estimate += requests
        log.warning(
            "the last run stopped without saving its stats (killed or crashed): the counts after its last "
            "checkpoint are lost, at most %ds, about %d requests (reported as lost_estimate)",
            STATS_CHECKPOINT_SECONDS, sum(lost.values()),
        )  # fmt: skip

    def counters(self, distribution_id: str) -> Counters:
        counters = self._counters.get(distribution_id)
        if counters is None:
            counters = self._counters[distribution_id] = Counters()
        return counters

    def record(self, distribution_id: str, status: int, outcome: int, bytes_out: int, seconds: float) -> None:
        """Count one finished response; `seconds` is the time to its last byte.

        `status` is CLIENT_ABORT for a response the viewer abandoned.
        """
        counters = self._counters.get(distribution_id)
        if counters is None:
            counters = self._counters[distribution_id] = Counters()
        counters.count(status, outcome, bytes_out, seconds)

    def count_origin_bytes(self, distribution_id: str, size: int) -> None:
        """Bytes read from an origin, counted per fetch rather than per viewer response:
        one collapsed fetch serves many viewers, and a background refresh serves none."""
        counters = self._counters.get(distribution_id)
        if counters is None:
            counters = self._counters[distribution_id] = Counters()
        counters.bytes_in += size

    def count_signed(self, distribution_id: str, key_id: str) -> None:
        """A request admitted on a signature by `key_id` (signed URLs and cookies)."""
        self.counters(distribution_id).signed(key_id)

    def rotate(self, now: float | None = None) -> dict[str, Any] | None:
        """Close the current interval once `now` is past it; returns the closed report."""
        start = interval_start(self.clock() if now is None else now)
        if start <= self.current_start:
            return None
        report = self._close(durable=True)
        self.current_start = start
        return report

    def checkpoint(self) -> dict[str, Any] | None:
        """Save the counts of the current interval so far (every second, without fsync)."""
        return self._close(durable=False)

    def flush(self) -> dict[str, Any] | None:
        """Shutdown: buffer what the current interval holds so far, and say the stop was clean.

        A restart within the same interval adds its own counts to this file rather than
        sending a second report with the same key, which the control plane would ignore.
        """
        report = self._close(durable=True)
        if self.buffer is not None:
            (self.buffer.directory / RUNNING_MARKER).unlink(missing_ok=True)
        return report

    def _close(self, durable: bool) -> dict[str, Any] | None:
        active = sorted((d, c) for d, c in self._counters.items() if not c.empty)
        report = None
        if active:
            report = {
                "interval_start": self.current_start,
                "interval_seconds": INTERVAL_SECONDS,
                "distributions": {dist_id: counters.as_report() for dist_id, counters in active},
            }
            for _, counters in active:
                counters.reset()
        if self.buffer is not None:
            try:
                if report is not None:
                    self.buffer.put(report, durable=durable)
                self._mark_running(report)
            except OSError as exc:
                self.buffer.dropped += 1
                log.error("could not buffer the stats of interval %d: %s", self.current_start, exc)
        return report

    def _mark_running(self, report: dict[str, Any] | None) -> None:
        """The marker a later start reads if this run dies before `flush`: the last saved second."""
        assert self.buffer is not None
        saved = {d: c["requests"] for d, c in report["distributions"].items()} if report is not None else {}
        marker = self.buffer.directory / RUNNING_MARKER
        if saved == self._last_saved and marker.exists():
            return  # an idle edge writes nothing
        write_atomically(marker, json.dumps({"last_second": saved}, separators=(",", ":")).encode(), durable=False)
        self._last_saved = saved

    async def run(self) -> None:
        """Save the counts every second and close each interval as its end passes; cancelled on shutdown."""
        while True:
            now = self.clock()
            step = STATS_CHECKPOINT_SECONDS
            await asyncio.sleep(max(0.0, (int(now) // step + 1) * step - now) + 0.001)
            if interval_start(self.clock()) > self.current_start:
                self.rotate()
            else:
                self.checkpoint()
