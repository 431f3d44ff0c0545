"""The access log's buffer and writer on their own: batches, the bound, the page-cache sync."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edgeagent import accesslog
from edgeagent.accesslog import BATCH_LINES, AccessLog, Line


FIXER = AccessLog(Path("unused"), "lab", max_bytes=1, max_files=1, buffer_records=1)


def line(n: int, dist: str | None = "E0000000000001") -> tuple[Line, str | None]:
    fixed = FIXER.fixed(dist, "GET", "d.example", f"/o/{n}", None, 200, 10, "Hit", "http", "1.1", None)
    return Line(1_700_000_000.0 + n, "127.0.0.1", f"req-{n:x}", 0.0, fixed), dist


def written_ids(path: Path) -> list[str]:
    return [json.loads(raw)["x-edge-request-id"] for raw in path.read_bytes().splitlines()]


def test_lines_are_encoded_per_batch_and_written_in_order_across_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accesslog, "SYNC_BYTES", 4096)  # several syncs for a few hundred lines
    log = AccessLog(tmp_path / "access.log", "lab", max_bytes=1 << 30, max_files=2, buffer_records=10_000)

    async def write() -> None:
        log.start(asyncio.get_running_loop())
        for n in range(5 * BATCH_LINES + 3):
            log.add(*line(n))
        assert len(log.batch) == 3  # full batches were sealed as they filled, the rest waits
        log.stop()
        await asyncio.to_thread(log.close)

    asyncio.run(write())
    assert written_ids(tmp_path / "access.log") == [f"req-{n:x}" for n in range(5 * BATCH_LINES + 3)]
    assert log.written == 5 * BATCH_LINES + 3 and log.lost == 0
    assert [json.loads(raw)["x-edge-request-id"] for raw in log.tail("E0000000000001", 2).splitlines()] == [
        f"req-{n:x}" for n in (5 * BATCH_LINES + 1, 5 * BATCH_LINES + 2)
    ]


def test_a_batch_beyond_the_buffer_is_cut_and_the_rest_counted_as_dropped(tmp_path: Path) -> None:
    log = AccessLog(tmp_path / "access.log", "lab", max_bytes=1 << 30, max_files=2, buffer_records=BATCH_LINES + 10)
    for n in range(2 * BATCH_LINES):  # nothing takes them off the queue: no writer runs
        log.add(*line(n))
    assert log.dropped == BATCH_LINES - 10
    log.add(*line(999, dist=None))
    log.seal()
    assert log.dropped == BATCH_LINES - 9
    log.flush()  # what the writer thread does: everything queued, in order
    log.close()
    assert written_ids(tmp_path / "access.log") == [f"req-{n:x}" for n in range(BATCH_LINES + 10)]
    assert log.written == BATCH_LINES + 10
