"""Store: both tiers, LRU by bytes, streaming and atomic writes, restart re-index, corrupt
files, Vary variants, refresh, removal and invalidation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeagent.policy import vary_key
from edgeagent.store import ObjectMeta, Store

DIST = "E2QWRUHAPOMQZL"
OTHER = "E0000000000001"
KIB = 1024


def meta(path: str = "/a", dist: str = DIST, **over: object) -> ObjectMeta:
    fields: dict[str, object] = dict(distribution_id=dist, path=path, status=200,
                                     headers=(("content-type", "text/plain"),),
                                     stored_at=1000.0, ttl=60)
    fields.update(over)
    return ObjectMeta(**fields)  # type: ignore[arg-type]


def k(path: str, dist: str = DIST, extra: str = "") -> str:
    return f"{dist}\x00G\x00{path}{extra}"


def put(store: Store, path: str, body: bytes, dist: str = DIST, extra: str = "",
        **over: object) -> None:
    assert store.put(k(path, dist, extra), meta(path, dist, **over), body) is not None


def files(root: Path, suffix: str) -> list[Path]:
    return sorted(p for p in (root / "objects").rglob(f"*{suffix}"))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(memory_bytes=64 * KIB, disk_dir=tmp_path, disk_bytes=1024 * KIB,
              memory_object_max=8 * KIB)
    yield s
    s.close()


def reopen(tmp_path: Path, disk_bytes: int = 1024 * KIB, background: bool = False) -> Store:
    return Store(memory_bytes=64 * KIB, disk_dir=tmp_path, disk_bytes=disk_bytes,
                 memory_object_max=8 * KIB, verify_in_background=background)


# ---- Basic storage ----


def test_a_stored_object_is_found_by_its_key_with_body_and_metadata(store: Store) -> None:
    put(store, "/a", b"hello", etag='"v1"', tags=frozenset({"t"}))
    obj = store.lookup(k("/a"))
    assert obj is not None
    assert obj.body == b"hello"
    assert obj.size == 5
    assert obj.meta.etag == '"v1"' and obj.meta.tags == {"t"}
    assert obj.read(1, 3) == b"ell"
    assert store.lookup(k("/b")) is None


def test_small_objects_live_in_memory_and_on_disk(store: Store, tmp_path: Path) -> None:
    put(store, "/a", b"x" * 100)
    store.flush()
    assert store.memory_objects == 1 and store.disk_objects == 1
    assert len(files(tmp_path, ".body")) == 1 and len(files(tmp_path, ".meta")) == 1
    assert store.stats()["cache_disk_bytes"] == 100


def test_large_objects_go_straight_to_disk(store: Store) -> None:
    body = os.urandom(20 * KIB)
    put(store, "/big", body)
    obj = store.lookup(k("/big"))
    assert obj is not None
    assert obj.body is None and obj.file_path is not None
    assert store.memory_objects == 0
    with obj.open_body() as f:
        assert f.read() == body
    assert obj.read(100, 199) == body[100:200]


def test_a_head_slot_is_available_for_the_server(store: Store) -> None:
    put(store, "/a", b"x")
    obj = store.lookup(k("/a"))
    assert obj is not None and obj.head is None
    obj.head = b"HTTP/1.1 200 OK\r\n"
    again = store.lookup(k("/a"))
    assert again is not None and again.head == b"HTTP/1.1 200 OK\r\n"


def test_replacing_a_key_keeps_one_object_and_one_file(store: Store, tmp_path: Path) -> None:
    put(store, "/a", b"one")
    put(store, "/a", b"two!")
    store.flush()
    obj = store.lookup(k("/a"))
    assert obj is not None and obj.body == b"two!"
    assert len(files(tmp_path, ".body")) == 1
    assert store.disk_used == 4


def test_a_large_replacement_drops_the_small_memory_copy(store: Store) -> None:
    put(store, "/a", b"small")
    put(store, "/a", b"L" * 20 * KIB)
    obj = store.lookup(k("/a"))
    assert obj is not None and obj.body is None and obj.size == 20 * KIB


# ---- Streaming and atomic writes ----


def test_large_writes_stream_to_an_unreferenced_file_invisible_until_commit(
        store: Store, tmp_path: Path) -> None:
    writer = store.begin(k("/s"), meta("/s"))
    for _ in range(10):
        assert writer.write(b"y" * 4 * KIB)
    assert store.lookup(k("/s")) is None
    bodies = files(tmp_path, ".body")
    assert len(bodies) == 1 and bodies[0].stat().st_size == 40 * KIB
    assert files(tmp_path, ".meta") == []
    obj = writer.commit()
    assert obj is not None and obj.size == 40 * KIB and obj.body is None
    assert len(files(tmp_path, ".meta")) == 1
    assert list((tmp_path / "tmp").iterdir()) == []
    found = store.lookup(k("/s"))
    assert found is not None and found.read() == b"y" * 40 * KIB


def test_a_crash_mid_write_leaves_nothing_servable(store: Store, tmp_path: Path) -> None:
    writer = store.begin(k("/s"), meta("/s"))
    writer.write(b"y" * 20 * KIB)
    store.close()
    s = reopen(tmp_path)
    assert s.lookup(k("/s")) is None and s.disk_objects == 0
    assert files(tmp_path, ".body") == []
    writer.abort()
    s.close()


def test_a_streamed_object_that_turns_out_small_lands_in_memory(store: Store) -> None:
    writer = store.begin(k("/s"), meta("/s"))
    writer.write(b"ab")
    writer.write(memoryview(b"cd"))
    writer.write(bytearray(b"ef"))
    obj = writer.commit()
    assert obj is not None and obj.body == b"abcdef"
    assert store.memory_objects == 1


def test_an_aborted_write_leaves_nothing_behind(store: Store, tmp_path: Path) -> None:
    put(store, "/a", b"old")
    writer = store.begin(k("/a"), meta("/a"))
    writer.write(b"n" * 20 * KIB)
    writer.abort()
    assert writer.commit() is None
    obj = store.lookup(k("/a"))
    assert obj is not None and obj.body == b"old"
    store.flush()
    assert len(files(tmp_path, ".body")) == 1


def test_a_write_over_the_size_limit_gives_up(tmp_path: Path) -> None:
    s = Store(64 * KIB, tmp_path, 1024 * KIB, 8 * KIB, max_object_size=16 * KIB)
    writer = s.begin(k("/big"), meta("/big"))
    assert writer.write(b"z" * 16 * KIB)
    assert not writer.write(b"z")
    assert writer.failed and writer.commit() is None
    assert s.lookup(k("/big")) is None
    assert files(tmp_path, ".body") == []


def test_a_known_oversized_object_is_refused_up_front(store: Store) -> None:
    writer = store.begin(k("/huge"), meta("/huge"), size_hint=2048 * KIB)
    assert writer.failed and not writer.write(b"x")
    assert writer.commit() is None


def test_without_a_disk_tier_large_objects_are_not_cached() -> None:
    s = Store(64 * KIB, None, 0, 8 * KIB)
    writer = s.begin(k("/big"), meta("/big"))
    writer.write(b"x" * 4 * KIB)
    assert not writer.write(b"x" * 5 * KIB)
    assert writer.commit() is None
    assert s.put(k("/small"), meta("/small"), b"x" * 100) is not None
    small = s.lookup(k("/small"))
    assert small is not None and small.body == b"x" * 100 and small.file_path is None


# ---- LRU by bytes ----


def test_memory_evicts_least_recently_used_objects_by_bytes(tmp_path: Path) -> None:
    s = Store(memory_bytes=20 * KIB, disk_dir=None, disk_bytes=0, memory_object_max=8 * KIB)
    for name in ("a", "b", "c"):
        put(s, f"/{name}", name.encode() * 7 * KIB)
    assert s.memory_used <= 20 * KIB
    assert s.lookup(k("/a")) is None
    assert s.lookup(k("/b")) is not None
    put(s, "/d", b"d" * 7 * KIB)
    assert s.lookup(k("/c")) is None
    assert s.lookup(k("/b")) is not None and s.lookup(k("/d")) is not None


def test_memory_eviction_keeps_the_disk_copy(tmp_path: Path) -> None:
    s = Store(memory_bytes=10 * KIB, disk_dir=tmp_path, disk_bytes=1024 * KIB,
              memory_object_max=8 * KIB)
    put(s, "/a", b"a" * 6 * KIB)
    put(s, "/b", b"b" * 6 * KIB)
    s.flush()
    assert s.memory_objects == 1 and s.disk_objects == 2
    obj = s.lookup(k("/a"))
    assert obj is not None and obj.body == b"a" * 6 * KIB
    assert s.memory_objects == 1


def test_disk_evicts_least_recently_used_objects_by_bytes(tmp_path: Path) -> None:
    s = Store(memory_bytes=64 * KIB, disk_dir=tmp_path, disk_bytes=50 * KIB,
              memory_object_max=8 * KIB)
    for name in ("a", "b", "c"):
        put(s, f"/{name}", name.encode() * 20 * KIB)
    assert s.disk_used <= 50 * KIB
    assert s.lookup(k("/a")) is None
    assert s.lookup(k("/b")) is not None
    put(s, "/d", b"d" * 20 * KIB)
    assert s.lookup(k("/c")) is None and s.lookup(k("/b")) is not None
    assert len(files(tmp_path, ".body")) == 2 and len(files(tmp_path, ".meta")) == 2


def test_disk_eviction_of_a_small_object_keeps_serving_it_from_memory(tmp_path: Path) -> None:
    s = Store(memory_bytes=64 * KIB, disk_dir=tmp_path, disk_bytes=10 * KIB,
              memory_object_max=8 * KIB)
    put(s, "/a", b"a" * 6 * KIB)
    put(s, "/b", b"b" * 6 * KIB)
    s.flush()
    assert s.disk_objects == 1
    obj = s.lookup(k("/a"))
    assert obj is not None and obj.body == b"a" * 6 * KIB and obj.file_path is None


def test_a_memory_hit_keeps_a_hot_object_from_leaving_the_disk_first(tmp_path: Path) -> None:
    s = Store(memory_bytes=1024 * KIB, disk_dir=tmp_path, disk_bytes=20 * KIB, memory_object_max=8 * KIB)
    for name in ("a", "b", "c"):
        put(s, f"/{name}", name.encode() * 6 * KIB)
        s.flush()
    hit = s.lookup(k("/a"))  # served from memory: its disk copy is never looked up
    assert hit is not None and hit.file_path is None
    put(s, "/d", b"d" * 6 * KIB)
    s.flush()  # over the disk budget by one object: /b goes, not the older but hot /a
    put(s, "/e", b"e" * 6 * KIB)
    s.flush()  # then /c, never hit; /a went to the recent end of the disk order
    assert s.disk_objects == 3
    s.close()
    # The disk order survives a restart too (the kept object's meta file was touched).
    r = reopen(tmp_path, disk_bytes=20 * KIB)
    assert [r.lookup(k(f"/{name}")) is not None for name in "abcde"] == [True, False, False, True, True]
    r.close()


# ---- Restart ----


def test_the_disk_tier_survives_a_restart(store: Store, tmp_path: Path) -> None:
    big = os.urandom(30 * KIB)
    put(store, "/small", b"small body", etag='"e"', tags=frozenset({"x", "y"}),
        headers=(("content-type", "text/plain"), ("x-nonascii", "caf\u00e9")))
    put(store, "/big", big)
    store.close()
    s = reopen(tmp_path)
    assert s.disk_objects == 2 and s.disk_used == 10 + 30 * KIB
    small = s.lookup(k("/small"))
    assert small is not None and small.body == b"small body"
    assert small.meta.etag == '"e"' and small.meta.tags == {"x", "y"}
    assert small.meta.headers == (("content-type", "text/plain"), ("x-nonascii", "caf\u00e9"))
    assert s.verify_pending() == 0
    found = s.lookup(k("/big"))
    assert found is not None and found.read() == big
    s.close()


def test_a_restart_with_a_smaller_disk_budget_evicts_the_oldest(store: Store,
                                                                tmp_path: Path) -> None:
    for age, name in enumerate(("c", "b", "a")):
        put(store, f"/{name}", name.encode() * 20 * KIB)
        newest = max(files(tmp_path, ".meta"), key=lambda p: p.stat().st_mtime_ns)
        os.utime(newest, (1_000_000 - age * 1000, 1_000_000 - age * 1000))
    store.close()
    s = reopen(tmp_path, disk_bytes=45 * KIB)
    assert s.disk_objects == 2 and s.disk_used <= 45 * KIB
    assert s.verify_pending() == 0
    assert s.lookup(k("/a")) is None
    assert s.lookup(k("/b")) is not None and s.lookup(k("/c")) is not None
    s.close()


def test_leftover_temp_files_and_orphan_bodies_are_removed_on_start(
        store: Store, tmp_path: Path) -> None:
    put(store, "/a", b"keep")
    store.close()
    (tmp_path / "tmp" / "partial").write_bytes(b"half a write")
    orphan = tmp_path / "objects" / "ab" / "ab00.1234.body"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"no meta points here")
    s = reopen(tmp_path)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not orphan.exists()
    obj = s.lookup(k("/a"))
    assert obj is not None and obj.body == b"keep"
    s.close()


def test_a_truncated_body_is_dropped_on_restart(store: Store, tmp_path: Path) -> None:
    put(store, "/a", b"a" * 100)
    store.close()
    body = files(tmp_path, ".body")[0]
    body.write_bytes(b"a" * 50)
    s = reopen(tmp_path)
    assert s.lookup(k("/a")) is None
    assert files(tmp_path, ".meta") == [] and files(tmp_path, ".body") == []
    s.close()


def test_a_corrupt_meta_file_is_dropped_on_restart(store: Store, tmp_path: Path) -> None:
    put(store, "/a", b"a" * 100)
    put(store, "/b", b"b" * 100)
    store.close()
    metas = files(tmp_path, ".meta")
    metas[0].write_bytes(b"\x00garbage{")
    s = reopen(tmp_path)
    assert s.disk_objects == 1
    assert len(files(tmp_path, ".body")) == 1
    s.close()


def test_a_small_body_with_flipped_bytes_is_never_served(store: Store, tmp_path: Path) -> None:
    put(store, "/a", b"a" * 100)
    store.close()
    files(tmp_path, ".body")[0].write_bytes(b"b" * 100)
    s = reopen(tmp_path)
    assert s.lookup(k("/a")) is None
    assert s.disk_objects == 0 and files(tmp_path, ".body") == []
    s.close()


def test_a_large_body_with_flipped_bytes_is_never_served(store: Store, tmp_path: Path) -> None:
    put(store, "/big", b"a" * 20 * KIB)
    store.close()
    files(tmp_path, ".body")[0].write_bytes(b"b" * 20 * KIB)
    s = reopen(tmp_path)
    assert s.lookup(k("/big")) is None
    assert s.verify_pending() == 1
    assert s.lookup(k("/big")) is None
    assert s.disk_objects == 0
    s.close()


def test_an_unverified_large_object_is_served_once_verified(store: Store,
                                                            tmp_path: Path) -> None:
    put(store, "/big", b"a" * 20 * KIB)
    store.close()
    s = reopen(tmp_path, background=True)
    assert s._verifier is not None
    s._verifier.join(timeout=10)
    found = s.lookup(k("/big"))
    assert found is not None and found.size == 20 * KIB
    s.close()


def test_a_body_deleted_behind_the_stores_back_is_a_miss(store: Store, tmp_path: Path) -> None:
    put(store, "/big", b"a" * 20 * KIB)
    obj = store.lookup(k("/big"))
    assert obj is not None
    files(tmp_path, ".body")[0].unlink()
    with pytest.raises(FileNotFoundError):
        obj.open_body()


# ---- Vary ----


def test_vary_variants_are_stored_and_found_separately(store: Store) -> None:
    names = ("accept-language",)
    de, fr = {"accept-language": "de"}, {"accept-language": "fr"}
    assert store.put(k("/v"), meta("/v", vary=names, vary_key=vary_key(names, de)), b"DE")
    assert store.put(k("/v"), meta("/v", vary=names, vary_key=vary_key(names, fr)), b"FR")
    de_obj, fr_obj = store.lookup(k("/v"), de), store.lookup(k("/v"), fr)
    assert de_obj is not None and de_obj.body == b"DE"
    assert fr_obj is not None and fr_obj.body == b"FR"
    assert store.lookup(k("/v"), {"accept-language": "it"}) is None
    assert store.lookup(k("/v")) is None


def test_vary_variants_survive_a_restart(store: Store, tmp_path: Path) -> None:
    names = ("accept-language",)
    de = {"accept-language": "de"}
    store.put(k("/v"), meta("/v", vary=names, vary_key=vary_key(names, de)), b"DE")
    store.close()
    s = reopen(tmp_path)
    obj = s.lookup(k("/v"), de)
    assert obj is not None and obj.body == b"DE"
    s.close()


def test_a_changed_vary_layout_drops_the_old_variants(store: Store) -> None:
    put(store, "/v", b"plain")
    names = ("accept-language",)
    de = {"accept-language": "de"}
    store.put(k("/v"), meta("/v", vary=names, vary_key=vary_key(names, de)), b"DE")
    store.flush()
    assert store.disk_objects == 1
    put(store, "/v", b"plain again")
    store.flush()
    found = store.lookup(k("/v"), de)
    assert found is not None and found.body == b"plain again"
    assert store.disk_objects == 1


# ---- Refresh (304) ----


def test_refresh_replaces_metadata_and_keeps_the_body(store: Store, tmp_path: Path) -> None:
    put(store, "/a", b"body", etag='"v1"')
    obj = store.lookup(k("/a"))
    assert obj is not None
    obj.head = b"old head"
    fresh = store.refresh(obj, meta("/a", stored_at=2000.0, ttl=120, etag='"v1"'))
    assert fresh.body == b"body" and fresh.head is None
    found = store.lookup(k("/a"))
    assert found is not None and found.meta.stored_at == 2000.0 and found.meta.ttl == 120
    store.close()
    s = reopen(tmp_path)
    reloaded = s.lookup(k("/a"))
    assert reloaded is not None and reloaded.meta.ttl == 120 and reloaded.body == b"body"
    s.close()


def test_refresh_of_a_disk_only_object_rewrites_only_its_meta(store: Store,
                                                              tmp_path: Path) -> None:
    put(store, "/big", b"q" * 20 * KIB)
    body_before = files(tmp_path, ".body")
    obj = store.lookup(k("/big"))
    assert obj is not None
    fresh = store.refresh(obj, meta("/big", ttl=999))
    assert fresh.body is None and fresh.read(0, 0) == b"q"
    assert files(tmp_path, ".body") == body_before
    found = store.lookup(k("/big"))
    assert found is not None and found.meta.ttl == 999


def test_refresh_after_invalidation_does_not_resurrect_the_object(store: Store) -> None:
    put(store, "/a", b"body")
    obj = store.lookup(k("/a"))
    assert obj is not None
    store.invalidate(DIST, ["/a"])
    fresh = store.refresh(obj, meta("/a", ttl=120))
    assert fresh.body == b"body"
    assert store.lookup(k("/a")) is None


# ---- Removal and invalidation ----


def populate(store: Store) -> None:
    put(store, "/img/a.png", b"a", tags=frozenset({"img", "a"}))
    put(store, "/img/a.png", b"a-q", extra="\x00qv=2")
    put(store, "/img/a.png", b"a-gz", extra="\x00egzip")
    put(store, "/img/deep/b.png", b"b" * 20 * KIB, tags=frozenset({"img"}))
    put(store, "/css/site.css", b"c", tags=frozenset({"css"}))
    put(store, "/index.html", b"i")
    put(store, "/img/a.png", b"other dist", dist=OTHER)
    names = ("accept-language",)
    for lang in ("de", "fr"):
        store.put(k("/i18n"), meta("/i18n", vary=names,
                                   vary_key=vary_key(names, {"accept-language": lang})),
                  lang.encode())


def test_invalidating_an_exact_path_removes_all_its_variants(store: Store) -> None:
    populate(store)
    assert store.invalidate(DIST, ["/img/a.png"]) == 3
    assert store.lookup(k("/img/a.png")) is None
    assert store.lookup(k("/img/a.png", extra="\x00qv=2")) is None
    assert store.lookup(k("/img/a.png", extra="\x00egzip")) is None
    assert store.lookup(k("/img/a.png", OTHER)) is not None
    assert store.lookup(k("/css/site.css")) is not None


def test_invalidating_a_wildcard_removes_matching_paths_in_both_tiers(
        store: Store, tmp_path: Path) -> None:
    populate(store)
    store.flush()
    assert store.invalidate(DIST, ["/img/*"]) == 4
    assert store.lookup(k("/img/deep/b.png")) is None
    assert store.lookup(k("/index.html")) is not None
    assert all("img" not in str(p) for p in files(tmp_path, ".meta"))
    assert store.disk_objects == 5


def test_invalidating_everything_leaves_other_distributions_alone(store: Store,
                                                                  tmp_path: Path) -> None:
    populate(store)
    store.flush()
    assert store.invalidate(DIST, ["/*"]) == 8
    assert store.memory_objects == 1 and store.disk_objects == 1
    assert len(files(tmp_path, ".body")) == 1
    assert store.lookup(k("/img/a.png", OTHER)) is not None


def test_invalidating_by_tag_removes_tagged_objects(store: Store) -> None:
    populate(store)
    assert store.invalidate(DIST, [], ["img"]) == 2
    assert store.lookup(k("/img/a.png")) is None
    assert store.lookup(k("/img/deep/b.png")) is None
    assert store.lookup(k("/img/a.png", extra="\x00qv=2")) is not None
    assert store.invalidate(DIST, [], ["nothing"]) == 0


def test_invalidating_vary_variants_removes_them_all(store: Store) -> None:
    populate(store)
    assert store.invalidate(DIST, ["/i18n"]) == 2
    assert store.lookup(k("/i18n"), {"accept-language": "de"}) is None


def test_invalidating_an_unknown_distribution_removes_nothing(store: Store) -> None:
    populate(store)
    assert store.invalidate("E9999999999999", ["/*"], ["img"]) == 0


def test_invalidation_survives_a_restart(store: Store, tmp_path: Path) -> None:
    populate(store)
    store.invalidate(DIST, ["/img/*"])
    store.close()
    s = reopen(tmp_path)
    assert s.lookup(k("/img/a.png")) is None
    assert s.lookup(k("/index.html")) is not None
    s.close()


def test_remove_drops_a_key_and_its_vary_variants(store: Store) -> None:
    populate(store)
    assert store.remove(k("/index.html")) == 1
    assert store.remove(k("/index.html")) == 0
    assert store.remove(k("/i18n")) == 2
    assert store.lookup(k("/i18n"), {"accept-language": "fr"}) is None


def test_a_fetch_that_raced_an_invalidation_is_not_stored(store: Store) -> None:
    writer = store.begin(k("/img/a.png"), meta("/img/a.png"))
    writer.write(b"fetched before the invalidation")
    store.invalidate(DIST, ["/img/*"])
    assert writer.commit() is None
    assert store.lookup(k("/img/a.png")) is None


def test_a_fetch_that_raced_an_unrelated_invalidation_is_stored(store: Store) -> None:
    writer = store.begin(k("/img/a.png"), meta("/img/a.png", tags=frozenset({"img"})))
    writer.write(b"body")
    store.invalidate(DIST, ["/css/*"], ["css"])
    store.invalidate(OTHER, ["/*"])
    assert writer.commit() is not None
    assert store.lookup(k("/img/a.png")) is not None


def test_a_fetch_that_raced_a_tag_invalidation_is_not_stored(store: Store) -> None:
    writer = store.begin(k("/x"), meta("/x", tags=frozenset({"t"})))
    writer.write(b"body")
    store.invalidate(DIST, [], ["t"])
    assert writer.commit() is None


def test_clear_empties_both_tiers(store: Store, tmp_path: Path) -> None:
    populate(store)
    assert store.clear() == 9
    assert len(store) == 0 and files(tmp_path, ".body") == []
    assert store.memory_used == 0 and store.disk_used == 0


# ---- Write-behind of small objects ----


def test_an_invalidation_racing_queued_disk_writes_leaves_nothing_on_disk(
        store: Store, tmp_path: Path) -> None:
    for i in range(200):
        put(store, f"/p{i}", b"x" * 100)
    store.invalidate(DIST, ["/*"])
    store.flush()
    assert store.disk_objects == 0 and len(store) == 0
    assert files(tmp_path, ".body") == [] and files(tmp_path, ".meta") == []


def test_rapid_replacements_persist_only_the_newest_version(store: Store,
                                                            tmp_path: Path) -> None:
    for i in range(50):
        put(store, "/a", f"version {i}".encode())
    store.flush()
    assert len(files(tmp_path, ".body")) == 1 and store.disk_objects == 1
    store.close()
    s = reopen(tmp_path)
    obj = s.lookup(k("/a"))
    assert obj is not None and obj.body == b"version 49"
    s.close()


def test_a_large_commit_supersedes_a_queued_small_write(store: Store, tmp_path: Path) -> None:
    put(store, "/a", b"small")
    put(store, "/a", b"L" * 20 * KIB)
    store.close()
    assert len(files(tmp_path, ".body")) == 1
    s = reopen(tmp_path)
    assert s.verify_pending() == 0
    obj = s.lookup(k("/a"))
    assert obj is not None and obj.size == 20 * KIB
    s.close()


def test_a_refresh_of_a_queued_object_persists_the_new_metadata(store: Store,
                                                               tmp_path: Path) -> None:
    put(store, "/a", b"body")
    obj = store.lookup(k("/a"))
    assert obj is not None
    store.refresh(obj, meta("/a", ttl=777))
    store.close()
    s = reopen(tmp_path)
    found = s.lookup(k("/a"))
    assert found is not None and found.meta.ttl == 777 and found.body == b"body"
    s.close()


def test_close_persists_every_queued_write(store: Store, tmp_path: Path) -> None:
    for i in range(100):
        put(store, f"/p{i}", b"y" * 50)
    store.close()
    s = reopen(tmp_path)
    assert s.disk_objects == 100
    found = s.lookup(k("/p99"))
    assert found is not None and found.body == b"y" * 50
    s.close()


def test_metrics_gauges_report_both_tiers(store: Store) -> None:
    put(store, "/a", b"x" * 10)
    store.flush()
    stats = store.stats()
    assert stats["cache_memory_objects"] == 1 and stats["cache_disk_objects"] == 1
    assert stats["cache_disk_bytes"] == 10 and stats["cache_disk_write_backlog"] == 0


def test_the_vary_layout_is_forgotten_with_its_last_variant(tmp_path: Path) -> None:
    s = Store(memory_bytes=4 * KIB, disk_dir=None, disk_bytes=0, memory_object_max=2 * KIB)
    names = ("accept-language",)
    for i in range(20):
        headers = {"accept-language": "de"}
        s.put(k(f"/v{i}"), meta(f"/v{i}", vary=names, vary_key=vary_key(names, headers)),
              b"x" * KIB)
    assert len(s._vary) == len(s) <= 3
    found = s.lookup(k("/v19"), {"accept-language": "de"})
    assert found is not None and found.body == b"x" * KIB


def test_a_variant_written_under_an_old_vary_layout_is_not_indexed(store: Store) -> None:
    lang, enc = ("accept-language",), ("accept",)
    de = {"accept-language": "de", "accept": "text/html"}
    store.put(k("/v"), meta("/v", vary=lang, vary_key=vary_key(lang, de)), b"by language")
    store.put(k("/v"), meta("/v", vary=enc, vary_key=vary_key(enc, de)), b"by accept")
    store.flush()
    assert store.disk_objects == 1
    found = store.lookup(k("/v"), de)
    assert found is not None and found.body == b"by accept"


# ---- Invariants under a random mix of operations ----


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_accounting_and_files_stay_consistent_under_random_operations(
        tmp_path: Path, seed: int) -> None:
    import random

    rng = random.Random(seed)
    s = Store(memory_bytes=24 * KIB, disk_dir=tmp_path, disk_bytes=96 * KIB,
              memory_object_max=4 * KIB, verify_in_background=False)
    names = ("accept-language",)
    for _ in range(400):
        path = f"/p{rng.randrange(12)}"
        op = rng.random()
        if op < 0.45:
            size = rng.choice((0, 10, 900, 3 * KIB, 6 * KIB, 20 * KIB))
            if rng.random() < 0.2:
                headers = {"accept-language": rng.choice(("de", "fr"))}
                s.put(k(path), meta(path, vary=names, vary_key=vary_key(names, headers),
                                    tags=frozenset({path})), os.urandom(size))
            else:
                s.put(k(path), meta(path, tags=frozenset({path})), os.urandom(size))
        elif op < 0.75:
            found = s.lookup(k(path), {"accept-language": rng.choice(("de", "fr"))})
            if found is not None and rng.random() < 0.3:
                s.refresh(found, meta(path, ttl=rng.randrange(100)))
        elif op < 0.85:
            s.invalidate(DIST, [rng.choice((path, "/p1*", "/*"))], [])
        elif op < 0.92:
            s.invalidate(DIST, [], [path])
        elif op < 0.97:
            s.remove(k(path))
        else:
            s.flush()
        assert s.memory_used == sum(o.cost for o in s._mem.values()) <= 24 * KIB
        assert s.disk_used == sum(o.size for o in s._disk.values()) <= 96 * KIB
    s.flush()
    on_disk = {p.name for p in files(tmp_path, ".body")}
    assert on_disk == {Path(o.file_path or "").name for o in s._disk.values()}
    assert len(files(tmp_path, ".meta")) == s.disk_objects
    indexed = {key for d in s._by_dist.values() for key in d.keys}
    assert indexed == set(s._mem) | set(s._disk)
    expected = {key: o.crc for key, o in s._disk.items()}
    s.close()
    again = Store(memory_bytes=24 * KIB, disk_dir=tmp_path, disk_bytes=96 * KIB,
                  memory_object_max=4 * KIB, verify_in_background=False)
    assert again.verify_pending() == 0
    assert {key: o.crc for key, o in again._disk.items()} == expected
    again.close()


def test_the_initial_age_and_the_targeted_fields_survive_a_restart(store: Store, tmp_path: Path) -> None:
    put(store, "/aged", b"old", origin_age=7200, must_revalidate=True,
        targeted=(("cdn-cache-control", "max-age=60"),))
    store.close()
    s = reopen(tmp_path)
    found = s.lookup(k("/aged"))
    assert found is not None and found.meta.origin_age == 7200 and found.meta.must_revalidate
    assert found.meta.targeted == (("cdn-cache-control", "max-age=60"),)
    s.close()


def test_a_meta_file_written_before_targeted_fields_still_loads(store: Store, tmp_path: Path) -> None:
    import json

    put(store, "/older", b"old", origin_age=30)
    store.close()
    (meta_file,) = files(tmp_path, ".meta")
    record = json.loads(meta_file.read_text())
    del record["targeted"]
    meta_file.write_text(json.dumps(record))
    s = reopen(tmp_path)
    found = s.lookup(k("/older"))
    assert found is not None and found.meta.origin_age == 30 and found.meta.targeted == ()
    s.close()
