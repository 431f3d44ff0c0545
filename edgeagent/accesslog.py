"""Access log: one JSON line per viewer request, named after CloudFront's standard log fields.

The request path builds one `Line` (a msgspec Struct: constructed in C, not tracked by the
garbage collector) from values it already holds and appends it to the current batch and to
its distribution's tail ring: no formatting, no syscall, no lock. Every `BATCH_LINES` lines,
and every `FLUSH_SECONDS` from a timer, the event loop encodes the batch into JSON lines in
one C call (`seal`) and queues the bytes for the writer thread, which appends them to the
file, rotates it by size and hands written pages back to the kernel. Encoding on the loop
in small batches is what keeps the log cheap (docs/performance.md, "Access log cost"): a
line lives for at most a batch, so the allocator reuses hot memory, and the writer thread
never holds the GIL for long, so it never stalls a response. When the queue holds
`buffer_records` lines, new lines are dropped and counted, so a slow disk can never slow a
response or grow the process. The byte queue is the one thing both threads share (its
append and popleft are atomic); batch and tail rings belong to the event loop alone, which
also serves the admin API that reads them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import BinaryIO

import msgspec

from cdncontract.limits import MAX_TAIL_RECORDS

log = logging.getLogger("edgeagent.accesslog")

FLUSH_SECONDS = 0.2
BATCH_LINES = 64  # encoded together on the event loop; small enough to stay in the CPU's caches
SYNC_BYTES = 1 << 20  # written bytes after which the writer syncs them and drops them from the page cache
SIMPLE_CONTENT_TYPE = "text/plain; charset=utf-8"  # the edge's own short answers (errors, redirects)


class Line(msgspec.Struct, omit_defaults=True, gc=False):
    """A log line; fields with no value are left out of the JSON (CloudFront writes `-`).

    Only what changes from one request to the next is a field of its own. Everything the
    route and the response fix (the distribution, Host, path, status, bytes, result types,
    content type...) is encoded once per route and response by `AccessLog.fixed`, and
    rides in `fixed` as pre-encoded JSON that msgspec copies verbatim: the value of
    `distribution-id` followed by the other fixed members, so the line is one flat JSON
    object. Built positionally on the request path (`proxy/hit.py`, `proxy/app.py`);
    docs/edge-agent.md maps each field to CloudFront's.
    """

    timestamp: float
    c_ip: str = msgspec.field(name="c-ip")
    x_edge_request_id: str = msgspec.field(name="x-edge-request-id")
    time_taken: float = msgspec.field(name="time-taken")
    fixed: msgspec.Raw = msgspec.field(name="distribution-id")
    cs_referer: str | None = msgspec.field(default=None, name="cs(Referer)")
    cs_user_agent: str | None = msgspec.field(default=None, name="cs(User-Agent)")
    cs_cookie: str | None = msgspec.field(default=None, name="cs(Cookie)")
    sc_range_start: int | None = msgspec.field(default=None, name="sc-range-start")
    sc_range_end: int | None = msgspec.field(default=None, name="sc-range-end")
    origin_fbl: float | None = msgspec.field(default=None, name="origin-fbl")
    origin_lbl: float | None = msgspec.field(default=None, name="origin-lbl")
    # Signed URLs and cookies: the public key id of the signature (passed by keyword, last).
    x_key_pair_id: str | None = msgspec.field(default=None, name="x-key-pair-id")


class _Fixed(msgspec.Struct, omit_defaults=True, gc=False):
    """The members of a line that follow `distribution-id` in `Line.fixed`."""

    x_edge_location: str = msgspec.field(name="x-edge-location")
    cs_method: str = msgspec.field(name="cs-method")
    cs_host: str = msgspec.field(name="cs(Host)")
    cs_uri_stem: str = msgspec.field(name="cs-uri-stem")
    sc_status: int = msgspec.field(name="sc-status")
    sc_bytes: int = msgspec.field(name="sc-bytes")
    x_edge_result_type: str = msgspec.field(name="x-edge-result-type")
    x_edge_response_result_type: str = msgspec.field(name="x-edge-response-result-type")
    cs_protocol: str = msgspec.field(name="cs-protocol")
    cs_protocol_version: str = msgspec.field(name="cs-protocol-version")
    cs_uri_query: str | None = msgspec.field(default=None, name="cs-uri-query")
    sc_content_type: str | None = msgspec.field(default=None, name="sc-content-type")


CLIENT_COMM_ERROR = "ClientCommError"  # CloudFront's detail for a response the viewer abandoned


def result_type(status: int, response_result: str) -> str:
    """x-edge-result-type: CloudFront calls every 4xx/5xx answer (and a viewer gone first) an Error."""
    return "Error" if status >= 400 or status == 0 or response_result == CLIENT_COMM_ERROR else response_result


def protocol_version(version: str) -> str:
    return "HTTP/1.1" if version == "1.1" else "HTTP/" + version


def range_bounds(content_range: str | None) -> tuple[int | None, int | None]:
    """`bytes 0-99/1000` -> (0, 99); anything else (multipart, `bytes */1000`) -> no bounds."""
    if not content_range or not content_range.startswith("bytes "):
        return None, None
    first, _, rest = content_range[6:].partition("-")
    last = rest.partition("/")[0]
    if not first.isdigit() or not last.isdigit():
        return None, None
    return int(first), int(last)


class AccessLog:
    """The buffer the proxy appends to, and the thread that writes it out."""

    def __init__(
        self,
        path: Path,
        pop: str,
        max_bytes: int,
        max_files: int,
        buffer_records: int,
        cookies: bool = False,
    ) -> None:
        self.path = path
        self.pop = pop
        self.max_bytes = max(1, max_bytes)
        self.max_files = max(1, max_files)
        self.cookies = cookies
        self.batch: list[Line] = []  # event loop only
        # Encoded batches with their line counts: appended by the event loop, popped by the writer.
        self._queue: deque[tuple[bytes, int]] = deque()
        self.capacity = max(1, buffer_records)
        self._queued = 0  # lines ever queued (event loop thread only)
        self._taken = 0  # lines ever taken off the queue (writer thread only)
        self.dropped = 0  # buffer full (event loop thread only)
        self.failed = 0  # lines lost to a write error (writer thread only)
        self.written = 0
        self._tails: dict[str, deque[Line]] = {}
        self._encoder = msgspec.json.Encoder()  # event loop: batches, `fixed` and the tail
        self._file: BinaryIO | None = None
        self._size = 0
        self._unsynced = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None

    # ---- the request side ----

    def ring(self, distribution_id: str) -> deque[Line]:
        """The distribution's tail ring; the fast path keeps it next to its routing memo."""
        tail = self._tails.get(distribution_id)
        if tail is None:
            tail = self._tails[distribution_id] = deque(maxlen=MAX_TAIL_RECORDS)
        return tail

    def fixed(
        self,
        distribution_id: str | None,
        method: str,
        host: str,
        uri_stem: str,
        uri_query: str | None,
        status: int,
        sent: int,
        response_result: str,
        scheme: str,
        version: str,
        content_type: str | None,
    ) -> msgspec.Raw:
        """`Line.fixed` for these values: the fast path keeps one per route and response."""
        members = self._encoder.encode(_Fixed(
            self.pop, method, host, uri_stem, status, sent, result_type(status, response_result), response_result,
            scheme, protocol_version(version), uri_query, content_type,
        ))  # fmt: skip
        return msgspec.Raw(b"%s,%s" % (self._encoder.encode(distribution_id), members[1:-1]))

    def add(self, line: Line, distribution_id: str | None) -> None:
        """For the slow path; the fast path inlines the same lines."""
        if distribution_id is not None:
            self.ring(distribution_id).append(line)
        batch = self.batch
        batch.append(line)
        if len(batch) >= BATCH_LINES:
            self.seal()

    def seal(self) -> None:
        """Encode the batch and queue it for the writer, as much of it as the buffer holds."""
        batch = self.batch
        if not batch:
            return
        room = self.capacity - (self._queued - self._taken)
        count = len(batch)
        if room < count:
            self.dropped += count - max(room, 0)
            count = max(room, 0)
        if count:
            self._queue.append((self._encoder.encode_lines(batch if count == len(batch) else batch[:count]), count))
            self._queued += count
        batch.clear()

    @property
    def lost(self) -> int:
        return self.dropped + self.failed

    def tail(self, distribution_id: str, limit: int) -> bytes:
        """The distribution's most recent lines as NDJSON, oldest first, at most `limit`."""
        ring = self._tails.get(distribution_id)
        if not ring:
            return b""
        lines = list(ring)
        return self._encoder.encode_lines(lines[-limit:] if limit < len(lines) else lines)

    # ---- lifecycle ----

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the file, start the writer thread and the loop's flush timer."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()
        self._timer = loop.call_later(FLUSH_SECONDS, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.seal()
        if self._queue:
            self._wake.set()
        self._timer = loop.call_later(FLUSH_SECONDS, self._tick, loop)

    def stop(self) -> None:
        """On the event loop: seal the last batch and stop the timer (then `close`)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.seal()

    def close(self) -> None:
        """Write what is still queued, then close the file; blocks, so run it off the loop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            self.flush()
        self.flush()

    # ---- the writer side ----

    def flush(self) -> None:
        """Write every queued batch; runs in the writer thread."""
        queue = self._queue
        batches = [queue.popleft() for _ in range(len(queue))]
        if not batches:
            return
        count = sum(lines for _, lines in batches)
        self._taken += count
        self._write(b"".join(blob for blob, _ in batches), count)

    def _open(self) -> None:
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open across flushes
        self._size = self._file.tell()
        self._unsynced = 0

    def _write(self, blob: bytes, count: int) -> None:
        try:
            if self._file is None:
                self._open()
            if self._size + len(blob) <= self.max_bytes:
                self._append(blob)
            else:
                # Rotate between lines, never inside one; a line longer than a file gets one alone.
                chunk: list[bytes] = []
                size = self._size
                for line in blob.splitlines(keepends=True):
                    if size and size + len(line) > self.max_bytes:
                        if chunk:
                            self._append(b"".join(chunk))
                            chunk = []
                        self._rotate()
                        size = 0
                    chunk.append(line)
                    size += len(line)
                if chunk:
                    self._append(b"".join(chunk))
            self.written += count
        except OSError as exc:
            self.failed += count
            log.error("access log %s: %d lines lost: %s", self.path, count, exc)
            if self._file is not None:
                self._file.close()
                self._file = None

    def _append(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        self._unsynced += len(data)
        if self._unsynced >= SYNC_BYTES:
            # A log is written once and read rarely: its pages would only crowd out the disk
            # tier's objects in the page cache, and growing it is what a write costs most.
            fd = self._file.fileno()
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            self._unsynced = 0

    def _rotate(self) -> None:
        """access.log -> access.log.1 -> ... -> access.log.<files-1>; the oldest is overwritten."""
        assert self._file is not None
        self._file.close()
        self._file = None
        base = str(self.path)
        for index in range(self.max_files - 1, 0, -1):
            source = base if index == 1 else f"{base}.{index - 1}"
            if os.path.exists(source):
                os.replace(source, f"{base}.{index}")
        if self.max_files == 1:
            self.path.unlink(missing_ok=True)
        self._open()
