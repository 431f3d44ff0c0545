"""`Writer`: one response streamed into the store, invisible to lookups until its commit."""

from __future__ import annotations

import os
import zlib
from typing import TYPE_CHECKING

from .diskformat import unlink
from .objects import CachedObject, ObjectMeta

if TYPE_CHECKING:
    from .tiers import Store


class Writer:
    """Streams one response into the store.

    Small bodies accumulate in memory; once past `memory_object_max` they spill to a body
    file (unreferenced until commit) and every further `write` is one `os.write`. `write`
    returns False once the writer has given up (over a size limit, disk error): the server
    keeps streaming to the viewer and stops writing. Nothing is visible to lookups before
    `commit()`. Always end with `commit()` or `abort()`.
    """

    __slots__ = ("_store", "key", "primary_key", "meta", "size", "_chunks", "_fd",
                 "_path", "_crc", "_done", "_failed", "_seq")

    def __init__(self, store: Store, key: str, primary_key: str, meta: ObjectMeta,
                 keep_in_memory: bool, to_disk: bool) -> None:
        self._store = store
        self._seq = store._seq
        self.key = key
        self.primary_key = primary_key
        self.meta = meta
        self.size = 0
        self._chunks: list[bytes] | None = [] if keep_in_memory else None
        self._fd = -1
        self._path: str | None = None
        self._crc = 0
        self._done = False
        self._failed = not (keep_in_memory or to_disk)
        if to_disk and not keep_in_memory and not self._open_body_file():
            self._failed = True

    @property
    def failed(self) -> bool:
        return self._failed

    def _open_body_file(self) -> bool:
        try:
            self._path = self._store.layout.new_body_path(self.key)
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            return True
        except OSError:
            self._path = None
            self._fd = -1
            return False

    def write(self, chunk: bytes | bytearray | memoryview) -> bool:
        if self._failed or self._done:
            return False
        n = len(chunk)
        if not n:
            return True
        self.size += n
        store = self._store
        if self.size > store.max_object_size:
            self._fail()
            return False
        chunks = self._chunks
        if chunks is not None:
            if self.size <= store.memory_object_max:
                chunks.append(bytes(chunk))
                return True
            # Too big for memory after all: spill what we have to a body file.
            self._chunks = None
            if store.disk_dir is None or not self._open_body_file():
                self._fail()
                return False
            if chunks and not self._write_fd(b"".join(chunks)):
                return False
        return self._write_fd(chunk)

    def _write_fd(self, chunk: bytes | bytearray | memoryview) -> bool:
        try:
            view = memoryview(chunk)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            self._fail()
            return False
        self._crc = zlib.crc32(chunk, self._crc)
        return True

    def commit(self) -> CachedObject | None:
        """Publish the object (replacing any previous one under the same key).

        Returns None when nothing was stored: the writer gave up, or an invalidation or
        removal matching this object arrived while it was being fetched.
        """
        if self._done:
            return None
        store = self._store
        if not self._failed and store._removed_since(self._seq, self.primary_key, self.meta):
            self._fail()
        self._done = True
        if self._failed:
            return None
        if self._chunks is not None:
            body = b"".join(self._chunks)
            self._chunks = None
            return store._commit_small(CachedObject(
                self.key, self.primary_key, self.meta, self.size, zlib.crc32(body), body,
                None, None))
        fd, self._fd = self._fd, -1
        path, self._path = self._path, None
        assert path is not None
        try:
            os.close(fd)
        except OSError:
            unlink(path)
            return None
        return store._commit_large(self.key, self.primary_key, self.meta, self.size,
                                   self._crc, path)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._fail()

    def _fail(self) -> None:
        self._failed = True
        self._chunks = None
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1
        if self._path is not None:
            unlink(self._path)
            self._path = None
