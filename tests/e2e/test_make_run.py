"""Issue 5's smoke test: `make run` on a temporary state directory and free ports, used the
way a newcomer would: follow the printed curl commands, invalidate, stop with Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .cluster import ROOT, Cluster, free_port, wait_for

READY = "make run: ready"


def processes_using(state: Path) -> list[int]:
    """Every live process started with this state directory in its environment."""
    marker = f"CDN_VAR_DIR={state}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                status = (entry / "status").read_text()
                if "State:\tZ" not in status:
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


class MakeRun:
    def __init__(self, state: Path, env: dict[str, str]) -> None:
        self.state = state
        self.output: list[str] = []
        self.process = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.output)

    def interrupt(self, timeout: float = 30) -> int:
        os.killpg(self.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        return self.process.wait(timeout)


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Free ports, and the same database and broker handling as the end-to-end cluster (a fresh
    PostgreSQL database and a Redis db of its own when CI points at the real services)."""
    cluster = Cluster(tmp_path)
    env = dict(cluster.env)
    env.pop("DEBUG", None)  # make run's own default
    env.update(CDN_WEB_PORT=str(free_port()), CDN_ORIGIN_PORT=str(free_port()))
    base = free_port()
    while not all(_free(base + i) and _free(base + 100 + i) for i in range(3)):
        base = free_port()
    env.update(CDN_EDGE_PORT=str(base), CDN_EDGE_ADMIN_PORT=str(base + 100))
    try:
        yield env
    finally:
        for pid in processes_using(tmp_path / "var"):
            os.kill(pid, signal.SIGKILL)
        cluster.close()


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def curl(command: str) -> str:
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, (command, result.stderr)
    return result.stdout


def test_make_run_serves_through_three_edges_and_stops_cleanly(tmp_path: Path, run_env: dict[str, str]) -> None:
    env = run_env
    run = MakeRun(Path(env["CDN_VAR_DIR"]), env)
    try:
        wait_for("the readiness line", lambda: READY in run.text() or run.process.poll() is not None, 180, 0.5)
        assert READY in run.text(), run.text()[-5000:]
        text = run.text()
        token = re.search(r"token: (\w+)", text).group(1)  # type: ignore[union-attr]
        assert re.search(r"Dashboard: +http://127\.0\.0\.1:\d+/admin/ +user: admin +password: \S+", text)
        curls = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
        cache_curls = [c for c in curls if "x-cache" in c]
        assert len(cache_curls) == 2
        assert curl(cache_curls[0]).strip().lower().startswith("x-cache: miss")
        assert curl(cache_curls[1]).strip().lower().startswith("x-cache: hit")
        edges_answer = curl(next(c for c in curls if "/edges/" in c))
        assert edges_answer.count('"healthy":true') == 3
        domain = re.search(r"Host: ([a-z0-9.]+)'", cache_curls[0]).group(1)  # type: ignore[union-attr]
        ports = [int(p) for p in re.findall(r"viewers http://127\.0\.0\.1:(\d+)/", text)]
        assert len(ports) == 3
        for port in ports:
            answers = [httpx.get(f"http://127.0.0.1:{port}/index.html", headers={"Host": domain}, timeout=10)
                       for _ in range(2)]
            assert [a.headers["x-cache"].split(" from ")[0] for a in answers] == ["Miss", "Hit"]

        api = f"http://127.0.0.1:{env['CDN_WEB_PORT']}/api/v1"
        headers = {"Authorization": f"Token {token}"}
        distribution_id = domain.split(".")[0].upper()
        made = httpx.post(f"{api}/distributions/{distribution_id}/invalidations/", json={"paths": ["/index.html"]},
                          headers=headers, timeout=10)
        assert made.status_code == 201, made.text
        url = f"{api}/distributions/{distribution_id}/invalidations/{made.json()['id']}/"
        wait_for("the invalidation to complete",
                 lambda: httpx.get(url, headers=headers, timeout=5).json()["status"] == "Completed", 20)
        for port in ports:
            answer = httpx.get(f"http://127.0.0.1:{port}/index.html", headers={"Host": domain}, timeout=10)
            assert answer.headers["x-cache"].startswith("Miss")

        started = processes_using(tmp_path / "var")
        assert len(started) >= 7  # web, worker, beat, origin and three edges (and their children)
        assert run.interrupt() is not None
        wait_for("every process to stop", lambda: not processes_using(tmp_path / "var"), 20)
    finally:
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)


def test_a_second_make_run_reuses_the_state(tmp_path: Path, run_env: dict[str, str]) -> None:
    passwords: list[str] = []
    for _ in range(2):
        run = MakeRun(Path(run_env["CDN_VAR_DIR"]), run_env)
        try:
            wait_for("the readiness line", lambda: READY in run.text() or run.process.poll() is not None, 180, 0.5)
            assert READY in run.text(), run.text()[-5000:]
            passwords.append(re.search(r"password: (\S+)", run.text()).group(1))  # type: ignore[union-attr]
        finally:
            run.interrupt()
        wait_for("every process to stop", lambda: not processes_using(tmp_path / "var"), 20)
    assert passwords[0] == passwords[1]
    assert (tmp_path / "var" / "credentials.json").exists()
