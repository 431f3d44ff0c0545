"""`make run`: the whole local CDN on embedded defaults, under one supervisor (honcho).

Applies migrations, creates the admin user, three edges and a demo distribution on the
first start, starts every process, prints how to use it once everything answers, and
stops them all on Ctrl-C (SIGINT) or SIGTERM. State lives in var/ (or CDN_VAR_DIR) and
is reused by the next run. With DATABASE_URL and CELERY_BROKER_URL set, the same command
runs on PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from honcho.manager import Manager
from honcho.printer import Printer

ROOT = Path(__file__).resolve().parent.parent
EDGES = ("edge-fra", "edge-iad", "edge-sin")
READY_TIMEOUT = 120.0


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


def wait_until_ready(host: str, web_port: int, origin_port: int, edges: dict[str, tuple[int, int]],
                     credentials: dict[str, Any], setup: dict[str, Any]) -> None:
    """Print the welcome once the origin answers and every edge is healthy and runs the demo."""
    api = f"http://{host}:{web_port}/api/v1"
    headers = {"Authorization": f"Token {credentials['token']}"}
    checks = [f"http://{host}:{origin_port}/health"] + [f"http://{host}:{admin}/health" for _, admin in edges.values()]
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            ok = all(httpx.get(url, timeout=2).status_code == 200 for url in checks)
            distribution = httpx.get(f"{api}/distributions/{setup['distribution_id']}/", headers=headers, timeout=5)
            fleet = httpx.get(f"{api}/edges/", headers=headers, timeout=5).json()["results"]
            running = [e for e in fleet if e["name"] in edges and e["healthy"]
                       and e["applied_version"] >= distribution.json()["config_version"]]
            if ok and len(running) == len(edges) and distribution.json()["status"] == "Deployed":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        print(f"make run: not everything answered within {READY_TIMEOUT:.0f}s; see the logs above", flush=True)
        return
    domain = setup["domain_name"]
    first_port = edges[EDGES[0]][0]
    lines = [
        "",
        "=" * 78,
        "The local CDN is ready.",
        f"  Dashboard:  http://{host}:{web_port}/admin/   user: {credentials['username']}   "
        f"password: {credentials['password']}",
        f"  API:        {api}/   (docs: {api}/docs/)   token: {credentials['token']}",
        f"  Demo distribution {setup['distribution_id']} ({domain}), edges:",
    ]
    for name, (viewer, admin) in edges.items():
        lines.append(f"    {name}: viewers http://{host}:{viewer}/  admin http://{host}:{admin}/health")
    lines += [
        "  Try (the first answers X-Cache: Miss, the same again Hit):",
        f"    curl -si -H 'Host: {domain}' http://{host}:{first_port}/ | grep -i '^x-cache'",
        f"    curl -si -H 'Host: {domain}' http://{host}:{first_port}/ | grep -i '^x-cache'",
        f"    curl -s -H 'Authorization: Token {credentials['token']}' {api}/edges/",
        "  Credentials are in var/credentials.json. Ctrl-C stops everything.",
        "=" * 78,
        "make run: ready",
    ]
    print("\n".join(lines), flush=True)


def main() -> None:
    env = dict(os.environ)
    env.setdefault("DEBUG", "true")
    env["PYTHONUNBUFFERED"] = "1"
    host = env.get("CDN_HOST", "127.0.0.1")
    web_port = env_port("CDN_WEB_PORT", 8000)
    origin_port = env_port("CDN_ORIGIN_PORT", 8090)
    edge_base = env_port("CDN_EDGE_PORT", 8081)
    admin_base = env_port("CDN_EDGE_ADMIN_PORT", 9081)
    edges = {name: (edge_base + i, admin_base + i) for i, name in enumerate(EDGES)}
    var_dir = Path(env.get("CDN_VAR_DIR", ROOT / "var")).resolve()
    env["CDN_VAR_DIR"] = str(var_dir)

    manage("migrate", "--noinput", env=env)
    credentials = json.loads(manage("cdn_bootstrap", env=env))
    setup = json.loads(manage("cdn_local_setup", "--host", host, "--origin-port", str(origin_port),
                              "--edge-admin-ports", ",".join(str(a) for _, a in edges.values()), env=env))

    python = shlex.quote(sys.executable)
    control_plane = f"http://{host}:{web_port}"
    processes = {
        "web": f"{python} manage.py runserver {host}:{web_port} --noreload --skip-checks",
        "worker": f"{python} -m celery -A controlplane worker --pool threads --concurrency 4 --loglevel INFO "
                  "--without-heartbeat --without-gossip --without-mingle",
        "beat": f"{python} -m celery -A controlplane beat --loglevel INFO "
                f"--schedule {shlex.quote(str(var_dir / 'celerybeat-schedule'))}",
        "origin": f"{python} -m demo.origin --listen {host}:{origin_port}",
    }
    for name, (viewer, admin) in edges.items():
        processes[name] = (
            f"{python} -m edgeagent --name {name} --pop {name.rsplit('-', 1)[-1]} --listen {host}:{viewer} "
            f"--admin-listen {host}:{admin} --cache-dir {shlex.quote(str(var_dir / name))} "
            f"--control-plane {control_plane}"
        )
    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty()))
    for name, command in processes.items():
        process_env = dict(env)
        if name in edges:
            process_env["EDGE_TOKEN"] = setup["edges"][name]  # not on the command line, where ps shows it
        manager.add_process(name, command, env=process_env, cwd=str(ROOT))
    threading.Thread(target=wait_until_ready, args=(host, web_port, origin_port, edges, credentials, setup),
                     daemon=True).start()
    manager.loop()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
