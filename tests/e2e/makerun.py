"""`make run` driven the way a newcomer drives it, for the tests of the local cluster
(test_make_run.py, test_soak.py): its output read line by line, its processes found by state directory."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from .cluster import ROOT, free_port, wait_for

READY = "make run: ready"
STARTED = re.compile(r"^make run: (\S+) started \(pid (\d+)\)$")
RESTARTING = re.compile(r"^make run: (\S+) (?:exited with code -?\d+|was killed by \S+|could not start .*); "
                        r"restarting in [\d.]+s \(restart \d+\)$")


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

    def wait_ready(self, timeout: float = 180) -> str:
        wait_for("the readiness line", lambda: READY in self.output or self.process.poll() is not None, timeout, 0.5)
        assert READY in self.output, self.text()[-5000:]
        return self.text()

    def pids(self) -> dict[str, int]:
        """The newest PID the supervisor reported for each process."""
        found: dict[str, int] = {}
        for line in list(self.output):
            match = STARTED.match(line)
            if match:
                found[match.group(1)] = int(match.group(2))
        return found

    def restarts(self) -> list[str]:
        return [line for line in list(self.output) if RESTARTING.match(line)]

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as a terminal sends it: to make and the supervisor (make then dies of it)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def free_port_run(count: int) -> int:
    """A first port such that it and the `count - 1` after it, and the same 100 higher, are free."""
    base = free_port()
    while not all(_free(base + i) and _free(base + 100 + i) for i in range(count)):
        base = free_port()
    return base


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Viewers:
    """Bounded viewer traffic in the background: at most `limit` requests, one every `pause` s,
    round-robin over `ports`; every answer's status (or error) is kept."""

    def __init__(self, ports: list[int], domain: str, limit: int = 2000, pause: float = 0.05) -> None:
        self.ports, self.domain, self.limit, self.pause = ports, domain, limit, pause
        self.results: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Viewers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(self.limit):
                if self._stop.is_set():
                    return
                port = self.ports[i % len(self.ports)]
                try:
                    answer = client.get(f"http://127.0.0.1:{port}/index.html", headers={"Host": self.domain})
                    self.results.append((port, str(answer.status_code)))
                except httpx.HTTPError as exc:
                    self.results.append((port, f"{type(exc).__name__}: {exc}"))
                time.sleep(self.pause)

    def failures(self) -> list[tuple[int, str]]:
        return [r for r in self.results if r[1] != "200"]
