"""docker-compose.yml is valid and every command in it is one the project really has.

No container engine runs here, so the file is checked with `docker-compose config`
(Debian's docker-compose package, which .ci/run installs) and the commands are checked
against the code: management commands exist, modules import, edge flags parse.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is not installed (.ci/run installs Debian's docker-compose package)")
        pytest.skip("docker-compose is not installed")
    work = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", work / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", work / ".env")
    result = subprocess.run(["docker-compose", "config"], cwd=work, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_it_has_every_service_with_a_health_check(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    expected = {"postgres", "redis", "migrate", "setup", "controlplane", "proxy", "worker", "beat", "origin",
                "edge-fra", "edge-iad", "edge-sin"}
    assert expected <= set(services)
    for name in expected - {"migrate", "setup"}:
        assert services[name].get("healthcheck", {}).get("test"), name


def test_exec_form_health_checks_have_one_word_per_argument(resolved: dict[str, Any]) -> None:
    """podman's Docker API re-splits exec-form arguments at spaces (`python -c import`), so none has one."""
    probes = 0
    for name, service in resolved["services"].items():
        test = service.get("healthcheck", {}).get("test")
        if not test or test[0] != "CMD":
            continue
        assert all(arg.split() == [arg] for arg in test[1:]), (name, test)
        if test[1:3] == ["python", "deploy/healthcheck.py"]:
            probes += 1
    assert probes == 5  # the control plane, the origin and the three edges


def serve(status: int) -> tuple[http.server.HTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/health"


@pytest.mark.parametrize(("status", "accepted", "healthy"), [
    (200, [], True), (401, [], False), (401, ["401", "403"], True), (500, ["401"], False),
])  # fmt: skip
def test_the_health_check_probe_judges_the_status(status: int, accepted: list[str], healthy: bool) -> None:
    server, url = serve(status)
    try:
        done = subprocess.run([sys.executable, str(ROOT / "deploy" / "healthcheck.py"), url, *accepted],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert (done.returncode == 0) is healthy, done.stderr
    if not healthy:
        assert f"HTTP {status}" in done.stderr


def test_the_health_check_probe_fails_when_nothing_answers() -> None:
    server, url = serve(200)
    server.server_close()  # the port is free again: connection refused
    server.shutdown()
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "healthcheck.py"), url],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 1 and url in done.stderr


def test_edges_wait_for_a_healthy_control_plane_and_keep_their_cache_on_a_named_volume(resolved: dict[str, Any]) -> None:
    for name in ("edge-fra", "edge-iad", "edge-sin"):
        service = resolved["services"][name]
        assert service["depends_on"]["controlplane"]["condition"] == "service_healthy"
        assert service["depends_on"]["setup"]["condition"] == "service_completed_successfully"
        mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service["volumes"]]
        assert any(m.startswith(f"{name}-cache:/var/cache/edge") for m in mounts), mounts
        assert any(m.startswith("cdn-state:/run/cdn") for m in mounts), mounts
        assert service["environment"]["EDGE_TOKEN_FILE"] == f"/run/cdn/tokens/{name}"
    setup = resolved["services"]["setup"]
    assert "/var/lib/cdn/tokens" in setup["command"]
    assert {"edge-fra-cache", "edge-iad-cache", "edge-sin-cache", "pgdata", "cdn-state"} <= set(resolved["volumes"])


def test_every_command_is_one_the_project_has(resolved: dict[str, Any]) -> None:
    from django.core.management import get_commands

    from edgeagent.cli import parse_settings

    checked = 0
    for name, service in resolved["services"].items():
        command = service.get("command")
        if not command or name in ("postgres", "redis"):
            continue
        if command[:2] == ["python", "manage.py"]:
            assert command[2] in get_commands(), command
        elif command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, command
            if command[2] == "edgeagent":
                settings = parse_settings(command[3:], env={"EDGE_TOKEN": "x"})
                assert settings.name == name
        elif command[0] == "celery":
            assert command[1:3] == ["-A", "controlplane"] and command[3] in ("worker", "beat"), command
            assert importlib.util.find_spec("controlplane.celery") is not None
        elif command[0] == "gunicorn":
            module, _, attribute = command[1].partition(":")
            assert importlib.util.find_spec(module) is not None and attribute == "application"
        else:
            raise AssertionError(f"{name}: unknown command {command}")
        checked += 1
    assert checked == 9


