"""`make run`: the whole local CDN on embedded defaults, under one small supervisor.

Applies migrations, creates the admin user, three edges and a demo distribution on the
first start, starts every process, prints how to use it once everything answers (and
writes the same banner to var/ready.txt), and stops them all on Ctrl-C (SIGINT) or
SIGTERM. State lives in var/ (or CDN_VAR_DIR) and is reused by the next run. With
DATABASE_URL and CELERY_BROKER_URL set, the same command runs on PostgreSQL and Redis.

The supervisor is ours rather than honcho's because honcho stops everything when one
process exits: here a process that exits unexpectedly is restarted after a backoff while
the others keep running, so edges keep serving viewers through a control-plane or worker
restart. The control plane starts first and the rest only once it answers HTTP, so no edge
starts by logging that the control plane is unreachable.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from demo import s3 as demo_s3

ROOT = Path(__file__).resolve().parent.parent
EDGES = ("edge-fra", "edge-iad", "edge-sin")
READY_TIMEOUT = 120.0
RESTART_FIRST_DELAY = 0.5
RESTART_MAX_DELAY = 30.0
STABLE_AFTER = 30.0  # a process that stayed up this long starts its backoff afresh
STOP_TIMEOUT = 15.0  # above the edges' default 10 s for in-flight requests on SIGTERM
GATE_PROBE_INTERVAL = 0.5
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
COLOURS = ("36", "33", "35", "32", "34", "31", "96", "93", "95")


def env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        port = int(raw) if raw else default
    except ValueError:
        sys.exit(f"{name}={raw!r} is not a port number")
    if not 0 < port < 65536:
        sys.exit(f"{name}={port} is not a port number (1-65535)")
    return port


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        sys.exit(f"manage.py {' '.join(args)} failed")
    return result.stdout.strip().splitlines()[-1]


def restart_delay(failures: int) -> float:
    """Exponential backoff over consecutive short-lived runs, so a crash loop costs little."""
    return float(min(RESTART_FIRST_DELAY * 2 ** failures, RESTART_MAX_DELAY))


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


# ---- Supervisor ----

@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    colour: str
    process: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0
    restart_at: float | None = None


@dataclass
class Stage:
    """Processes started together; the next stage waits until `ready` answers True."""

    names: list[str]
    ready: Callable[[], bool] = field(default=lambda: True)


class Supervisor:
    """Each child runs in its own process group with its output prefixed line by line.

    Its own session keeps a terminal's Ctrl-C from reaching the children directly: the
    supervisor alone decides when they stop, and stops each whole group, helpers included.
    """

    def __init__(self, out: IO[str], colour: bool) -> None:
        self.out = out
        self.colour = colour
        self.children: dict[str, Child] = {}
        self.stopping = threading.Event()
        self.stop_reason = ""
        self._lock = threading.Lock()
        self._width = 0

    def add(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.children[name] = Child(name, argv, env, COLOURS[len(self.children) % len(COLOURS)])
        self._width = max(self._width, len(name))

    def write(self, line: str) -> None:
        with self._lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (OSError, ValueError):  # a closed terminal must not take the cluster down
                pass

    def say(self, message: str) -> None:
        self.write(f"make run: {message}")

    def _prefix(self, child: Child) -> str:
        label = f"{child.name:<{self._width}} |"
        return f"\033[{child.colour}m{label}\033[0m" if self.colour else label

    def _pump(self, child: Child, stream: IO[bytes]) -> None:
        prefix = self._prefix(child)
        for raw in stream:
            self.write(f"{prefix} {raw.decode(errors='replace').rstrip()}")
        stream.close()

    def start(self, name: str) -> None:
        child = self.children[name]
        try:
            process = subprocess.Popen(child.argv, cwd=ROOT, env=child.env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                       preexec_fn=_stop_with_parent(os.getpid()))
        except OSError as exc:
            self._schedule_restart(child, f"could not start ({exc})")
            return
        assert process.stdout is not None
        child.process, child.started_at, child.restart_at = process, time.monotonic(), None
        child.pump = threading.Thread(target=self._pump, args=(child, process.stdout), daemon=True)
        child.pump.start()
        self.say(f"{name} started (pid {process.pid})")

    def _schedule_restart(self, child: Child, why: str) -> None:
        now = time.monotonic()
        if child.process is not None and now - child.started_at >= STABLE_AFTER:
            child.failures = 0
        delay = restart_delay(child.failures)
        child.failures += 1
        child.restarts += 1
        child.restart_at = now + delay
        self.say(f"{child.name} {why}; restarting in {delay:.1f}s (restart {child.restarts})")

    def _reap(self) -> None:
        for child in self.children.values():
            process = child.process
            if process is None or process.poll() is None:
                continue
            _kill_group(process.pid, signal.SIGKILL)  # helpers it left behind would hold its ports
            if child.pump is not None:
                child.pump.join(1.0)  # its last lines before the line saying it exited
            self._schedule_restart(child, describe_exit(process.returncode))
            child.process = None

    def request_stop(self, signum: int, _frame: Any = None) -> None:
        self.stop_reason = signal.Signals(signum).name
        self.stopping.set()

    def run(self, stages: list[Stage]) -> None:
        """Start the stages in order, restart what exits, return once asked to stop and all stopped."""
        pending = list(stages)
        gate: Callable[[], bool] = lambda: True
        next_probe = 0.0
        while not self.stopping.is_set():
            self._reap()
            now = time.monotonic()
            for child in self.children.values():
                if child.restart_at is not None and now >= child.restart_at:
                    self.start(child.name)
            if pending and now >= next_probe:
                next_probe = now + GATE_PROBE_INTERVAL
                if gate():
                    stage = pending.pop(0)
                    for name in stage.names:
                        self.start(name)
                    gate, next_probe = stage.ready, 0.0
            self.stopping.wait(0.1)
        self.shutdown()

    def shutdown(self) -> None:
        self.say(f"{self.stop_reason or 'asked to stop'}: stopping every process")
        running = [c.process for c in self.children.values() if c.process is not None]
        for process in running:
            _kill_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for child in self.children.values():
            if child.process is None:
                continue
            if child.process.poll() is None:
                self.say(f"{child.name} did not stop within {STOP_TIMEOUT:.0f}s: killing it")
            _kill_group(child.process.pid, signal.SIGKILL)
            child.process.wait()
            if child.pump is not None:
                child.pump.join(1.0)
        self.say("stopped")


def _stop_with_parent(parent: int) -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the supervisor dies.

    Without it a supervisor killed by SIGKILL (or the OOM killer) leaves every process
    running and holding its ports. The kernel sends the signal when the thread that forked
    dies: every start happens on the thread that runs `Supervisor.run`, which lives until
    every child has been stopped.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)
    return hook


def _kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


# ---- Readiness ----

def http_answers(url: str) -> Callable[[], bool]:
    """A gate that opens once anything answers HTTP at `url`, whatever the status."""
    def probe() -> bool:
        try:
            httpx.get(url, timeout=1)
        except httpx.HTTPError:
            return False
        return True
    return probe


def seed_s3_demo(supervisor: Supervisor, endpoint: str, env: dict[str, str],
                 result: dict[str, Any]) -> Callable[[], bool]:
    """A gate that opens once moto answers and has the demo bucket, and the signed S3 demo
    distribution (manage.py cdn_demo_s3) holds this run's key; a failure is said, not fatal."""
    def seed() -> bool:
        if not http_answers(f"{endpoint}/moto-api/data.json")():
            return False
        try:
            keys = demo_s3.seed_demo(endpoint)
            result.update(json.loads(manage(
                "cdn_demo_s3", "--endpoint", endpoint, "--bucket", demo_s3.DEMO_BUCKET, "--region", demo_s3.REGION,
                env={**env, "CDN_DEMO_S3_ACCESS_KEY_ID": keys.access_key_id,
                     "CDN_DEMO_S3_SECRET_ACCESS_KEY": keys.secret_access_key})))
        except Exception as exc:  # the rest of the demo runs without it
            supervisor.say(f"the private S3 demo could not be set up: {exc!r}")
        result["attempted"] = True
        return True
    return seed


