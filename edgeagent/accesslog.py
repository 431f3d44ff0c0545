"""Access log: one JSON line per viewer request, named after CloudFront's standard log fields.

The request path pays for an append of one tuple to a bounded deque and nothing else: no
formatting, no syscall, no lock. A writer thread wakes every `FLUSH_SECONDS`, turns what
waits into JSON lines (msgspec, in C), appends them to the file, rotates it by size, and
keeps the most recent lines of each distribution in memory for the admin API's tail.
When the deque is full the request is not logged but counted, so a slow disk can never
slow a response or grow the process. The thread only ever touches the file and its own
rings; the deque is the one thing both sides share, and its append and popleft are atomic.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO

import msgspec

log = logging.getLogger("edgeagent.accesslog")

FLUSH_SECONDS = 0.2
TAIL_RECORDS = 1000  # lines kept per distribution for GET /logs/tail, the most it returns
SIMPLE_CONTENT_TYPE = "text/plain; charset=utf-8"  # the edge's own short answers (errors, redirects)

# One request as the proxy appends it, in this order:
# (unix time, distribution id or None, client IP, method, target (path?query), request headers
# (the parsed dict, lowercased names), HTTP version ("1.1"), status (0: the viewer left first),
# body bytes sent, X-Cache result ("Hit", "RefreshHit", "Miss", "Error", "Redirect"),
# request id (a str, or the int counter of the fast path, formatted here), seconds taken,
# response Content-Type, response Content-Range, origin first-byte and last-byte seconds).
Entry = tuple[
    float, str | None, str, str, str, dict[str, str], str, int, int, str, str | int, float,
    str | None, str | None, float | None, float | None,
]  # fmt: skip

_VERSIONS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}


class Line(msgspec.Struct, omit_defaults=True):
    """A log line; fields with no value are left out of the JSON (CloudFront writes `-`)."""

    timestamp: str
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


def _range_bounds(content_range: str | None) -> tuple[int | None, int | None]:
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
        request_id_prefix: str,
        max_bytes: int,
        max_files: int,
        buffer_records: int,
        cookies: bool = False,
        trust_forwarded_proto: bool = False,
    ) -> None:
        self.path = path
        self.pop = pop
        self.request_id_prefix = request_id_prefix
        self.max_bytes = max(1, max_bytes)
        self.max_files = max(1, max_files)
        self.cookies = cookies
        self.trust_forwarded_proto = trust_forwarded_proto
        # Appended by the event loop, popped by the writer thread.
        self.pending: deque[Entry] = deque()
        self.capacity = max(1, buffer_records)
        self.dropped = 0  # buffer full (event loop thread only)
        self.failed = 0  # lines lost to a write error (writer thread only)
        self.written = 0
        self._tails: dict[str, deque[bytes]] = {}
        self._tails_lock = threading.Lock()
        self._encoder = msgspec.json.Encoder()
        self._file: BinaryIO | None = None
        self._size = 0
        self._second = -1
        self._second_text = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the request side ----

    def add(self, entry: Entry) -> None:
        """For the slow path; the fast path inlines the same two lines."""
        if len(self.pending) < self.capacity:
            self.pending.append(entry)
        else:
            self.dropped += 1

    @property
    def lost(self) -> int:
        return self.dropped + self.failed

    def tail(self, distribution_id: str, limit: int) -> list[bytes]:
        """The distribution's most recent lines, oldest first, at most `limit`."""
        with self._tails_lock:
            ring = self._tails.get(distribution_id)
            if ring is None:
                return []
            lines = list(ring)
        return lines[-limit:] if limit < len(lines) else lines

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
        """Format and write everything waiting; runs in the writer thread."""
        pending = self.pending
        count = len(pending)
        if not count:
            return
        popleft = pending.popleft
        entries = [popleft() for _ in range(count)]
        lines = self._format(entries)
        blob = self._encoder.encode_lines(lines)
        self._write(blob, count)
        split = blob.split(b"\n")
        with self._tails_lock:
            tails = self._tails
            for entry, line in zip(entries, split):
                dist = entry[1]
                if dist is None:
                    continue
                ring = tails.get(dist)
                if ring is None:
                    ring = tails[dist] = deque(maxlen=TAIL_RECORDS)
                ring.append(line)

    def _format(self, entries: list[Entry]) -> list[Line]:
        pop = self.pop
        prefix = self.request_id_prefix
        cookies = self.cookies
        trust_proto = self.trust_forwarded_proto
        versions = _VERSIONS
        out: list[Line] = []
        append = out.append
        for (now, dist, ip, method, target, headers, version, status, sent, result, rid, taken, ctype, crange,
             fbl, lbl) in entries:  # fmt: skip
            second = int(now)
            if second != self._second:
                self._second = second
                self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            path, _, query = target.partition("?")
            first, last = _range_bounds(crange) if crange else (None, None)
            append(Line(
                "%s.%03dZ" % (self._second_text, (now - second) * 1000),
                dist,
                pop,
                ip,
                method,
                headers.get("host", ""),
                path,
                status,
                sent,
                "Error" if status >= 400 or status == 0 else result,
                result,
                rid if isinstance(rid, str) else "%s-%x" % (prefix, rid),
                "https" if trust_proto and headers.get("x-forwarded-proto", "").lower() == "https" else "http",
                versions.get(version) or "HTTP/" + version,
                round(taken, 3),
                query or None,
                headers.get("referer"),
                headers.get("user-agent"),
                headers.get("cookie") if cookies else None,
                ctype,
                first,
                last,
                None if fbl is None else round(fbl, 3),
                None if lbl is None else round(lbl, 3),
            ))  # fmt: skip
        return out

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