def _dockerfile_owned_dirs() -> set[str]:
    """The directories the image creates and chowns to `cdn` (the lines of its RUN steps)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    owned: set[str] = set()
    for line in text.splitlines():
        if "chown" in line and "mkdir -p" in line:
            made = line.split("mkdir -p", 1)[1].split("&&", 1)[0].split()
            chowned = line.split("chown", 1)[1].split("&&", 1)[0].split()
            owned |= set(made) & set(chowned)
    return owned


def test_every_volume_a_service_writes_is_a_directory_the_image_gives_to_cdn(resolved: dict[str, Any]) -> None:
    owned = _dockerfile_owned_dirs()
    assert "USER cdn" in (ROOT / "Dockerfile").read_text()
    checked = 0
    for name, service in resolved["services"].items():
        if name in ("postgres", "redis", "proxy"):  # their own images, not ours
            continue
        for volume in service.get("volumes", []):
            target = volume["target"] if isinstance(volume, dict) else volume.split(":")[1]
            read_only = volume.get("read_only") if isinstance(volume, dict) else volume.endswith(":ro")
            if read_only:
                continue
            assert target in owned, f"{name}: {target} is not created and chowned to cdn in the Dockerfile"
            checked += 1
    assert checked >= 5  # setup, beat and the three edges


def test_nothing_the_build_runs_leaves_state_in_the_state_dir() -> None:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    collect = next(line for line in text.splitlines() if "manage.py collectstatic" in line)
    assert "CDN_VAR_DIR=/tmp/" in collect, "collectstatic imports settings, which create the var dir as root"


def test_beat_is_healthy_while_its_scheduler_ticks_not_while_its_schedule_file_is_young(resolved: dict[str, Any]) -> None:
    beat = resolved["services"]["beat"]
    command = beat["command"]
    assert command[command.index("--scheduler") + 1] == "controlplane.beat:LivenessScheduler"
    schedule = command[command.index("--schedule") + 1]
    assert beat["healthcheck"]["test"] == ["CMD", "python", "-m", "controlplane.beat", schedule]


def test_setup_prints_no_secret_to_the_shared_log(resolved: dict[str, Any]) -> None:
    assert "--hide-secrets" in resolved["services"]["setup"]["command"]


# ---- Production settings: `manage.py check --deploy` ----
# Read from the files themselves, so that these run without docker-compose too.


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as docker-compose reads an env_file (no quoting is used in ours)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def _controlplane_environment(tmp_path: Path) -> dict[str, str]:
    """The control plane's environment in docker-compose, with the secrets .env.example asks to set."""
    service = _compose()["services"]["controlplane"]
    env_files = service["env_file"] if isinstance(service["env_file"], list) else [service["env_file"]]
    assert env_files == [".env"], env_files  # the copy of .env.example
    environment = _env_file(ROOT / ".env.example")
    environment.update(service.get("environment") or {})
    environment.update(SECRET_KEY=secrets.token_urlsafe(50),  # what .env.example says to put there
                       CDN_VAR_DIR=str(tmp_path / "var"), STATIC_ROOT=str(tmp_path / "static"),  # the image's paths
                       PATH=os.environ.get("PATH", "/usr/bin:/bin"), DJANGO_SETTINGS_MODULE="controlplane.settings")
    return environment


def test_the_production_settings_pass_manage_py_check_deploy(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=_controlplane_environment(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_the_production_settings_turn_https_on_rather_than_silence_the_checks(tmp_path: Path) -> None:
    code = ("import json; from django.conf import settings; print(json.dumps({name: getattr(settings, name) for name in "
            "('SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
            "'SECURE_PROXY_SSL_HEADER', 'SECURE_REDIRECT_EXEMPT', 'CDN_TRUSTED_PROXY_COUNT', 'CSRF_TRUSTED_ORIGINS', "
            "'SILENCED_SYSTEM_CHECKS', 'DEBUG')}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_controlplane_environment(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 3600, "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True, "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_REDIRECT_EXEMPT": ["^api/v1/edge/"], "CDN_TRUSTED_PROXY_COUNT": 1,
        "CSRF_TRUSTED_ORIGINS": ["https://localhost:8443"], "SILENCED_SYSTEM_CHECKS": [], "DEBUG": False,
    }


def test_the_tls_proxy_fronts_the_control_plane_and_the_edges_and_probe_use_exempt_paths() -> None:
    services = _compose()["services"]
    assert "ports" not in services["controlplane"]  # plain HTTP only on the compose network
    assert services["proxy"]["ports"] == ["8443:8443"]
    assert services["proxy"]["depends_on"]["controlplane"]["condition"] == "service_healthy"
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "https://localhost:8443" in caddyfile and "reverse_proxy controlplane:8000" in caddyfile
    # plain HTTP on the one published port is redirected to https, not answered with a bare 400
    assert re.search(r"listener_wrappers\s*\{\s*http_redirect\s+tls\s*\}", caddyfile)
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]
    exempt = [re.compile(p) for p in _env_file(ROOT / ".env.example")["SECURE_REDIRECT_EXEMPT"].split(",")]
    probe = services["controlplane"]["healthcheck"]["test"][3]
    assert probe.startswith("http://127.0.0.1:8000/")
    edge_paths = [probe.removeprefix("http://127.0.0.1:8000/"), "api/v1/edge/heartbeat", "api/v1/edge/config",
                  "api/v1/edge/acks", "api/v1/edge/stats"]
    for path in edge_paths:  # Django matches SECURE_REDIRECT_EXEMPT against the path without its leading slash
        assert any(p.search(path) for p in exempt), path
    assert not any(p.search("admin/login/") or p.search("api/v1/auth/token/") for p in exempt)