def wait_until_ready(supervisor: Supervisor, host: str, web_port: int, origin_port: int,
                     edges: dict[str, tuple[int, int]], credentials: dict[str, Any], setup: dict[str, Any],
                     ready_file: Path, s3_demo: dict[str, Any] | None = None) -> None:
    """Print the welcome once the origin answers and every edge is healthy and runs the demo.

    It never sends a viewer request: that would warm the cache the banner talks about and
    add to the demo distribution's stats.
    """
    api = f"http://{host}:{web_port}/api/v1"
    headers = {"Authorization": f"Token {credentials['token']}"}
    checks = [f"http://{host}:{origin_port}/health"] + [f"http://{host}:{admin}/health" for _, admin in edges.values()]
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if supervisor.stopping.is_set():
            return
        try:
            ok = all(httpx.get(url, timeout=2).status_code == 200 for url in checks)
            if s3_demo is not None and not s3_demo.get("attempted"):
                raise KeyError("the private S3 demo is not set up yet")
            ids = [setup["distribution_id"]]
            if s3_demo is not None and "distribution_id" in s3_demo:
                ids.append(s3_demo["distribution_id"])
            dists = [httpx.get(f"{api}/distributions/{d}/", headers=headers, timeout=5).json() for d in ids]
            fleet = httpx.get(f"{api}/edges/", headers=headers, timeout=5).json()["results"]
            newest = max(d["config_version"] for d in dists)
            running = [e for e in fleet if e["name"] in edges and e["healthy"] and e["applied_version"] >= newest]
            if ok and len(running) == len(edges) and all(d["status"] == "Deployed" for d in dists):
                break
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    else:
        supervisor.say(f"not everything answered within {READY_TIMEOUT:.0f}s; see the logs above")
        return
    domain = setup["domain_name"]
    first_port = edges[EDGES[0]][0]
    credentials_file = ready_file.parent / "credentials.json"
    lines = [
        "",
        "=" * 78,
        "The local CDN is ready.",
        f"  Dashboard:  http://{host}:{web_port}/dashboard/   user: {credentials['username']}",
        f"  Admin:      http://{host}:{web_port}/admin/   (raw edits, same user)",
        f"  API:        {api}/   (docs: {api}/docs/)",
        f"  The password and the API token are in {credentials_file} (readable only by you).",
        f"  Demo distribution {setup['distribution_id']} ({domain}), edges:",
    ]
    for name, (viewer, admin) in edges.items():
        lines.append(f"    {name}: viewers http://{host}:{viewer}/  admin http://{host}:{admin}/health")
    lines += [
        "  Try it: X-Cache says Miss the first time an edge is asked for an object (after a fresh",
        "  start; the edges' disk caches outlive a restart), then Hit until its TTL runs out or",
        "  you invalidate it:",
        f"    curl -si -H 'Host: {domain}' http://{host}:{first_port}/ | grep -i '^x-cache'",
        f"    curl -si -H 'Host: {domain}' http://{host}:{first_port}/ | grep -i '^x-cache'",
        f"    curl -s -H \"Authorization: Token $(python3 -c \"import json; "
        f"print(json.load(open('{credentials_file}'))['token'])\")\" {api}/edges/",
    ]
    if s3_demo is not None and "distribution_id" in s3_demo:
        s3_domain = s3_demo["domain_name"]
        lines += [
            f"  Private S3 demo {s3_demo['distribution_id']} ({s3_domain}): a moto bucket on "
            f"{s3_demo['endpoint']} that refuses unsigned requests; the edges sign theirs (SigV4):",
            f"    curl -si {s3_demo['endpoint']}/{s3_demo['bucket']}/hello.txt | head -1",
            f"    curl -si -H 'Host: {s3_domain}' http://{host}:{first_port}/hello.txt",
            f"    curl -si -H 'Host: {s3_domain}' 'http://{host}:{first_port}/a%20file%20with%20spaces+plus.txt'",
            f"    curl -si -X PUT --data-binary uploaded -H 'Content-Type: text/plain' -H 'Host: {s3_domain}' "
            f"http://{host}:{first_port}/uploads/note.txt",
        ]
    lines += [
        f"  This banner is also in {ready_file}.",
        "  A process that exits is restarted; Ctrl-C stops everything.",
        "=" * 78,
    ]
    banner = "\n".join(lines)
    ready_file.write_text(banner.lstrip("\n") + "\n")
    supervisor.write(banner)
    supervisor.say("ready")


