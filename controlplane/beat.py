"""Celery beat that shows it is alive: a liveness file touched after every scheduler pass.

A container health check cannot ask beat anything without the broker, and the schedule file
is a poor proxy: the persistent scheduler rewrites it only every `sync_every` (180 s). So this
scheduler touches `<schedule file>.alive` after each pass and wakes at least every
MAX_INTERVAL seconds even when nothing is due; `python -m controlplane.beat <schedule file>`
fails once the file is older than STALE_AFTER, i.e. when beat is dead or stuck in a pass.

Run beat with `--scheduler controlplane.beat:LivenessScheduler`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from celery.beat import PersistentScheduler

# The longest beat sleeps between passes; a pass that sends a task to a dead broker waits for
# the publish retries, so the bound allows a few intervals before calling beat unhealthy.
MAX_INTERVAL = 10.0
STALE_AFTER = 3 * MAX_INTERVAL


def liveness_path(schedule_filename: str | Path) -> Path:
    """Beside the schedule file, so that beat's --schedule alone says where both live."""
    return Path(f"{schedule_filename}.alive")


class LivenessScheduler(PersistentScheduler):
    """PersistentScheduler that proves each completed pass by touching the liveness file."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # beat_max_loop_interval or --max-interval may ask for longer; STALE_AFTER depends on this cap.
        self.max_interval = min(self.max_interval, MAX_INTERVAL)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        liveness_path(self.schedule_filename).touch()
        return interval


def staleness(schedule_filename: str | Path, now: float | None = None) -> str | None:
    """Why beat looks dead, or None when its last pass is recent enough."""
    path = liveness_path(schedule_filename)
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return f"{path} does not exist: beat has not completed a pass (is it run with -S {__name__}:LivenessScheduler?)"
    if age > STALE_AFTER:
        return f"{path} is {age:.0f} s old (limit {STALE_AFTER:.0f} s): beat is not ticking"
    return None


def main(argv: list[str] | None = None) -> int:
    """Health check entry point: exit status 0 when beat ticked recently, 1 with the reason otherwise."""
    parser = argparse.ArgumentParser(prog="python -m controlplane.beat", description=main.__doc__)
    parser.add_argument("schedule", help="the schedule file beat was started with (--schedule)")
    problem = staleness(parser.parse_args(argv).schedule)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
