"""The disk format: where an object's files live, how its meta file is written and read back.

Each object is two files under `<disk_dir>/objects/<2 hex>/`: `<sha256>.meta` (JSON, with
the body's length and CRC-32) and `<sha256>.<nonce>.body`. A body is written under its own
fresh name, which nothing references until it is complete; then the meta file is written
under `<disk_dir>/tmp/` and renamed into place (`publish`). A crash therefore leaves the
old object, the new one, or an unreferenced body that `scan` deletes on the next start.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from .objects import CachedObject, ObjectMeta

META_VERSION = 1


class DiskLayout:
    """The files of the disk tier under one directory."""

    def __init__(self, disk_dir: Path) -> None:
        self.disk_dir = disk_dir
        self._made_dirs: set[str] = set()

    def temp_path(self) -> str:
        return str(self.disk_dir / "tmp" / secrets.token_hex(8))

    def object_dir(self, digest: str) -> str:
        d = str(self.disk_dir / "objects" / digest[:2])
        if d not in self._made_dirs:
            os.makedirs(d, exist_ok=True)
            self._made_dirs.add(d)
        return d

    def meta_path(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return os.path.join(self.object_dir(digest), digest + ".meta")

    def new_body_path(self, key: str) -> str:
        """A fresh, unreferenced body file name for `key`."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return os.path.join(self.object_dir(digest), f"{digest}.{secrets.token_hex(4)}.body")

    def publish(self, obj: CachedObject, body_path: str) -> str:
        """Point the key's meta file at a complete body file; returns the meta path."""
        meta_path = body_path.rsplit(".", 2)[0] + ".meta"
        try:
            self.write_meta(meta_path, obj, os.path.basename(body_path))
        except OSError:
            unlink(body_path)
            raise
        return meta_path

    def write_meta(self, meta_path: str, obj: CachedObject, body_name: str) -> None:
        meta = obj.meta
        record = {
            "v": META_VERSION,
            "key": obj.key,
            "primary": obj.primary_key,
            "body": body_name,
            "size": obj.size,
            "crc": obj.crc,
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
            "targeted": [list(h) for h in meta.targeted],
        }
        data = json.dumps(record, separators=(",", ":")).encode("utf-8", "surrogatepass")
        tmp = self.temp_path()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, meta_path)
        except OSError:
            unlink(tmp)
            raise

    def scan(self) -> list[CachedObject]:
        """The objects found on disk after a restart, oldest first; anything unreadable,
        truncated or orphaned is deleted. Bodies are not read: their CRC is checked later."""
        tmp_dir = self.disk_dir / "tmp"
        objects_dir = self.disk_dir / "objects"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        objects_dir.mkdir(parents=True, exist_ok=True)
        for leftover in tmp_dir.iterdir():
            unlink(str(leftover))
        found: list[tuple[float, CachedObject]] = []
        for sub in objects_dir.iterdir():
            if not sub.is_dir():
                unlink(str(sub))
                continue
            self._made_dirs.add(str(sub))
            names = set(os.listdir(sub))
            referenced: set[str] = set()
            for name in names:
                if not name.endswith(".meta"):
                    continue
                meta_path = os.path.join(sub, name)
                loaded = load_meta(meta_path, str(sub))
                body_path = loaded.file_path if loaded is not None else None
                if loaded is None or body_path is None or \
                        os.path.basename(body_path) not in names:
                    unlink(meta_path)
                    continue
                try:
                    size = os.stat(body_path).st_size
                    mtime = os.stat(meta_path).st_mtime
                except OSError:
                    unlink(meta_path)
                    continue
                if size != loaded.size:
                    unlink(meta_path)
                    continue
                referenced.add(os.path.basename(body_path))
                found.append((mtime, loaded))
            for name in names:
                if not name.endswith(".meta") and name not in referenced:
                    unlink(os.path.join(sub, name))
        found.sort(key=lambda item: item[0])
        return [obj for _, obj in found]


def load_meta(meta_path: str, directory: str) -> CachedObject | None:
    try:
        with open(meta_path, "rb") as f:
            record: Any = json.loads(f.read().decode("utf-8", "surrogatepass"))
        if not isinstance(record, dict) or record.get("v") != META_VERSION:
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
            targeted=tuple((str(n), str(v)) for n, v in record.get("targeted", ())),
        )
        return CachedObject(str(record["key"]), str(record["primary"]), meta,
                            int(record["size"]), int(record["crc"]), None,
                            os.path.join(directory, body_name), meta_path, verified=False)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass
