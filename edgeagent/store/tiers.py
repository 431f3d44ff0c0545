"""`Store`: the memory tier and the disk tier, both LRU and bounded by bytes, and their indexes.

Objects up to `memory_object_max` bytes are served from memory, where a hit is one dict
lookup; they are also persisted to disk (writebehind.py), so the cache survives a restart.
Larger objects are streamed straight to a disk file (writer.Writer) and served from it. On
open the store re-indexes the disk tier (diskformat.DiskLayout.scan); a body is checked
against its CRC before it is first served (a small one when it is promoted to memory, a
large one by the verification thread).

Threading: everything runs on the caller's (event loop) thread except the write-behind
thread and the verification thread (after a restart; it only reads files and sets flags on
objects). What stays on the loop is bounded: a `Writer.write` of a large object is one
`os.write` of the chunk it is given, its commit one small meta write and rename, and a
promotion reads at most `memory_object_max` bytes.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping

from cdncontract.cache_key import distribution_of

from ..policy import compile_invalidation, vary_key
from .diskformat import DiskLayout, unlink
from .objects import CachedObject, ObjectMeta
from .writebehind import Job, WriteBehind
from .writer import Writer

_VARY_SEP = "\x03"
_REMOVAL_LOG = 256


def _touch(path: str | None) -> None:
    """A meta file's time to now: it orders the disk tier when the store is reopened."""
    if path is not None:
        try:
            os.utime(path)
        except OSError:
            pass


