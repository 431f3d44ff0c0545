"""Starting, checking and stopping the servers under test, all on 127.0.0.1.

Each server runs as one worker/process in the foreground so that its whole process tree is
ours to measure (CPU from /proc) and to stop by pid, and nothing outlives the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"

# The one distribution every server is asked for: wrk sends this Host to all of them, so the
# request bytes are identical; only the edge needs it to pick the distribution.
DISTRIBUTION_ID = "EBENCH0000001A"
BENCH_HOST = DISTRIBUTION_ID.lower() + ".cdn.localhost"
EDGE_NAME = "bench-edge"


class ServerFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A started server: its pid (the root of the tree we measure) and where it listens."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    describe: str
    config_files: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# ---- Process trees and CPU ----

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime per live pid, in clock ticks."""
    ticks = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU used by the processes alive at both ends (a worker that died mid-run is lost, not guessed)."""
    return sum(after[pid] - before[pid] for pid in before if pid in after) / CLOCK_TICKS


# ---- Lifecycle ----


def spawn(argv: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the root, then SIGKILL whatever of its tree is left, by pid."""
    tree = process_tree(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.wait(timeout=grace)


def stop_all(servers: Iterable[Server | None], workdir: Path) -> None:
    """Stop every server started (dead ones too: their trees are swept) and remove the workdir."""
    for server in servers:
        if server is not None:
            stop(server.proc)
    shutil.rmtree(workdir, ignore_errors=True)


def wait_until_ready(server: Server, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ServerFailed(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            response = httpx.get(server.url + path, headers={"Host": BENCH_HOST}, timeout=2)
            if response.status_code == 200:
                return
            last_error = f"status {response.status_code}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        time.sleep(0.1)
    raise ServerFailed(f"{server.name} not ready after {timeout:.0f}s ({last_error}):\n{server.log_tail()}")


# ---- Origin ----


def start_origin(workdir: Path) -> Server:
    log = workdir / "origin.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo.origin", "--listen", f"{LOOPBACK}:0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on " not in line:
        stop(proc)
        raise ServerFailed(f"demo origin did not start: {line!r} {log.read_text(errors='replace')}")
    port = int(line.rsplit(":", 1)[1])
    server = Server("origin", port, proc, log, "python -m demo.origin (aiohttp.web on uvloop)")
    wait_until_ready(server, "/health")
    return server


def origin_requests(origin: Server) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(origin.url + "/_stats", timeout=5).json()["requests"]
    return counts


# ---- nginx ----

NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;

    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_errors on;

    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy_temp;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;

    proxy_cache_path {workdir}/cache levels=1:2 keys_zone=bench:10m max_size=1g inactive=60m use_temp_path=off;

    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 64;
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_cache bench;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""


def start_nginx(workdir: Path, origin_port: int) -> Server:
    home = workdir / "nginx"
    home.mkdir()
    port = free_port()
    conf = NGINX_CONF.format(
        user="user root;\n" if os.geteuid() == 0 else "",
        workdir=home,
        origin_port=origin_port,
        port=port,
    )
    (home / "nginx.conf").write_text(conf)
    log = workdir / "nginx.log"
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = spawn([nginx, "-p", str(home), "-e", str(home / "nginx-error.log"), "-c", str(home / "nginx.conf")], log)
    server = Server("nginx", port, proc, home / "nginx-error.log", "nginx proxy_cache, open_file_cache, access log off, 1 worker", {"nginx.conf": conf})
    wait_until_ready(server, "/bench/1k")
    return server


# ---- Varnish ----

VARNISH_VCL = """\
vcl 4.1;

backend origin {{
    .host = "127.0.0.1";
    .port = "{origin_port}";
}}

sub vcl_deliver {{
    if (obj.hits > 0) {{
        set resp.http.X-Cache = "HIT";
    }} else {{
        set resp.http.X-Cache = "MISS";
    }}
}}
"""


def start_varnish(workdir: Path, origin_port: int) -> Server:
    home = workdir / "varnish"
    home.mkdir()
    port = free_port()
    vcl = VARNISH_VCL.format(origin_port=origin_port)
    (home / "bench.vcl").write_text(vcl)
    log = workdir / "varnish.log"
    varnishd = shutil.which("varnishd") or "/usr/sbin/varnishd"
    argv = [
        varnishd, "-F", "-j", "none", "-n", str(home / "state"),
        "-a", f"{LOOPBACK}:{port}", "-T", "none",
        "-f", str(home / "bench.vcl"), "-s", "malloc,256m",
        "-p", "thread_pools=1",
    ]
    proc = spawn(argv, log)
    server = Server("varnish", port, proc, log, "Varnish malloc 256m, 1 thread pool, builtin VCL", {"bench.vcl": vcl, "varnishd": " ".join(argv[1:])})
    wait_until_ready(server, "/bench/1k")
    return server


# ---- The edge agent ----


NO_NAMES = {"behavior": "none", "names": []}
CACHING_DISABLED = {
    "id": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad", "name": "CachingDisabled",
    "min_ttl": 0, "default_ttl": 0, "max_ttl": 0,
    "query_strings": NO_NAMES, "headers": NO_NAMES, "cookies": NO_NAMES,
    "enable_gzip": False, "enable_brotli": False,
}
CACHING_OPTIMIZED = {
    "id": "658327ea-f89d-4fab-a63d-7e88639e58f6", "name": "CachingOptimized",
    "min_ttl": 1, "default_ttl": 86400, "max_ttl": 31536000,
    "query_strings": NO_NAMES, "headers": NO_NAMES, "cookies": NO_NAMES,
    "enable_gzip": True, "enable_brotli": True,
}


def custom_origin(origin_id: str, port: int, **overrides: object) -> dict[str, object]:
    """An HTTP origin on loopback, as the control plane compiles it (`overrides` for TLS or S3)."""
    return {
        "id": origin_id, "kind": "custom", "domain_name": LOOPBACK, "origin_path": "",
        "http_port": port, "https_port": 443, "protocol_policy": "http-only",
        "connect_timeout": 5, "read_timeout": 30, "connection_attempts": 1,
        "custom_headers": [], "s3": None, **overrides,
    }


def behavior(pattern: str, target: str, policy: dict[str, object], compress: bool = False) -> dict[str, object]:
    return {
        "path_pattern": pattern, "target": target, "viewer_protocol_policy": "allow-all",
        "allowed_methods": ["GET", "HEAD"], "cached_methods": ["GET", "HEAD"],
        "compress": compress, "cache_policy": policy, "origin_request_policy": None,
    }


def document(origins: list[dict[str, object]], behaviors: list[dict[str, object]]) -> dict[str, object]:
    """The one bench distribution (BENCH_HOST) with these origins and behaviors."""
    return {
        "schema_version": 1,
        "version": 1,
        "distributions": [
            {
                "id": DISTRIBUTION_ID, "domain_name": BENCH_HOST, "aliases": [],
                "default_root_object": "index.html", "origins": origins, "origin_groups": [],
                "cache_behaviors": behaviors, "custom_error_responses": [],
            }
        ],
    }


def edge_document(origin_port: int) -> dict[str, object]:
    """A distribution as the control plane would compile it: CachingOptimized by default,
    CachingDisabled for the no-cache benchmark path."""
    return document([custom_origin("demo", origin_port)], [
        behavior("/bench/nocache/*", "demo", CACHING_DISABLED),
        behavior("*", "demo", CACHING_OPTIMIZED, compress=True),
    ])


def _commit(root: Path) -> str:
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def start_edge(
    workdir: Path, origin_port: int, access_log: bool = True, root: Path | None = None,
    prefix: Sequence[str] = (), ready_timeout: float = 30.0,
    document: dict[str, object] | None = None, extra: Sequence[str] = (), ready_path: str = "/bench/1k",
) -> Server:
    """The edge as an operator runs it (access log on, its default), or with `--access-log off`.

    `root` runs the edge of another checkout instead (`bench.run --baseline`): the same
    agent, config and flags from the code before a change, measured in the same run.
    `prefix` runs it under another program (bench.instructions: Valgrind). `document` serves
    another config than `edge_document` (bench.origin_misses), with `extra` flags (a token).
    """
    name = ("edge" if root is None else "baseline") + ("" if access_log else "-log-off")
    home = workdir / name
    home.mkdir()
    port, admin_port = free_port(), free_port()
    config = home / "config.json"
    text = json.dumps(document or edge_document(origin_port), sort_keys=True, separators=(",", ":"))
    config.write_text(text)
    log = workdir / f"{name}.log"
    argv = [
        sys.executable, "-m", "edgeagent", "--name", EDGE_NAME, "--pop", "lab",
        "--listen", f"{LOOPBACK}:{port}", "--admin-listen", f"{LOOPBACK}:{admin_port}",
        "--cache-dir", str(home / "cache"), "--config", str(config),
    ]
    if not access_log:
        argv += ["--access-log", "off"]
    argv += extra
    proc = spawn([*prefix, *argv], log, cwd=ROOT if root is None else root)
    describe = "python -m edgeagent, 1 process, " + ("access log on (default)" if access_log else "--access-log off")
    if root is not None:
        describe += f", from {root} (commit {_commit(root)})"
    server = Server(name, port, proc, log, describe, {"config.json": text, "argv": " ".join(argv[1:])})
    wait_until_ready(server, ready_path, ready_timeout)
    return server


def cache_status(server: Server, path: str) -> str:
    """What the server says about how it answered: a header each of them sets."""
    response = httpx.get(server.url + path, headers={"Host": BENCH_HOST}, timeout=5)
    if response.status_code != 200:
        raise ServerFailed(f"{server.name} answered {response.status_code} for {path}")
    for header in ("x-cache-status", "x-cache"):
        if header in response.headers:
            return response.headers[header]
    return ""


def looks_like_hit(status: str) -> bool:
    return status.upper().startswith("HIT")
