"""Access log: one JSON line per viewer request, named after CloudFront's standard log fields.

The request path builds one `Line` (a msgspec Struct: constructed in C, not tracked by the
garbage collector) from values it already holds and appends it to a bounded deque and to
its distribution's tail ring: no formatting, no syscall, no lock. A writer thread wakes
every `FLUSH_SECONDS`, encodes what waits into JSON lines in one C call, appends them to
the file and rotates it by size. When the deque is full the line is dropped and counted,
so a slow disk can never slow a response or grow the process. The deque is the one thing
both threads share (its append and popleft are atomic); the tail rings belong to the event
loop alone, which also serves the admin API that reads them.
"""

from __future__ import annotations

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
SIMPLE_CONTENT_TYPE = "text/plain; charset=utf-8"  # the edge's own short answers (errors, redirects)


class Line(msgspec.Struct, omit_defaults=True, gc=False):
    """A log line; fields with no value are left out of the JSON (CloudFront writes `-`).

    Built positionally on the request path, so the field order is part of the contract
    with `proxy.py`; docs/edge-agent.md maps each field to CloudFront's.
    """

    timestamp: float
    distribution_id: str | None = msgspec.field(name="distribution-id")
    x_edge_location: str = msgspec.field(name="x-edge-location")
    c_ip: str = msgspec.field(name="c-ip")
    cs_method: str = msgspec.field(name="cs-method")
    cs_host: str = msgspec.field(name="cs(Host)")
    cs_uri_stem: str = msgspec.field(name="cs-uri-stem")
    sc_status: int = msgspec.field(name="sc-status")
    sc_bytes: int = msgspec.field(name="sc-bytes")
    x_edge_result_type: str = msgspec.field(name="x-edge-result-type")
    x_edge_response_result_type: str = msgspec.field(name="x-edge-response-result-type")
    x_edge_request_id: str = msgspec.field(name="x-edge-request-id")
    cs_protocol: str = msgspec.field(name="cs-protocol")
    cs_protocol_version: str = msgspec.field(name="cs-protocol-version")
    time_taken: float = msgspec.field(name="time-taken")
    cs_uri_query: str | None = msgspec.field(default=None, name="cs-uri-query")
    cs_referer: str | None = msgspec.field(default=None, name="cs(Referer)")
    cs_user_agent: str | None = msgspec.field(default=None, name="cs(User-Agent)")
    cs_cookie: str | None = msgspec.field(default=None, name="cs(Cookie)")
    sc_content_type: str | None = msgspec.field(default=None, name="sc-content-type")
    sc_range_start: int | None = msgspec.field(default=None, name="sc-range-start")
    sc_range_end: int | None = msgspec.field(default=None, name="sc-range-end")
    origin_fbl: float | None = msgspec.field(default=None, name="origin-fbl")
    origin_lbl: float | None = msgspec.field(default=None, name="origin-lbl")


def result_type(status: int, response_result: str) -> str:
    """x-edge-result-type: CloudFront calls every 4xx/5xx answer (and a viewer gone first) an Error."""
    return "Error" if status >= 400 or status == 0 else response_result


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
        trust_forwarded_proto: bool = False,
    ) -> None:
        self.path = path
        self.pop = pop
        self.max_bytes = max(1, max_bytes)
        self.max_files = max(1, max_files)
        self.cookies = cookies
        self.trust_forwarded_proto = trust_forwarded_proto
        # Appended by the event loop, popped by the writer thread.
        self.pending: deque[Line] = deque()
        self.capacity = max(1, buffer_records)
        self.dropped = 0  # buffer full (event loop thread only)
        self.failed = 0  # lines lost to a write error (writer thread only)
        self.written = 0
        self._tails: dict[str, deque[Line]] = {}
        self._encoder = msgspec.json.Encoder()  # writer thread
        self._tail_encoder = msgspec.json.Encoder()  # event loop
        self._file: BinaryIO | None = None
        self._size = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the request side ----

    def ring(self, distribution_id: str) -> deque[Line]:
        """The distribution's tail ring; the fast path keeps it next to its routing memo."""
        tail = self._tails.get(distribution_id)
        if tail is None:
            tail = self._tails[distribution_id] = deque(maxlen=MAX_TAIL_RECORDS)
        return tail

    def add(self, line: Line) -> None:
        """For the slow path; the fast path inlines the same lines."""
        if line.distribution_id is not None:
            self.ring(line.distribution_id).append(line)
        if len(self.pending) < self.capacity:
            self.pending.append(line)
        else:
            self.dropped += 1

    @property
    def lost(self) -> int:
        return self.dropped + self.failed

    def tail(self, distribution_id: str, limit: int) -> bytes:
        """The distribution's most recent lines as NDJSON, oldest first, at most `limit`."""
        ring = self._tails.get(distribution_id)
        if not ring:
            return b""
        lines = list(ring)
        return self._tail_encoder.encode_lines(lines[-limit:] if limit < len(lines) else lines)

    # ---- lifecycle ----

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is still buffered, then close the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()
        self.flush()

    # ---- the writer side ----

    def flush(self) -> None:
        """Encode and write everything waiting; runs in the writer thread."""
        pending = self.pending
        count = len(pending)
        if not count:
            return
        popleft = pending.popleft
        self._write(self._encoder.encode_lines([popleft() for _ in range(count)]), count)

    def _open(self) -> None:
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open across flushes
        self._size = self._file.tell()

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
