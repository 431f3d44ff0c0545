"""Stats intervals, latency buckets and the on-disk report buffer, without sockets."""

from __future__ import annotations

import json
from pathlib import Path

from edgeagent.stats import (
    BLOCKED,
    CLIENT_ABORT,
    EDGE,
    HIT,
    LATENCY_BUCKETS,
    MISS,
    StatsBuffer,
    StatsCollector,
    interval_start,
    latency_bucket,
)

T0 = 1_764_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def report_of(dist: str = "E1", requests: int = 1, start: int = int(T0)) -> dict[str, object]:
    counts = {
        "requests": requests, "hits": requests, "misses": 0, "bytes_out": 10 * requests, "bytes_in": 0,
        "status_2xx": requests, "status_3xx": 0, "status_4xx": 0, "status_5xx": 0, "blocked": 0,
        "latency_ms_buckets": [requests] + [0] * (LATENCY_BUCKETS - 1),
    }  # fmt: skip
    return {"interval_start": start, "interval_seconds": 10, "distributions": {dist: counts}}


def test_there_are_fourteen_buckets_and_each_bound_belongs_to_its_own_bucket() -> None:
    assert LATENCY_BUCKETS == 14
    assert latency_bucket(0.0) == 0
    assert latency_bucket(0.001) == 0
    assert latency_bucket(0.0011) == 1
    assert latency_bucket(0.002) == 1
    assert latency_bucket(0.003) == 2
    assert latency_bucket(0.25) == 7
    assert latency_bucket(0.2501) == 8
    assert latency_bucket(10.0) == 12
    assert latency_bucket(10.001) == 13
    assert latency_bucket(3600.0) == 13


def test_intervals_are_aligned_to_multiples_of_ten_seconds_of_unix_time() -> None:
    assert interval_start(T0) == T0
    assert interval_start(T0 + 9.999) == T0
    assert interval_start(T0 + 10) == T0 + 10
    clock = Clock(T0 + 7.5)
    collector = StatsCollector(clock=clock)
    assert collector.current_start == T0
    collector.record("E1", 200, HIT, 100, 0.0005)
    assert collector.rotate(T0 + 9.99) is None
    report = collector.rotate(T0 + 23.0)
    assert report is not None
    assert report["interval_start"] == T0 and report["interval_seconds"] == 10
    assert collector.current_start == T0 + 20


def test_it_counts_requests_outcomes_statuses_bytes_and_latency_per_distribution() -> None:
    collector = StatsCollector(clock=Clock(T0))
    collector.record("E1", 200, HIT, 1000, 0.0004)
    collector.record("E1", 200, HIT, 1000, 0.0004)
    collector.record("E1", 304, MISS, 0, 0.030)
    collector.record("E1", 200, MISS, 5000, 0.3)
    collector.count_origin_bytes("E1", 4800)
    collector.record("E1", 403, BLOCKED, 60, 0.0001)
    collector.record("E1", 502, EDGE, 70, 12.0)
    collector.record("E2", 404, MISS, 20, 0.002)
    collector.count_origin_bytes("E2", 20)
    report = collector.rotate(T0 + 10)
    assert report is not None
    e1 = report["distributions"]["E1"]
    assert e1 == {
        "requests": 6, "hits": 2, "misses": 2, "bytes_out": 7130, "bytes_in": 4800,
        "status_2xx": 3, "status_3xx": 1, "status_4xx": 1, "status_5xx": 1, "blocked": 1,
        "client_aborts": 0, "lost_estimate": 0,
        "latency_ms_buckets": [3, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1],
    }  # fmt: skip
    e2 = report["distributions"]["E2"]
    assert (e2["requests"], e2["misses"], e2["status_4xx"], e2["latency_ms_buckets"][1]) == (1, 1, 1, 1)


def test_an_interval_without_traffic_makes_no_report() -> None:
    collector = StatsCollector(clock=Clock(T0))
    assert collector.rotate(T0 + 10) is None
    collector.record("E1", 200, HIT, 1, 0.0)
    report = collector.rotate(T0 + 20)
    assert report is not None and report["interval_start"] == T0 + 10
    assert collector.flush() is None


