"""The object store: a memory tier and a disk tier, both LRU and bounded by bytes.

Every object is written through to disk (when a disk tier is configured) so the cache
survives a restart; objects up to `memory_object_max` bytes are also kept in memory, where a
hit is one dict lookup. Larger objects live on disk only and are streamed from their file.

On disk each object is two files under `<disk_dir>/objects/<2 hex>/`: `<sha256>.meta` (JSON,
including the body's length and CRC-32) and `<sha256>.<nonce>.body`. Both are written to
`<disk_dir>/tmp/` and renamed into place (body first, then meta), so a crash leaves either
the old object, the new one, or an orphan body that the next start deletes. On open, the
store re-indexes the directory, dropping anything unreadable, truncated or orphaned; bodies
are checked against their CRC before they are first served (small ones when promoted to
memory, large ones by a background verification thread).

Threading: everything runs on the event loop thread except that verification thread, which
only reads files and sets flags on objects. Calls that touch the disk are bounded: a
`Writer.write` is one `os.write` of the chunk it is given, a commit is two renames and a
small meta write, a promotion reads at most `memory_object_max` bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping

from edgeagent.policy import compile_invalidation, vary_key

_META_VERSION = 1
# Rough per-object bookkeeping cost in the memory tier, on top of body and headers.
_MEM_OVERHEAD = 400
_VARY_SEP = "\x03"
_REMOVAL_LOG = 256


@dataclass(frozen=True, slots=True)
class _Removal:
    seq: int
    distribution_id: str
    matchers: tuple[Callable[[str], bool], ...]
    tags: frozenset[str]
    primary_key: str | None


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What the server knows about a response when it starts storing it.

    `headers` are the response headers to replay on a hit (hop-by-hop already removed; no
    Age, X-Cache or Content-Length: the server adds those per response). `encoding` is the
    stored body's Content-Encoding ("" for identity). `vary` is the normalised Vary name list
    (policy.vary_names) and `vary_key` the request's secondary key for it (policy.vary_key).
    """

    distribution_id: str
    path: str
    status: int
    headers: tuple[tuple[str, str], ...]
    stored_at: float
    ttl: int
    stale_while_revalidate: int = 0
    stale_if_error: int = 0
    must_revalidate: bool = False
    origin_age: int = 0
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    encoding: str = ""
    tags: frozenset[str] = frozenset()
    vary: tuple[str, ...] = ()
    vary_key: str = ""


class CachedObject:
    """A stored response.

    `body` is the whole body when the object is in the memory tier (read it once per
    response: eviction hands out a new object rather than mutating this one, but a later
    lookup may return a different instance). `file_path` is the body file when the object is
    on disk; a file may disappear after eviction, so open it with `open_body()` and treat
    FileNotFoundError as a miss. `head` is a slot for the server's pre-serialised response
    head; it is per instance and starts as None after every store or refresh.
    """

    __slots__ = ("key", "primary_key", "meta", "size", "crc", "body", "file_path",
                 "meta_path", "head", "verified", "corrupt", "cost")

    def __init__(self, key: str, primary_key: str, meta: ObjectMeta, size: int, crc: int,
                 body: bytes | None, file_path: str | None, meta_path: str | None,
                 verified: bool = True) -> None:
        self.key = key
        self.primary_key = primary_key
        self.meta = meta
        self.size = size
        self.crc = crc
        self.body = body
        self.file_path = file_path
        self.meta_path = meta_path
        self.head: bytes | None = None
        self.verified = verified
        self.corrupt = False
        self.cost = size + _MEM_OVERHEAD + len(key) + sum(
            len(n) + len(v) for n, v in meta.headers)

    def __repr__(self) -> str:
        tier = "memory" if self.body is not None else "disk"
        return f"<CachedObject {self.meta.path!r} {self.meta.status} {self.size}B {tier}>"

    def open_body(self) -> BinaryIO:
        """A binary file positioned at the start of the body (disk objects only)."""
        if self.file_path is None:
            raise FileNotFoundError("object has no body file")
        return open(self.file_path, "rb")

    def read(self, first: int = 0, last: int | None = None) -> bytes:
        """Bytes first..last inclusive; blocking file read for disk-only objects, meant for
        small slices (stream large ranges from `open_body()`)."""
        end = self.size if last is None else last + 1
        if self.body is not None:
            return self.body[first:end]
        with self.open_body() as f:
            f.seek(first)
            return f.read(end - first)


