"""A whole CDN as real processes on loopback, for end-to-end tests.

Each cluster gets its own state directory, database (a SQLite file, or a fresh PostgreSQL
database when DATABASE_URL points at PostgreSQL) and broker (the embedded atomic filesystem
transport under its state directory, or a Redis database of its own when CELERY_BROKER_URL is
Redis), so it never touches a developer's `var/`. A benchmark may name another broker URL,
with `{var}` standing for the cluster's state folder.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
E2E_REDIS_DB = 14


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll until `probe` returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # the thing may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


class Cluster:
    def __init__(self, state: Path, heartbeat_seconds: int = 1, broker_url: str | None = None,
                 unhealthy_grace_seconds: int = 5, web_workers: int = 0) -> None:
        self.state = state
        self.web_workers = web_workers  # 0: Django's runserver; N: gunicorn with N workers, as deploy/ runs it
        self.var = state / "var"
        self.var.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self.web_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
        self.env.update(DEBUG="true", CDN_VAR_DIR=str(self.var), CDN_HEARTBEAT_SECONDS=str(heartbeat_seconds),
                        CDN_FLEET_TICK_SECONDS="1", CDN_UNHEALTHY_GRACE_SECONDS=str(unhealthy_grace_seconds),
                        PYTHONUNBUFFERED="1")
        self._pg_db: str | None = None
        self._setup_database()
        self._setup_broker(broker_url)
        self.token = ""
        self.edge_tokens: dict[str, str] = {}
        self.edge_ports: dict[str, tuple[int, int]] = {}
        self.origin_port = 0

    # ---- backing services ----

    def _setup_database(self) -> None:
        url = os.environ.get("DATABASE_URL", "")
        if url.startswith(("postgres://", "postgresql://")):
            import psycopg

            self._pg_db = f"cdn_e2e_{secrets.token_hex(4)}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self._pg_db}"')
            parts = urlsplit(url)
            self.env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{self._pg_db}"))
        else:
            self.env["DATABASE_URL"] = f"sqlite:///{self.var / 'controlplane.sqlite3'}"

    def _setup_broker(self, broker_url: str | None) -> None:
        if broker_url is not None:
            url = broker_url.format(var=self.var)
        elif os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
            url = urlunsplit(urlsplit(os.environ["CELERY_BROKER_URL"])._replace(path=f"/{E2E_REDIS_DB}"))
        else:
            url = ""  # the embedded default, under this cluster's CDN_VAR_DIR
        if url:
            self.env["CELERY_BROKER_URL"] = url
        else:
            self.env.pop("CELERY_BROKER_URL", None)
        if url.startswith("redis://"):
            import redis

            redis.Redis.from_url(url).flushdb()

    def _teardown_services(self) -> None:
        if self._pg_db:
            import psycopg

            with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_db}" WITH (FORCE)')
        if self.env.get("CELERY_BROKER_URL", "").startswith("redis://"):
            import redis

            redis.Redis.from_url(self.env["CELERY_BROKER_URL"]).flushdb()

    # ---- processes ----

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"manage.py {args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.state / f"{name}.log", "ab")
        process = subprocess.Popen(args, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        self.commands[name] = args
        return process

    def kill(self, name: str) -> None:
        """SIGKILL, as the OOM killer or a crash would: no chance to save or say goodbye."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def restart(self, name: str) -> None:
        """Start a stopped or killed process again, with the command it was first started with."""
        if name == "web":
            self.start_web()
        elif name == "origin":
            self.start_origin(self.origin_port)
        elif name in self.edge_ports:
            self.start_edge(name)
        else:
            self.spawn(name, self.commands[name])

    def stop(self, name: str, timeout: float = 15.0) -> int:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        return process.returncode

    def log(self, name: str) -> str:
        path = self.state / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def logs(self) -> str:
        """The tail of every process's log, for the report of a failed run."""
        return "".join(f"---- {name} ----\n{self.log(name)}\n" for name in list(self.processes))

    def start_controlplane(self) -> None:
        self.manage("migrate", "--noinput")
        self.token = json.loads(self.manage("cdn_bootstrap").strip().splitlines()[-1])["token"]
        self.start_web()
        self.spawn("worker", [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "threads",
                              "--concurrency", "4", "--loglevel", "INFO", "--without-heartbeat", "--without-gossip",
                              "--without-mingle"])
        self.spawn("beat", [sys.executable, "-m", "celery", "-A", "controlplane", "beat", "--loglevel", "INFO",
                            "--schedule", str(self.var / "celerybeat-schedule")])

    def start_web(self) -> None:
        if self.web_workers:
            self.spawn("web", [sys.executable, "-m", "gunicorn", "controlplane.wsgi:application", "--bind",
                               f"127.0.0.1:{self.web_port}", "--workers", str(self.web_workers), "--threads", "4"])
        else:
            self.spawn("web", [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.web_port}", "--noreload",
                               "--skip-checks"])
        wait_for("the control plane", lambda: httpx.get(f"{self.api_url}/", timeout=2).status_code in (401, 403))

    def start_origin(self, port: int = 0) -> int:
        self.origin_port = port = port or free_port()
        self.spawn("origin", [sys.executable, "-m", "demo.origin", "--listen", f"127.0.0.1:{port}"])
        wait_for("the demo origin", lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200)
        return port

    def start_moto(self) -> str:
        """A private S3 peer (demo/s3.py: moto with authentication enforced); its endpoint URL."""
        from demo import s3 as moto_s3

        port = free_port()
        argv, env = moto_s3.moto_command("127.0.0.1", port)
        self.spawn("moto", argv, env)
        endpoint = f"http://127.0.0.1:{port}"
        moto_s3.wait_until_up(endpoint, self.processes["moto"])
        return endpoint

    def register_edge(self, name: str, pop: str) -> None:
        viewer, admin = free_port(), free_port()
        self.edge_ports[name] = (viewer, admin)
        self.edge_tokens[name] = self.manage("edge_register", name, "--pop", pop, "--url",
                                             f"http://127.0.0.1:{admin}").strip()

    def start_edge(self, name: str) -> None:
        viewer, admin = self.edge_ports[name]
        self.spawn(name, [sys.executable, "-m", "edgeagent", "--name", name, "--pop", name.rsplit("-", 1)[-1],
                          "--listen", f"127.0.0.1:{viewer}", "--admin-listen", f"127.0.0.1:{admin}",
                          "--cache-dir", str(self.state / name), "--control-plane", f"http://127.0.0.1:{self.web_port}",
                          f"--token={self.edge_tokens[name]}"])
        wait_for(f"edge {name}", lambda: httpx.get(f"http://127.0.0.1:{admin}/health", timeout=2).status_code == 200)

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)
        self._teardown_services()

    # ---- API ----

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/api/v1"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.api_url}{path}", headers=headers, timeout=30, **kwargs)

    def viewer(self, edge: str, host: str, path: str, **kwargs: Any) -> httpx.Response:
        port = self.edge_ports[edge][0]
        headers = {"Host": host, **kwargs.pop("headers", {})}
        return httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=30, **kwargs)


@contextmanager
def running_cluster(state: Path, edges: tuple[str, ...], **options: Any) -> Iterator[Cluster]:
    """A control plane, the demo origin and `edges` registered and started; every process's
    log printed when the block fails, everything stopped after it."""
    made = Cluster(state, **options)
    try:
        made.start_controlplane()
        made.start_origin()
        for name in edges:
            made.register_edge(name, name[-3:])
            made.start_edge(name)
        yield made
    except BaseException:
        print(made.logs())
        raise
    finally:
        made.close()