def test_closed_intervals_go_to_the_buffer_and_only_closed_ones_are_pending(tmp_path: Path) -> None:
    buffer = StatsBuffer(tmp_path / "stats-buffer", max_reports=10)
    collector = StatsCollector(buffer, clock=Clock(T0))
    collector.record("E1", 200, HIT, 1, 0.0)
    collector.rotate(T0 + 10)
    collector.record("E1", 200, HIT, 1, 0.0)
    collector.rotate(T0 + 20)
    collector.record("E1", 200, HIT, 1, 0.0)
    assert buffer.pending(collector.current_start) == [T0, T0 + 10]
    assert sorted(p.name for p in (tmp_path / "stats-buffer").iterdir()) == [
        f"{int(T0)}.json", f"{int(T0) + 10}.json", "running"]  # fmt: skip
    loaded = buffer.load(int(T0))
    assert loaded is not None and loaded["distributions"]["E1"]["requests"] == 1
    buffer.remove(int(T0))
    assert buffer.pending(collector.current_start) == [T0 + 10]


def test_the_buffer_is_bounded_and_drops_the_oldest_first_counting_them(tmp_path: Path) -> None:
    buffer = StatsBuffer(tmp_path, max_reports=3)
    for i in range(5):
        buffer.put(report_of(start=int(T0) + 10 * i))
    assert len(buffer) == 3
    assert buffer.dropped == 2
    assert buffer.pending(int(T0) + 1000) == [T0 + 20, T0 + 30, T0 + 40]
    assert not (tmp_path / f"{int(T0)}.json").exists()


def test_the_buffer_survives_a_restart_and_a_smaller_bound_applies_on_load(tmp_path: Path) -> None:
    first = StatsBuffer(tmp_path, max_reports=10)
    for i in range(4):
        first.put(report_of(requests=i + 1, start=int(T0) + 10 * i))
    (tmp_path / ".123.json.99.tmp").write_text("{half")
    again = StatsBuffer(tmp_path, max_reports=10)
    assert again.pending(int(T0) + 1000) == [T0, T0 + 10, T0 + 20, T0 + 30]
    loaded = again.load(int(T0) + 30)
    assert loaded is not None and loaded["distributions"]["E1"]["requests"] == 4
    assert not (tmp_path / ".123.json.99.tmp").exists()
    smaller = StatsBuffer(tmp_path, max_reports=2)
    assert smaller.pending(int(T0) + 1000) == [T0 + 20, T0 + 30]
    assert smaller.dropped == 2


def test_a_corrupt_report_file_is_dropped_and_counted(tmp_path: Path) -> None:
    buffer = StatsBuffer(tmp_path, max_reports=10)
    buffer.put(report_of(start=int(T0)))
    (tmp_path / f"{int(T0)}.json").write_text('{"interval_start": 17')
    assert buffer.load(int(T0)) is None
    assert buffer.dropped == 1
    assert len(buffer) == 0 and not (tmp_path / f"{int(T0)}.json").exists()


def test_a_restart_within_an_interval_adds_to_the_flushed_part_instead_of_sending_it_twice(tmp_path: Path) -> None:
    clock = Clock(T0 + 3)
    before = StatsCollector(StatsBuffer(tmp_path, 10), clock=clock)
    before.record("E1", 200, HIT, 100, 0.0)
    before.record("E1", 200, MISS, 100, 0.02)
    before.count_origin_bytes("E1", 100)
    before.flush()
    clock.now = T0 + 6
    buffer = StatsBuffer(tmp_path, 10)
    after = StatsCollector(buffer, clock=clock)
    assert buffer.pending(after.current_start) == []
    after.record("E1", 200, HIT, 100, 0.0)
    after.record("E2", 500, MISS, 10, 0.0)
    after.count_origin_bytes("E2", 10)
    after.rotate(T0 + 10)
    assert buffer.pending(after.current_start) == [T0]
    merged = json.loads((tmp_path / f"{int(T0)}.json").read_text())
    assert merged["distributions"]["E1"]["requests"] == 3
    assert merged["distributions"]["E1"]["hits"] == 2
    assert merged["distributions"]["E1"]["bytes_in"] == 100
    assert merged["distributions"]["E1"]["latency_ms_buckets"][0] == 2
    assert merged["distributions"]["E2"]["status_5xx"] == 1


def test_counters_kept_by_a_caller_count_into_whichever_interval_is_current() -> None:
    collector = StatsCollector(clock=Clock(T0))
    held = collector.counters("E1")
    held.count(200, HIT, 10, 0.0)
    first = collector.rotate(T0 + 10)
    held.count(404, MISS, 5, 0.004)
    collector.record("E1", 200, HIT, 10, 0.0)
    second = collector.rotate(T0 + 20)
    assert first is not None and second is not None
    assert first["distributions"]["E1"]["requests"] == 1
    assert second["distributions"]["E1"]["requests"] == 2
    assert second["distributions"]["E1"]["status_4xx"] == 1
    assert second["distributions"]["E1"]["latency_ms_buckets"][:3] == [1, 0, 1]
    assert collector.counters("E1") is held and held.empty


