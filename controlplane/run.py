"""`make run`: the local CDN on embedded defaults, under one supervisor (honcho).

Applies migrations, creates the admin user once, starts every process, and stops them all
on Ctrl-C (SIGINT) or SIGTERM. State lives in var/ (or CDN_VAR_DIR) and is reused.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from honcho.manager import Manager
from honcho.printer import Printer

ROOT = Path(__file__).resolve().parent.parent


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
    return result.stdout


def main() -> None:
    env = dict(os.environ)
    env.setdefault("DEBUG", "true")
    host = env.get("CDN_HOST", "127.0.0.1")
    web_port = env_port("CDN_WEB_PORT", 8000)
    manage("migrate", "--noinput", env=env)
    credentials = json.loads(manage("cdn_bootstrap", env=env).strip().splitlines()[-1])

    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty()))
    python = shlex.quote(sys.executable)
    manager.add_process("web", f"{python} manage.py runserver {host}:{web_port} --noreload --skip-checks",
                        env=env, cwd=str(ROOT))
    print(f"Dashboard: http://{host}:{web_port}/admin/  user {credentials['username']}  "
          f"password {credentials['password']}", flush=True)
    print(f"API:       curl -H 'Authorization: Token {credentials['token']}' http://{host}:{web_port}/api/v1/distributions/",
          flush=True)
    manager.loop()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