class Writer:
    """Streams one response into the store.

    `write` returns False once the writer has given up (object over a size limit, disk
    error); the server keeps streaming to the viewer and simply stops writing. Nothing is
    visible to lookups before `commit()`. Always end with `commit()` or `abort()`.
    """

    __slots__ = ("_store", "key", "primary_key", "meta", "size", "_chunks", "_fd",
                 "_tmp", "_crc", "_done", "_failed", "_seq")

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
        self._tmp: str | None = None
        self._crc = 0
        self._done = False
        self._failed = not (keep_in_memory or to_disk)
        if to_disk and not self._failed:
            try:
                self._tmp = store._temp_path()
                self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except OSError:
                self._tmp = None
                self._fd = -1
                if not keep_in_memory:
                    self._failed = True

    @property
    def failed(self) -> bool:
        return self._failed

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
        if self._chunks is not None:
            if self.size <= store.memory_object_max:
                self._chunks.append(bytes(chunk))
            else:
                self._chunks = None
                if self._fd < 0:
                    self._fail()
                    return False
        if self._fd >= 0:
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
        if not self._failed and self._store._removed_since(self._seq, self.primary_key,
                                                           self.meta):
            self._fail()
        self._done = True
        if self._failed:
            return None
        body = b"".join(self._chunks) if self._chunks is not None else None
        if body is not None and self._fd < 0:
            crc = zlib.crc32(body)
        else:
            crc = self._crc
        file_path = meta_path = None
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
                assert self._tmp is not None
                file_path, meta_path = self._store._publish(
                    self.key, self.primary_key, self.meta, self.size, crc, self._tmp)
            except OSError:
                self._unlink_tmp()
                if body is None:
                    return None
            self._tmp = None
        return self._store._add(CachedObject(self.key, self.primary_key, self.meta,
                                             self.size, crc, body, file_path, meta_path))

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
        self._unlink_tmp()

    def _unlink_tmp(self) -> None:
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None


@dataclass(slots=True)
class _DistIndex:
    keys: dict[str, None] = field(default_factory=dict)