def test_a_fast_path_hit_counts_as_a_hit_in_the_latency_bucket_it_took() -> None:
    collector = StatsCollector(clock=Clock(T0))
    collector.counters("E1").fast_hit(200, 1024, 0.0004)
    collector.counters("E1").fast_hit(301, 0, 0.003)
    report = collector.rotate(T0 + 10)
    assert report is not None
    e1 = report["distributions"]["E1"]
    assert (e1["requests"], e1["hits"], e1["bytes_out"], e1["status_2xx"], e1["status_3xx"]) == (2, 2, 1024, 1, 1)
    assert e1["latency_ms_buckets"] == [1, 0, 1] + [0] * 11


def test_a_response_the_viewer_abandoned_is_a_client_abort_in_no_status_class() -> None:
    collector = StatsCollector(clock=Clock(T0))
    collector.record("E1", 200, HIT, 1000, 0.001)
    collector.record("E1", CLIENT_ABORT, MISS, 65536, 2.0)
    report = collector.rotate(T0 + 10)
    assert report is not None
    e1 = report["distributions"]["E1"]
    assert (e1["requests"], e1["client_aborts"], e1["status_2xx"], e1["bytes_out"]) == (2, 1, 1, 66536)
    assert e1["status_2xx"] + e1["status_3xx"] + e1["status_4xx"] + e1["status_5xx"] + e1["client_aborts"] == 2


def test_each_checkpoint_saves_the_current_interval_so_a_kill_loses_only_the_last_second(tmp_path: Path) -> None:
    clock = Clock(T0 + 1)
    killed = StatsCollector(StatsBuffer(tmp_path, 10), clock=clock)
    for second in range(1, 4):
        clock.now = T0 + second
        for _ in range(second):
            killed.record("E1", 200, HIT, 10, 0.0)
        killed.checkpoint()
    killed.record("E1", 200, HIT, 10, 0.0)  # after the last checkpoint: lost with the process
    saved = json.loads((tmp_path / f"{int(T0)}.json").read_text())
    assert saved["distributions"]["E1"]["requests"] == 1 + 2 + 3
    # No flush: the process was killed. The next run finds the marker.
    clock.now = T0 + 5
    buffer = StatsBuffer(tmp_path, 10)
    after = StatsCollector(buffer, clock=clock)
    assert after.unclean_stops == 1
    after.record("E1", 200, HIT, 10, 0.0)
    report = after.rotate(T0 + 10)
    assert report is not None
    e1 = json.loads((tmp_path / f"{int(T0)}.json").read_text())["distributions"]["E1"]
    assert e1["requests"] == 1 + 2 + 3 + 1
    assert e1["lost_estimate"] == 3  # the requests of the last second saved before the kill
    after.flush()
    assert not (tmp_path / "running").exists()
    assert StatsCollector(StatsBuffer(tmp_path, 10), clock=clock).unclean_stops == 0  # that stop was clean


def test_an_idle_edge_checkpoints_without_writing(tmp_path: Path) -> None:
    collector = StatsCollector(StatsBuffer(tmp_path, 10), clock=Clock(T0))
    collector.checkpoint()
    marker = tmp_path / "running"
    inode = marker.stat().st_ino  # every write is a rename of a new file: a new inode
    for _ in range(3):
        collector.checkpoint()
    assert marker.stat().st_ino == inode
    assert [p.name for p in tmp_path.iterdir()] == ["running"]
    collector.record("E1", 200, HIT, 10, 0.0)
    collector.checkpoint()
    assert marker.stat().st_ino != inode  # the check above can fail


def test_a_report_buffered_before_the_new_counters_merges_with_them_as_zero(tmp_path: Path) -> None:
    old = report_of(requests=2)
    for name in ("client_aborts", "lost_estimate"):
        old["distributions"]["E1"].pop(name, None)  # type: ignore[attr-defined]
    (tmp_path / f"{int(T0)}.json").write_text(json.dumps(old))
    collector = StatsCollector(StatsBuffer(tmp_path, 10), clock=Clock(T0 + 4))
    collector.record("E1", CLIENT_ABORT, HIT, 5, 0.0)
    collector.rotate(T0 + 10)
    merged = json.loads((tmp_path / f"{int(T0)}.json").read_text())["distributions"]["E1"]
    assert (merged["requests"], merged["client_aborts"], merged["lost_estimate"]) == (3, 1, 0)