# ---- Entry point ----

def main() -> None:
    env = dict(os.environ)
    env.setdefault("DEBUG", "true")
    env.setdefault("CDN_REFUSE_INTERNAL_ORIGINS", "false")  # the demo origin is on loopback
    env["PYTHONUNBUFFERED"] = "1"
    log_level = env.get("LOG_LEVEL", "INFO").upper()
    env.setdefault("EDGE_LOG_LEVEL", log_level)
    host = env.get("CDN_HOST", "127.0.0.1")
    web_port = env_port("CDN_WEB_PORT", 8000)
    origin_port = env_port("CDN_ORIGIN_PORT", 8090)
    s3_port = env_port("CDN_S3_PORT", 8092)
    edge_base = env_port("CDN_EDGE_PORT", 8081)
    admin_base = env_port("CDN_EDGE_ADMIN_PORT", 9081)
    edges = {name: (edge_base + i, admin_base + i) for i, name in enumerate(EDGES)}
    var_dir = Path(env.get("CDN_VAR_DIR", ROOT / "var")).resolve()
    env["CDN_VAR_DIR"] = str(var_dir)
    ready_file = var_dir / "ready.txt"
    ready_file.unlink(missing_ok=True)  # a banner left by an earlier run must not claim this one is ready

    manage("migrate", "--noinput", env=env)
    credentials = json.loads(manage("cdn_bootstrap", env=env))
    setup = json.loads(manage("cdn_local_setup", "--host", host, "--origin-port", str(origin_port),
                              "--edge-admin-ports", ",".join(str(a) for _, a in edges.values()), env=env))

    python = sys.executable
    control_plane = f"http://{host}:{web_port}"
    supervisor = Supervisor(sys.stdout, colour=sys.stdout.isatty() and "NO_COLOR" not in env)
    supervisor.add("web", [python, "manage.py", "runserver", f"{host}:{web_port}", "--noreload", "--skip-checks"], env)
    supervisor.add("worker", [python, "-m", "celery", "-A", "controlplane", "--quiet", "worker", "--pool", "threads",
                              "--concurrency", "4", "--loglevel", log_level, "--without-heartbeat",
                              "--without-gossip", "--without-mingle"], env)
    supervisor.add("beat", [python, "-m", "celery", "-A", "controlplane", "--quiet", "beat", "--loglevel", log_level,
                            "--schedule", str(var_dir / "celerybeat-schedule")], env)
    supervisor.add("origin", [python, "-m", "demo.origin", "--listen", f"{host}:{origin_port}"], env)
    s3_endpoint = f"http://{host}:{s3_port}"
    s3_demo: dict[str, Any] = {"endpoint": s3_endpoint, "bucket": demo_s3.DEMO_BUCKET}
    moto_argv, moto_env = demo_s3.moto_command(host, s3_port)  # authentication enforced after the setup calls
    supervisor.add("s3", moto_argv, {**env, **moto_env})
    for name, (viewer, admin) in edges.items():
        # The token goes in the environment, not on the command line, where ps shows it.
        supervisor.add(name, [python, "-m", "edgeagent", "--name", name, "--pop", name.rsplit("-", 1)[-1],
                              "--listen", f"{host}:{viewer}", "--admin-listen", f"{host}:{admin}",
                              "--cache-dir", str(var_dir / name), "--control-plane", control_plane],
                       {**env, "EDGE_TOKEN": setup["edges"][name]})
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    threading.Thread(target=wait_until_ready, daemon=True,
                     args=(supervisor, host, web_port, origin_port, edges, credentials, setup, ready_file,
                           s3_demo)).start()
    supervisor.run([
        Stage(["web"], http_answers(f"{control_plane}/admin/login/")),
        Stage(["worker", "beat", "origin", "s3"], seed_s3_demo(supervisor, s3_endpoint, env, s3_demo)),
        Stage(list(edges)),
    ])
    ready_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