class Store:
    """Both cache tiers and their indexes.

    `disk_dir` None or `disk_bytes` 0 disables the disk tier (then objects larger than
    `memory_object_max` are not cached). `max_object_size` caps one object (default: the
    disk tier's size, or `memory_object_max` without one). With `verify_in_background`
    False, large objects found on disk at start stay unserved until the owner calls
    `verify_pending()` (tests use this to be deterministic).
    """

    def __init__(self, memory_bytes: int, disk_dir: Path | str | None, disk_bytes: int,
                 memory_object_max: int, max_object_size: int | None = None,
                 verify_in_background: bool = True) -> None:
        self.memory_bytes = memory_bytes
        self.memory_object_max = min(memory_object_max, memory_bytes)
        self.disk_bytes = disk_bytes if disk_dir is not None else 0
        self.disk_dir = Path(disk_dir) if disk_dir is not None and disk_bytes > 0 else None
        limit = self.disk_bytes if self.disk_dir is not None else self.memory_object_max
        self.max_object_size = min(max_object_size, limit) if max_object_size else limit
        self._mem: OrderedDict[str, CachedObject] = OrderedDict()
        self._disk: OrderedDict[str, CachedObject] = OrderedDict()
        self._mem_used = 0
        self._disk_used = 0
        self._vary: dict[str, tuple[str, ...]] = {}
        self._by_dist: dict[str, _DistIndex] = {}
        self._made_dirs: set[str] = set()
        # Recent removals, so a fetch that started before one cannot store what it removed.
        self._seq = 0
        self._removals: deque[_Removal] = deque(maxlen=_REMOVAL_LOG)
        self._stop = threading.Event()
        self._verifier: threading.Thread | None = None
        if self.disk_dir is not None:
            self._open_disk()
            if verify_in_background and any(not o.verified for o in self._disk.values()):
                self._verifier = threading.Thread(target=self._verify, args=(self._stop,),
                                                  name="edge-store-verify", daemon=True)
                self._verifier.start()

    # ---- Reading ----

    def lookup(self, key: str, headers: Mapping[str, str] | None = None) -> CachedObject | None:
        """The object for a primary cache key (and, when it has Vary, the request headers).

        Memory hits are a dict lookup and an LRU touch. A disk hit on an object small enough
        for memory reads its file once (bounded by `memory_object_max`) to promote it.
        Disk objects whose checksum has not been verified yet since start are not served.
        """
        names = self._vary.get(key)
        if names is not None:
            key = key + _VARY_SEP + vary_key(names, headers or {})
        mem = self._mem
        obj = mem.get(key)
        if obj is not None:
            mem.move_to_end(key)
            return obj
        obj = self._disk.get(key)
        if obj is None:
            return None
        if obj.corrupt:
            self._drop(key)
            return None
        if obj.size <= self.memory_object_max:
            return self._promote(obj)
        if not obj.verified:
            return None
        self._disk.move_to_end(key)
        return obj

    def _promote(self, obj: CachedObject) -> CachedObject | None:
        try:
            assert obj.file_path is not None
            with open(obj.file_path, "rb") as f:
                body = f.read(obj.size + 1)
        except OSError:
            self._drop(obj.key)
            return None
        if len(body) != obj.size or zlib.crc32(body) != obj.crc:
            self._drop(obj.key)
            return None
        obj.verified = True
        self._disk.move_to_end(obj.key)
        promoted = CachedObject(obj.key, obj.primary_key, obj.meta, obj.size, obj.crc, body,
                                obj.file_path, obj.meta_path)
        self._mem_insert(promoted)
        return promoted

    # ---- Writing ----

    def full_key(self, key: str, meta: ObjectMeta) -> str:
        return key + _VARY_SEP + meta.vary_key if meta.vary else key

    def begin(self, key: str, meta: ObjectMeta, size_hint: int | None = None) -> Writer:
        """A writer for the response to primary key `key` (size_hint: Content-Length)."""
        full = self.full_key(key, meta)
        if size_hint is not None and size_hint > self.max_object_size:
            return Writer(self, full, key, meta, False, False)
        keep = self.memory_bytes > 0 and (size_hint is None
                                          or size_hint <= self.memory_object_max)
        return Writer(self, full, key, meta, keep, self.disk_dir is not None)

    def put(self, key: str, meta: ObjectMeta, body: bytes) -> CachedObject | None:
        """Store a whole body at once (small objects, error pages, tests)."""
        writer = self.begin(key, meta, len(body))
        writer.write(body)
        return writer.commit()

    def refresh(self, obj: CachedObject, meta: ObjectMeta) -> CachedObject:
        """Replace an object's metadata after a 304 from the origin (a RefreshHit).

        The body is kept; on disk only the meta file is rewritten. If the object left the
        store meanwhile (evicted, invalidated, replaced), nothing is stored again and the
        returned object is detached. The new object's `head` slot is empty.
        """
        meta = replace(meta, vary=obj.meta.vary, vary_key=obj.meta.vary_key)
        key = obj.key
        in_mem = self._mem.get(key)
        on_disk = self._disk.get(key)
        current = in_mem or on_disk
        body = obj.body if obj.body is not None else (in_mem.body if in_mem else None)
        if current is None or current.crc != obj.crc or current.size != obj.size:
            return CachedObject(key, obj.primary_key, meta, obj.size, obj.crc, body,
                                obj.file_path, None, obj.verified)
        file_path = meta_path = None
        if on_disk is not None and on_disk.file_path and on_disk.meta_path:
            try:
                self._write_meta(on_disk.meta_path, key, obj.primary_key, meta, obj.size,
                                 obj.crc, os.path.basename(on_disk.file_path))
                file_path, meta_path = on_disk.file_path, on_disk.meta_path
            except OSError:
                self._disk_remove(key)
        fresh = CachedObject(key, obj.primary_key, meta, obj.size, obj.crc, None, file_path,
                             meta_path, on_disk.verified if on_disk else True)
        if file_path is not None:
            self._disk_replace(fresh)
        if body is None:
            return fresh
        fresh_mem = CachedObject(key, obj.primary_key, meta, obj.size, obj.crc, body,
                                 file_path, meta_path)
        self._mem_insert(fresh_mem)
        return fresh_mem

    # ---- Removal ----

    def remove(self, key: str) -> int:
        """Remove a primary key with all its Vary variants; returns objects removed."""
        self._log_removal(key.split("\x00", 1)[0], (), frozenset(), key)
        return self._remove(key)

    def _remove(self, key: str) -> int:
        if key not in self._vary:
            return 1 if self._drop(key) else 0
        dist = self._by_dist.get(key.split("\x00", 1)[0])
        victims = [k for k in (dist.keys if dist else ()) if self._primary(k) == key]
        self._vary.pop(key, None)
        return sum(1 for k in victims if self._drop(k))

    def invalidate(self, distribution_id: str, paths: Iterable[str],
                   tags: Iterable[str] = ()) -> int:
        """Remove every object of a distribution whose path matches one of `paths` (exact,
        `*` wildcards, `/*`) or which carries one of `tags`: all variants (query strings,
        headers, cookies, encodings, Vary), both tiers. Returns objects removed."""
        matchers = tuple(compile_invalidation(p) for p in paths)
        tag_set = frozenset(tags)
        self._log_removal(distribution_id, matchers, tag_set, None)
        index = self._by_dist.get(distribution_id)
        if index is None:
            return 0
        victims = []
        for key in index.keys:
            obj = self._mem.get(key) or self._disk.get(key)
            if obj is None:
                continue
            path = obj.meta.path
            if any(m(path) for m in matchers) or (tag_set and not tag_set.isdisjoint(
                    obj.meta.tags)):
                victims.append(key)
        return sum(1 for k in victims if self._drop(k))

    def clear(self) -> int:
        """Remove everything (both tiers)."""
        keys = list(dict.fromkeys([*self._mem, *self._disk]))
        return sum(1 for k in keys if self._drop(k))

    def _log_removal(self, distribution_id: str, matchers: tuple[Callable[[str], bool], ...],
                     tags: frozenset[str], primary_key: str | None) -> None:
        self._seq += 1
        self._removals.append(_Removal(self._seq, distribution_id, matchers, tags, primary_key))

    def _removed_since(self, seq: int, primary_key: str, meta: ObjectMeta) -> bool:
        if seq == self._seq:
            return False
        log = self._removals
        if not log or log[0].seq > seq + 1:
            return True
        for r in reversed(log):
            if r.seq <= seq:
                break
            if r.distribution_id != meta.distribution_id:
                continue
            if r.primary_key is not None:
                if r.primary_key == primary_key:
                    return True
            elif any(m(meta.path) for m in r.matchers) or not r.tags.isdisjoint(meta.tags):
                return True
        return False

    # ---- Introspection ----

    @property
    def memory_used(self) -> int:
        return self._mem_used

    @property
    def disk_used(self) -> int:
        return self._disk_used

    @property
    def memory_objects(self) -> int:
        return len(self._mem)

    @property
    def disk_objects(self) -> int:
        return len(self._disk)

    def stats(self) -> dict[str, int]:
        """Gauges for /metrics (names become `edge_<name>`)."""
        return {
            "cache_memory_bytes": self._mem_used,
            "cache_memory_objects": len(self._mem),
            "cache_disk_bytes": self._disk_used,
            "cache_disk_objects": len(self._disk),
        }

    def __len__(self) -> int:
        return len(set(self._mem) | set(self._disk))

    def close(self) -> None:
        """Stop the verification thread; the disk tier needs no flush."""
        self._stop.set()
        if self._verifier is not None:
            self._verifier.join()
            self._verifier = None

    # ---- Internals: indexes ----

    def _primary(self, key: str) -> str:
        obj = self._mem.get(key) or self._disk.get(key)
        return obj.primary_key if obj is not None else key

    def _add(self, obj: CachedObject) -> CachedObject:
        primary = obj.primary_key
        names = obj.meta.vary
        old_names = self._vary.get(primary)
        if names != (old_names or ()):
            # The Vary layout of this resource changed: earlier variants are unreachable.
            if old_names is None:
                self._drop(primary)
            else:
                self._remove(primary)
            if names:
                self._vary[primary] = names
        if obj.file_path is not None:
            self._disk_replace(obj if obj.body is None else CachedObject(
                obj.key, primary, obj.meta, obj.size, obj.crc, None, obj.file_path,
                obj.meta_path))
        if obj.body is not None:
            self._mem_insert(obj)
        else:
            stale = self._mem.pop(obj.key, None)
            if stale is not None:
                self._mem_used -= stale.cost
        return obj

    def _index(self, obj: CachedObject) -> None:
        dist = self._by_dist.get(obj.meta.distribution_id)
        if dist is None:
            dist = self._by_dist[obj.meta.distribution_id] = _DistIndex()
        dist.keys[obj.key] = None

    def _unindex(self, key: str, distribution_id: str) -> None:
        if key in self._mem or key in self._disk:
            return
        dist = self._by_dist.get(distribution_id)
        if dist is not None:
            dist.keys.pop(key, None)
            if not dist.keys:
                del self._by_dist[distribution_id]

    def _mem_insert(self, obj: CachedObject) -> None:
        if obj.cost > self.memory_bytes:
            return
        old = self._mem.pop(obj.key, None)
        if old is not None:
            self._mem_used -= old.cost
        self._mem[obj.key] = obj
        self._mem_used += obj.cost
        self._index(obj)
        while self._mem_used > self.memory_bytes:
            _, victim = self._mem.popitem(last=False)
            self._mem_used -= victim.cost
            self._unindex(victim.key, victim.meta.distribution_id)

    def _disk_replace(self, obj: CachedObject) -> None:
        old = self._disk.pop(obj.key, None)
        if old is not None:
            self._disk_used -= old.size
            if old.file_path is not None and old.file_path != obj.file_path:
                _unlink(old.file_path)
        self._disk[obj.key] = obj
        self._disk_used += obj.size
        self._index(obj)
        while self._disk_used > self.disk_bytes and self._disk:
            key, victim = self._disk.popitem(last=False)
            self._disk_used -= victim.size
            _unlink(victim.meta_path)
            _unlink(victim.file_path)
            mem_obj = self._mem.get(key)
            if mem_obj is not None:
                # Still served from memory, but there is no file behind it any more.
                self._mem[key] = CachedObject(key, mem_obj.primary_key, mem_obj.meta,
                                              mem_obj.size, mem_obj.crc, mem_obj.body, None,
                                              None)
            self._unindex(key, victim.meta.distribution_id)

    def _drop(self, key: str) -> bool:
        found = False
        dist_id = ""
        obj = self._mem.pop(key, None)
        if obj is not None:
            self._mem_used -= obj.cost
            dist_id = obj.meta.distribution_id
            found = True
        obj = self._disk_remove(key)
        if obj is not None:
            dist_id = obj.meta.distribution_id
            found = True
        if found:
            self._unindex(key, dist_id)
        return found

    def _disk_remove(self, key: str) -> CachedObject | None:
        obj = self._disk.pop(key, None)
        if obj is not None:
            self._disk_used -= obj.size
            _unlink(obj.meta_path)
            _unlink(obj.file_path)
        return obj

    # ---- Internals: disk ----

    def _temp_path(self) -> str:
        assert self.disk_dir is not None
        return str(self.disk_dir / "tmp" / secrets.token_hex(8))

    def _object_dir(self, digest: str) -> str:
        assert self.disk_dir is not None
        d = str(self.disk_dir / "objects" / digest[:2])
        if d not in self._made_dirs:
            os.makedirs(d, exist_ok=True)
            self._made_dirs.add(d)
        return d

    def _publish(self, key: str, primary_key: str, meta: ObjectMeta, size: int, crc: int,
                 tmp: str) -> tuple[str, str]:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        directory = self._object_dir(digest)
        body_name = f"{digest}.{secrets.token_hex(4)}.body"
        body_path = os.path.join(directory, body_name)
        meta_path = os.path.join(directory, digest + ".meta")
        os.replace(tmp, body_path)
        try:
            self._write_meta(meta_path, key, primary_key, meta, size, crc, body_name)
        except OSError:
            _unlink(body_path)
            raise
        return body_path, meta_path

    def _write_meta(self, meta_path: str, key: str, primary_key: str, meta: ObjectMeta,
                    size: int, crc: int, body_name: str) -> None:
        record = {
            "v": _META_VERSION,
            "key": key,
            "primary": primary_key,
            "body": body_name,
            "size": size,
            "crc": crc,
            "distribution_id": meta.distribution_id,
            "path": meta.path,
            "status": meta.status,
            "headers": [list(h) for h in meta.headers],
            "stored_at": meta.stored_at,
            "ttl": meta.ttl,
            "swr": meta.stale_while_revalidate,
            "sie": meta.stale_if_error,
            "must_revalidate": meta.must_revalidate,
            "origin_age": meta.origin_age,
            "etag": meta.etag,
            "last_modified": meta.last_modified,
            "content_type": meta.content_type,
            "encoding": meta.encoding,
            "tags": sorted(meta.tags),
            "vary": list(meta.vary),
            "vary_key": meta.vary_key,
        }
        data = json.dumps(record, separators=(",", ":")).encode("utf-8", "surrogatepass")
        tmp = self._temp_path()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, meta_path)
        except OSError:
            _unlink(tmp)
            raise

    def _open_disk(self) -> None:
        """Re-index the disk tier after a restart (see the module docstring)."""
        assert self.disk_dir is not None
        tmp_dir = self.disk_dir / "tmp"
        objects_dir = self.disk_dir / "objects"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        objects_dir.mkdir(parents=True, exist_ok=True)
        for leftover in tmp_dir.iterdir():
            _unlink(str(leftover))
        found: list[tuple[float, CachedObject]] = []
        for sub in objects_dir.iterdir():
            if not sub.is_dir():
                _unlink(str(sub))
                continue
            self._made_dirs.add(str(sub))
            names = set(os.listdir(sub))
            referenced: set[str] = set()
            for name in names:
                if not name.endswith(".meta"):
                    continue
                meta_path = os.path.join(sub, name)
                loaded = _load_meta(meta_path, str(sub))
                if loaded is None or os.path.basename(loaded.file_path or "") not in names:
                    _unlink(meta_path)
                    continue
                try:
                    st = os.stat(loaded.file_path or "")
                    mtime = os.stat(meta_path).st_mtime
                except OSError:
                    _unlink(meta_path)
                    continue
                if st.st_size != loaded.size:
                    _unlink(meta_path)
                    continue
                referenced.add(os.path.basename(loaded.file_path or ""))
                found.append((mtime, loaded))
            for name in names:
                if not name.endswith(".meta") and name not in referenced:
                    _unlink(os.path.join(sub, name))
        found.sort(key=lambda item: item[0])
        for _, obj in found:
            if obj.meta.vary:
                self._vary[obj.primary_key] = obj.meta.vary
            self._disk_replace(obj)

    def verify_pending(self) -> int:
        """Check the CRC of every disk object not verified since start; blocking (the store
        runs this in its own thread after a re-index unless told not to). Corrupt objects
        are flagged and dropped by the next lookup. Returns how many were found corrupt."""
        return self._verify(None)

    def _verify(self, stop: threading.Event | None) -> int:
        bad = 0
        for obj in list(self._disk.values()):
            if stop is not None and stop.is_set():
                break
            if obj.verified or obj.corrupt or obj.file_path is None:
                continue
            crc = 0
            size = 0
            try:
                with open(obj.file_path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        crc = zlib.crc32(chunk, crc)
                        size += len(chunk)
                        if stop is not None and stop.is_set():
                            return bad
            except OSError:
                continue
            if crc == obj.crc and size == obj.size:
                obj.verified = True
            else:
                obj.corrupt = True
                bad += 1
        return bad


def _load_meta(meta_path: str, directory: str) -> CachedObject | None:
    try:
        with open(meta_path, "rb") as f:
            record: Any = json.loads(f.read().decode("utf-8", "surrogatepass"))
        if not isinstance(record, dict) or record.get("v") != _META_VERSION:
            return None
        body_name = record["body"]
        if not isinstance(body_name, str) or "/" in body_name or not body_name.endswith(
                ".body"):
            return None
        meta = ObjectMeta(
            distribution_id=str(record["distribution_id"]),
            path=str(record["path"]),
            status=int(record["status"]),
            headers=tuple((str(n), str(v)) for n, v in record["headers"]),
            stored_at=float(record["stored_at"]),
            ttl=int(record["ttl"]),
            stale_while_revalidate=int(record["swr"]),
            stale_if_error=int(record["sie"]),
            must_revalidate=bool(record["must_revalidate"]),
            origin_age=int(record["origin_age"]),
            etag=record["etag"],
            last_modified=record["last_modified"],
            content_type=record["content_type"],
            encoding=str(record["encoding"]),
            tags=frozenset(str(t) for t in record["tags"]),
            vary=tuple(str(n) for n in record["vary"]),
            vary_key=str(record["vary_key"]),
        )
        return CachedObject(str(record["key"]), str(record["primary"]), meta,
                            int(record["size"]), int(record["crc"]), None,
                            os.path.join(directory, body_name), meta_path, verified=False)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass
