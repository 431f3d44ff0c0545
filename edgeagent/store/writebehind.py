"""The write-behind thread: small objects are persisted to disk behind the event loop's back.

A file write costs a few hundred microseconds, far more than a miss may spend on the loop.
The loop queues a `Job` (`WriteBehind.enqueue`); the thread writes it and hands it back
through `done`, which the store drains on its next call (tiers.Store._drain). `tokens` maps
a key to its newest queued job: a job whose token is no longer there was superseded. `lock`
orders the thread's file publication against the loop's large commits and removals.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .diskformat import DiskLayout
from .objects import CachedObject

# Backlog of the thread; beyond it small objects stay memory-only.
MAX_PENDING_JOBS = 2000
MAX_PENDING_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class Job:
    """A disk write for the writer thread: a whole small object, or (body None) a new
    meta file for a body already on disk (`body_name`)."""

    token: int
    seq: int
    obj: CachedObject
    body: bytes | None
    body_name: str = ""
    body_path: str = ""
    meta_path: str = ""
    written: bool = False


class WriteBehind:
    """The disk writer thread, its queue and the bookkeeping the loop shares with it."""

    def __init__(self, layout: DiskLayout | None, wanted: Callable[[Job], bool]) -> None:
        self._layout = layout
        # Called under `lock`: False when a removal since the job was queued matches it.
        self._wanted = wanted
        self.lock = threading.Lock()
        self.tokens: dict[str, int] = {}
        self._next_token = 0
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self.done: deque[Job] = deque()
        self.pending_bytes = 0
        self._thread: threading.Thread | None = None

    @property
    def backlog(self) -> int:
        return self._jobs.qsize()

    def enqueue(self, job: Job) -> None:
        size = job.obj.size if job.body is not None else 0
        if self._jobs.qsize() >= MAX_PENDING_JOBS or self.pending_bytes + size > MAX_PENDING_BYTES:
            self.tokens.pop(job.obj.key, None)
            return
        self._next_token += 1
        job.token = self._next_token
        self.tokens[job.obj.key] = job.token
        self.pending_bytes += size
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edge-store-writer", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def _run(self) -> None:
        layout = self._layout
        assert layout is not None
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                with self.lock:
                    obj = job.obj
                    if self.tokens.get(obj.key) == job.token and self._wanted(job):
                        try:
                            if job.body is not None:
                                job.body_path = layout.new_body_path(obj.key)
                                with open(job.body_path, "xb") as f:
                                    f.write(job.body)
                                job.meta_path = layout.publish(obj, job.body_path)
                            else:
                                layout.write_meta(job.meta_path, obj, job.body_name)
                            job.written = True
                        except (OSError, ValueError, TypeError):
                            pass
                    self.done.append(job)
            finally:
                self._jobs.task_done()

    def join(self) -> None:
        """Wait until every queued job is written (blocking)."""
        if self._thread is not None:
            self._jobs.join()

    def stop(self) -> None:
        """Finish the queued jobs and end the thread (blocking)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
