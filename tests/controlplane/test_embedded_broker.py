"""The embedded broker (controlplane/broker.py) with real `celery worker` processes.

The failure it exists for: kombu's stock filesystem transport let a worker read a message
file before its publisher had written it, and the worker died of the JSONDecodeError
(celery/kombu#1551), taking `make run` down with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import ROOT, wait_for

PUBLISHERS = 4
MESSAGES_EACH = 200


class Probe:
    """A broker folder, workers consuming it, and the file their task appends to."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.record = tmp / "record.txt"
        self.record.touch()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_", "CELERY_"))}
        self.env.update(DEBUG="true", CDN_VAR_DIR=str(tmp / "var"), PROBE_RECORD=str(self.record),
                        PYTHONUNBUFFERED="1")
        self.broker = tmp / "var" / "broker"
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self) -> subprocess.Popen[bytes]:
        number = len(self.workers) + 1
        log = open(self.tmp / f"worker{number}.log", "ab")
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tests.controlplane.broker_probe", "worker",
                                   "--pool", "threads", "--concurrency", "4", "--loglevel", "INFO",
                                   "--without-heartbeat", "--without-gossip", "--without-mingle",
                                   "--hostname", f"probe{number}@%h"],
                                  cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(worker)
        return worker

    def publish(self, prefix: str, count: int) -> subprocess.Popen[bytes]:
        """Another process sends `count` tasks, as web and beat do."""
        code = ("import sys\nfrom tests.controlplane.broker_probe import record\n"
                "for i in range(int(sys.argv[2])):\n    record.delay(f'{sys.argv[1]}-{i}')\n")
        return subprocess.Popen([sys.executable, "-c", code, prefix, str(count)], cwd=ROOT, env=self.env,
                                stderr=subprocess.PIPE)

    def recorded(self) -> list[str]:
        return self.record.read_text().split()

    def log(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.tmp.glob("worker*.log")))

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait(5)


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Probe]:
    probe = Probe(tmp_path)
    try:
        yield probe
    finally:
        probe.close()


def wait_until_recorded(probe: Probe, token: str, timeout: float = 30) -> None:
    """Publish `token` and wait for a worker to run it."""
    sender = probe.publish(token, 1)
    assert sender.wait(60) == 0, sender.stderr.read() if sender.stderr else ""
    wait_for(f"the task {token}-0 to run", lambda: f"{token}-0" in probe.recorded(), timeout)


def test_a_worker_moves_undecodable_message_files_aside_and_keeps_working(probe: Probe) -> None:
    worker = probe.start_worker()
    wait_until_recorded(probe, "before", timeout=60)
    queue = probe.broker / "queue"
    a_real_message = json.dumps({"body": "e30=", "properties": {"delivery_tag": "x", "body_encoding": "base64"}})
    garbage = {
        # What the race produced: a publisher had created the file and not written it yet.
        "00000000000000000001_empty.celery.msg": b"",
        "00000000000000000002_truncated.celery.msg": a_real_message[: len(a_real_message) // 2].encode(),
        "00000000000000000003_binary.celery.msg": b"\xff\xfe\x00 not json",
        "00000000000000000004_notamessage.celery.msg": b"[1, 2, 3]",
    }
    for name, content in garbage.items():
        (queue / name).write_bytes(content)

    wait_until_recorded(probe, "after")

    assert worker.poll() is None, probe.log()[-3000:]
    assert sorted(path.name for path in (probe.broker / "bad").iterdir()) == sorted(garbage)
    assert not any(name in os.listdir(queue) for name in garbage)
    log = probe.log()
    for name in garbage:
        warnings = [line for line in log.splitlines() if name in line]
        assert len(warnings) == 1 and "cannot be decoded" in warnings[0], log[-3000:]
    assert "Unrecoverable error" not in log


def test_concurrent_publishers_and_two_workers_deliver_every_message_exactly_once(probe: Probe) -> None:
    probe.start_worker()
    probe.start_worker()
    wait_until_recorded(probe, "warmup", timeout=60)
    started = time.monotonic()
    senders = [probe.publish(f"p{n}", MESSAGES_EACH) for n in range(PUBLISHERS)]
    for sender in senders:
        assert sender.wait(120) == 0, sender.stderr.read() if sender.stderr else ""
    total = PUBLISHERS * MESSAGES_EACH
    wait_for(f"{total} tasks to run", lambda: len(probe.recorded()) >= total + 1, timeout=120, interval=0.2)
    time.sleep(1)  # a duplicate delivery, if there were one, would land now

    counts = Counter(probe.recorded())
    expected = {f"p{n}-{i}" for n in range(PUBLISHERS) for i in range(MESSAGES_EACH)} | {"warmup-0"}
    assert set(counts) == expected
    assert [token for token, seen in counts.items() if seen != 1] == []
    assert all(worker.poll() is None for worker in probe.workers), probe.log()[-3000:]
    assert not (probe.broker / "bad").exists() or list((probe.broker / "bad").iterdir()) == []
    assert "cannot be decoded" not in probe.log() and "Unrecoverable error" not in probe.log()
    assert time.monotonic() - started < 240


def test_importing_settings_creates_no_broker_folder(tmp_path: Path) -> None:
    """An image build runs collectstatic, which imports settings: nothing may appear for a broker it won't use."""
    code = "from django.conf import settings; print(settings.CELERY_BROKER_URL)"
    for url in ("redis://127.0.0.1:6379/0", ""):  # "" is the default, the embedded broker
        env = {"PATH": "/usr/bin:/bin", "DEBUG": "true", "CDN_VAR_DIR": str(tmp_path),
               "DJANGO_SETTINGS_MODULE": "controlplane.settings", "CELERY_BROKER_URL": url}
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.stdout.strip() == (url or "atomicfs://"), result.stderr
        assert not (tmp_path / "broker").exists()


def test_settings_refuse_kombus_racy_filesystem_transport(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "true", "CDN_VAR_DIR": str(tmp_path), "CELERY_BROKER_URL": "filesystem://"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "half-written message" in result.stderr and "atomicfs://" in result.stderr