@dataclass(frozen=True, slots=True)
class _Removal:
    seq: int
    distribution_id: str
    matchers: tuple[Callable[[str], bool], ...]
    tags: frozenset[str]
    primary_key: str | None


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
        # Vary layout per primary key, and how many of its variants are stored.
        self._vary: dict[str, tuple[str, ...]] = {}
        self._variants: dict[str, int] = {}
        self._by_dist: dict[str, _DistIndex] = {}
        self._layout = DiskLayout(self.disk_dir) if self.disk_dir is not None else None
        # Recent removals, so a fetch that started before one cannot store what it removed.
        self._seq = 0
        self._removals: deque[_Removal] = deque(maxlen=_REMOVAL_LOG)
        # Small objects reach the disk through the write-behind thread (writebehind.py).
        self._writes = WriteBehind(
            self._layout, lambda job: not self._removed_since(job.seq, job.obj.primary_key, job.obj.meta)
        )
        self._stop = threading.Event()
        self._verifier: threading.Thread | None = None
        if self.disk_dir is not None:
            self._open_disk()
            if verify_in_background and any(not o.verified for o in self._disk.values()):
                self._verifier = threading.Thread(target=self._verify, args=(self._stop,),
                                                  name="edge-store-verify", daemon=True)
                self._verifier.start()

    @property
    def layout(self) -> DiskLayout:
        """The disk tier's files (only with a disk tier)."""
        assert self._layout is not None
        return self._layout

    # ---- Reading ----

    def lookup(self, key: str, headers: Mapping[str, str] | None = None) -> CachedObject | None:
        """The object for a primary cache key (and, when it has Vary, the request headers).

        Memory hits are a dict lookup, an LRU touch and a mark (`hot`) that the disk tier's
        eviction reads, so an object hot in memory is not the first to leave the disk (its
        disk copy is never looked up while memory serves it; no syscall per hit). A disk hit
        on an object small enough for memory reads its file once (bounded by
        `memory_object_max`) to promote it.
        Large disk objects whose checksum has not been verified since start are not served.
        """
        names = self._vary.get(key)
        if names is not None:
            key = key + _VARY_SEP + vary_key(names, headers or {})
        mem = self._mem
        obj = mem.get(key)
        if obj is not None:
            mem.move_to_end(key)
            obj.hot = True
            return obj
        if self._writes.done:
            self._drain()
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
        """The key an object is stored under: the primary key plus its Vary secondary key."""
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

        The body is kept; on disk only the meta file is rewritten (by the writer thread).
        If the object left the store meanwhile (evicted, invalidated, replaced), nothing is
        stored again and the returned object is detached. The new object's `head` is None.
        """
        if self._writes.done:
            self._drain()
        meta = replace(meta, vary=obj.meta.vary, vary_key=obj.meta.vary_key)
        key = obj.key
        in_mem = self._mem.get(key)
        on_disk = self._disk.get(key)
        current = in_mem or on_disk
        body = obj.body if obj.body is not None else (in_mem.body if in_mem else None)
        if current is None or current.crc != obj.crc or current.size != obj.size:
            return CachedObject(key, obj.primary_key, meta, obj.size, obj.crc, body,
                                obj.file_path, None, obj.verified)
        if on_disk is not None and on_disk.file_path and on_disk.meta_path:
            fresh = CachedObject(key, obj.primary_key, meta, obj.size, obj.crc, None,
                                 on_disk.file_path, on_disk.meta_path, on_disk.verified)
            self._disk_replace(fresh)
            self._writes.enqueue(Job(0, self._seq, fresh, None,
                               body_name=os.path.basename(on_disk.file_path),
                               meta_path=on_disk.meta_path))
        elif in_mem is not None and self.disk_dir is not None:
            # Its first disk write may still be queued; queue the fresh metadata after it.
            assert body is not None
            self._writes.enqueue(Job(0, self._seq, CachedObject(
                key, obj.primary_key, meta, obj.size, obj.crc, body, None, None), body))
        if body is None:
            fresh_disk = self._disk.get(key)
            return fresh_disk if fresh_disk is not None else current
        fresh_mem = CachedObject(key, obj.primary_key, meta, obj.size, obj.crc, body,
                                 None, None)
        self._mem_insert(fresh_mem)
        return fresh_mem

    def _commit_small(self, obj: CachedObject) -> CachedObject:
        if self._writes.done:
            self._drain()
        self._prepare_layout(obj)
        self._mem_insert(obj)
        on_disk = self._disk.get(obj.key)
        if on_disk is not None and on_disk.crc != obj.crc:
            self._disk_remove(obj.key)
        if self.disk_dir is not None:
            self._writes.enqueue(Job(0, self._seq, obj, obj.body))
        return obj

    def _commit_large(self, key: str, primary_key: str, meta: ObjectMeta, size: int,
                      crc: int, body_path: str) -> CachedObject | None:
        if self._writes.done:
            self._drain()
        obj = CachedObject(key, primary_key, meta, size, crc, None, None, None)
        try:
            with self._writes.lock:
                self._writes.tokens.pop(key, None)
                obj.meta_path = self.layout.publish(obj, body_path)
                obj.file_path = body_path
        except OSError:
            unlink(body_path)
            return None
        self._prepare_layout(obj)
        stale = self._mem.pop(key, None)
        if stale is not None:
            self._mem_used -= stale.cost
        self._disk_replace(obj)
        return obj

    def _prepare_layout(self, obj: CachedObject) -> None:
        """Forget other variants when a resource's Vary layout changes."""
        primary = obj.primary_key
        names = obj.meta.vary
        old_names = self._vary.get(primary)
        if names == (old_names or ()):
            return
        if old_names is None:
            self._drop(primary)
        else:
            self._remove(primary)
        if names:
            self._vary[primary] = names

    # ---- Removal ----

    def remove(self, key: str) -> int:
        """Remove a primary key with all its Vary variants; returns objects removed."""
        with self._writes.lock:
            self._log_removal(distribution_of(key), (), frozenset(), key)
            self._drain()
        return self._remove(key)

    def _remove(self, key: str) -> int:
        if key not in self._vary:
            return 1 if self._drop(key) else 0
        dist = self._by_dist.get(distribution_of(key))
        victims = [k for k in (dist.keys if dist else ()) if self._primary(k) == key]
        self._vary.pop(key, None)
        return sum(1 for k in victims if self._drop(k))

    def invalidate(self, distribution_id: str, paths: Iterable[str],
                   tags: Iterable[str] = ()) -> int:
        """Remove every object of a distribution whose path matches one of `paths` (exact,
        `*` wildcards, `/*`) or which carries one of `tags`: all variants (query strings,
        headers, cookies, encodings, Vary), both tiers, including disk writes still queued.
        Returns objects removed."""
        matchers = tuple(compile_invalidation(p) for p in paths)
        tag_set = frozenset(tags)
        with self._writes.lock:
            self._log_removal(distribution_id, matchers, tag_set, None)
            self._drain()
        index = self._by_dist.get(distribution_id)
        if index is None:
            return 0
        victims = []
        for key in index.keys:
            obj = self._mem.get(key) or self._disk.get(key)
            if obj is None:
                continue
            if any(m(obj.meta.path) for m in matchers) or (
                    tag_set and not tag_set.isdisjoint(obj.meta.tags)):
                victims.append(key)
        return sum(1 for k in victims if self._drop(k))

    def clear(self) -> int:
        """Remove everything (both tiers)."""
        self.flush()
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

    # ---- Introspection and lifecycle ----

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
        if self._writes.done:
            self._drain()
        return {
            "cache_memory_bytes": self._mem_used,
            "cache_memory_objects": len(self._mem),
            "cache_disk_bytes": self._disk_used,
            "cache_disk_objects": len(self._disk),
            "cache_disk_write_backlog": self._writes.backlog,
        }

    def __len__(self) -> int:
        return len(set(self._mem) | set(self._disk))

    def flush(self) -> None:
        """Wait until every queued disk write is done and indexed (blocking)."""
        self._writes.join()
        self._drain()

    def close(self) -> None:
        """Finish queued disk writes and stop the helper threads (blocking; at shutdown)."""
        self._stop.set()
        self._writes.stop()
        self._drain()
        if self._verifier is not None:
            self._verifier.join()
            self._verifier = None

    # ---- Internals: indexes ----

    def _primary(self, key: str) -> str:
        obj = self._mem.get(key) or self._disk.get(key)
        return obj.primary_key if obj is not None else key

    def _index(self, obj: CachedObject) -> None:
        dist = self._by_dist.get(obj.meta.distribution_id)
        if dist is None:
            dist = self._by_dist[obj.meta.distribution_id] = _DistIndex()
        if obj.key in dist.keys:
            return
        dist.keys[obj.key] = None
        if obj.meta.vary:
            primary = obj.primary_key
            self._variants[primary] = self._variants.get(primary, 0) + 1
            self._vary.setdefault(primary, obj.meta.vary)

    def _unindex(self, obj: CachedObject) -> None:
        """Forget a key that left both tiers (and its resource's Vary layout with its last
        variant, so `_vary` does not grow with every URL ever seen)."""
        key = obj.key
        if key in self._mem or key in self._disk:
            return
        dist = self._by_dist.get(obj.meta.distribution_id)
        if dist is None or key not in dist.keys:
            return
        del dist.keys[key]
        if not dist.keys:
            del self._by_dist[obj.meta.distribution_id]
        if obj.meta.vary:
            primary = obj.primary_key
            left = self._variants.get(primary, 1) - 1
            if left > 0:
                self._variants[primary] = left
            else:
                self._variants.pop(primary, None)
                self._vary.pop(primary, None)

    def _mem_insert(self, obj: CachedObject) -> None:
        old = self._mem.pop(obj.key, None)
        if old is not None:
            self._mem_used -= old.cost
        if obj.cost > self.memory_bytes:
            if old is not None:
                self._unindex(old)
            return
        self._mem[obj.key] = obj
        self._mem_used += obj.cost
        self._index(obj)
        while self._mem_used > self.memory_bytes:
            _, victim = self._mem.popitem(last=False)
            self._mem_used -= victim.cost
            self._unindex(victim)

    def _disk_replace(self, obj: CachedObject) -> None:
        old = self._disk.pop(obj.key, None)
        if old is not None:
            self._disk_used -= old.size
            if old.file_path is not None and old.file_path != obj.file_path:
                unlink(old.file_path)
        self._disk[obj.key] = obj
        self._disk_used += obj.size
        self._index(obj)
        # Second chance (CLOCK) for objects hit in memory since the hand last passed them:
        # back to the recent end, with their meta file's time, which orders the disk tier
        # after a restart. Bounded: each object is passed over at most once per call.
        chances = len(self._disk)
        while self._disk_used > self.disk_bytes and self._disk:
            key, victim = self._disk.popitem(last=False)
            held = self._mem.get(key)
            if held is not None and held.hot and chances > 0:
                chances -= 1
                held.hot = False
                self._disk[key] = victim
                _touch(victim.meta_path)
                continue
            self._disk_used -= victim.size
            unlink(victim.meta_path)
            unlink(victim.file_path)
            self._unindex(victim)

    def _drop(self, key: str) -> bool:
        self._writes.tokens.pop(key, None)
        obj = self._mem.pop(key, None)
        if obj is not None:
            self._mem_used -= obj.cost
        disk_obj = self._disk_remove(key)
        gone = obj or disk_obj
        if gone is None:
            return False
        self._unindex(gone)
        return True

    def _disk_remove(self, key: str) -> CachedObject | None:
        obj = self._disk.pop(key, None)
        if obj is not None:
            self._disk_used -= obj.size
            unlink(obj.meta_path)
            unlink(obj.file_path)
        return obj

    # ---- Internals: the disk writer thread ----

    def _drain(self) -> None:
        """Index the writer thread's finished jobs (loop side).

        A job still current (its token unchanged, nothing removed it meanwhile) becomes the
        disk copy. A superseded or removed one has its body file deleted here; its meta
        file too, unless the key's meta file is still owned by an indexed object or will be
        rewritten by a newer queued job.
        """
        done = self._writes.done
        while done:
            job = done.popleft()
            obj = job.obj
            if job.body is not None:
                self._writes.pending_bytes -= obj.size
            current = self._writes.tokens.get(obj.key) == job.token
            if current:
                del self._writes.tokens[obj.key]
            meta_orphaned = obj.key not in self._disk and obj.key not in self._writes.tokens
            if not job.written:
                # An earlier, superseded job may have left the key's meta file behind,
                # expecting this one to rewrite it.
                if meta_orphaned:
                    unlink(self.layout.meta_path(obj.key))
                continue
            if job.body is None:
                if meta_orphaned:
                    unlink(job.meta_path)
                continue
            # A Vary layout registered since this job was queued makes it unreachable.
            layout = self._vary.get(obj.primary_key)
            outdated = layout is not None and layout != obj.meta.vary
            if not current or outdated or self._removed_since(job.seq, obj.primary_key,
                                                              obj.meta):
                unlink(job.body_path)
                if meta_orphaned:
                    unlink(job.meta_path)
                continue
            self._disk_replace(CachedObject(obj.key, obj.primary_key, obj.meta, obj.size,
                                            obj.crc, None, job.body_path, job.meta_path))

    # ---- Internals: files ----

    def _open_disk(self) -> None:
        """Re-index the disk tier after a restart (diskformat.DiskLayout.scan)."""
        for obj in self.layout.scan():
            if obj.meta.vary:
                self._vary[obj.primary_key] = obj.meta.vary
            self._disk_replace(obj)

    def _disk_snapshot(self) -> list[CachedObject]:
        """The disk index's objects, copied from another thread than the loop's."""
        while True:
            try:
                return list(self._disk.values())
            except RuntimeError:
                # The loop changed the index while it was being copied; copy again.
                continue

    def verify_pending(self) -> int:
        """Check the CRC of every disk object not verified since start; blocking (the store
        runs this in its own thread after a re-index unless told not to). Corrupt objects
        are flagged and dropped by the next lookup. Returns how many were found corrupt."""
        return self._verify(None)

    def _verify(self, stop: threading.Event | None) -> int:
        bad = 0
        for obj in self._disk_snapshot():
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
