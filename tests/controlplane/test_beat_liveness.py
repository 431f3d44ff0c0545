"""Beat's liveness file (controlplane/beat.py), with a real `celery beat` process.

The failure it exists for: docker-compose judged beat by the schedule file's age (< 120 s),
which the persistent scheduler rewrites only every 180 s, so beat flapped toward unhealthy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.beat import MAX_INTERVAL, STALE_AFTER, liveness_path, main, staleness
from tests.e2e.cluster import ROOT, wait_for


@pytest.fixture
def idle_beat(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Beat with nothing due for an hour and asking to sleep 300 s: only the cap wakes it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_", "CELERY_"))}
    env.update(DEBUG="true", CDN_VAR_DIR=str(tmp_path / "var"), CDN_FLEET_TICK_SECONDS="3600", PYTHONUNBUFFERED="1")
    schedule = tmp_path / "celerybeat-schedule"
    log_path = tmp_path / "beat.log"
    with open(log_path, "ab") as log:
        beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "controlplane", "beat", "--loglevel", "INFO",
                                 "--scheduler", "controlplane.beat:LivenessScheduler", "--max-interval", "300",
                                 "--schedule", str(schedule)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield schedule, log_path
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        try:
            beat.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(beat.pid, signal.SIGKILL)
            beat.wait(5)


def test_it_refreshes_the_liveness_file_within_the_bound_while_nothing_is_due(idle_beat: tuple[Path, Path]) -> None:
    schedule, log = idle_beat
    alive = liveness_path(schedule)
    first = wait_for("beat's first pass", lambda: alive.exists() and alive.stat().st_mtime, timeout=30)
    assert main([str(schedule)]) == 0
    later = wait_for("beat's next pass", lambda: alive.stat().st_mtime > first and alive.stat().st_mtime,
                     timeout=MAX_INTERVAL + 5, interval=0.5)
    assert later - first <= MAX_INTERVAL + 2, log.read_text()
    assert later - first < STALE_AFTER


def test_it_calls_beat_dead_once_the_file_is_older_than_the_bound(tmp_path: Path) -> None:
    schedule = tmp_path / "celerybeat-schedule"
    assert "does not exist" in str(staleness(schedule))
    assert main([str(schedule)]) == 1
    liveness_path(schedule).touch()
    mtime = liveness_path(schedule).stat().st_mtime
    assert staleness(schedule, now=mtime + STALE_AFTER - 1) is None
    assert "not ticking" in str(staleness(schedule, now=mtime + STALE_AFTER + 1))
    os.utime(liveness_path(schedule), (mtime - STALE_AFTER - 1, mtime - STALE_AFTER - 1))
    assert main([str(schedule)]) == 1
