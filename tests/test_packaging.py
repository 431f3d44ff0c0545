"""`pip install` of the project: the wheel carries its data files, and the edge-only install
gives a working `cdn-edge` without Django or Celery.

The wheel is built from a copy of the work tree (setuptools writes build/ and egg-info next
to the sources, which must not land in the shared checkout) and installed into a fresh
virtualenv with its own dependencies from the package index, so a missing pin or an import
of a control-plane module from the edge fails here.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
DATA_DIRS = ("distributions/templates", "distributions/static", "distributions/migrations", "distributions/dashboard/templates",
             "distributions/dashboard/static", "demo/static")
_NOT_SOURCES = {".venv", "var", ".git", "__pycache__", ".pytest_cache", ".mypy_cache", "build", "staticfiles"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _NOT_SOURCES or n.endswith(".egg-info")} | (
        {"results"} if Path(directory).name == "bench" else set()
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=_ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-w", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (work / "dist").glob("*.whl")
    return built


@pytest.fixture(scope="module")
def edge_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("edge-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", str(wheel)],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


@pytest.fixture(scope="module")
def controlplane_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("controlplane-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", f"{wheel}[controlplane]"],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


def _pins(path: Path) -> dict[str, str]:
    """Package name -> pinned line of one requirements file, following its -r includes."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            included = _pins(path.parent / line[3:].strip())
            assert not included.keys() & pins.keys(), f"{path.name} pins {included.keys() & pins.keys()} twice"
            pins.update(included)
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[a-z,]+\])?==\S+", line)
        assert match, f"{path.name}: {line!r} is not pinned with =="
        name = match.group(1).lower()
        assert name not in pins, f"{path.name} pins {name} twice"
        pins[name] = line
    return pins


def test_the_wheel_carries_migrations_templates_and_static_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        str(path.relative_to(ROOT))
        for data_dir in DATA_DIRS
        for path in (ROOT / data_dir).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert any(name.startswith("distributions/migrations/0001_") for name in expected)
    assert "demo/static/index.html" in expected
    assert expected - names == set()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_the_wheel_declares_the_cdn_edge_command_and_the_controlplane_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    assert "cdn-edge = edgeagent.__main__:main" in entry_points
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    base = {r for r in requires if "extra ==" not in r}
    assert base == set(_pins(ROOT / "requirements-edge.txt").values())
    extra = {r.split(";")[0].strip() for r in requires if 'extra == "controlplane"' in r}
    assert extra == set(_pins(ROOT / "requirements-controlplane.txt").values())
    assert "License-Expression: MIT" in metadata


def test_requirements_txt_pins_everything_once_and_includes_both_package_lists() -> None:
    everything = _pins(ROOT / "requirements.txt")
    for part in ("requirements-edge.txt", "requirements-controlplane.txt"):
        assert _pins(ROOT / part).items() <= everything.items()
    assert {"django", "celery", "uvloop", "aiohttp", "pytest"} <= everything.keys()


def test_an_edge_only_install_has_cdn_edge_and_no_django_or_celery(edge_venv: Path) -> None:
    python = str(edge_venv / "bin" / "python")
    help_text = subprocess.run([str(edge_venv / "bin" / "cdn-edge"), "--help"], capture_output=True, text=True,
                               timeout=60)
    assert help_text.returncode == 0, help_text.stderr
    assert "--control-plane" in help_text.stdout
    for module in ("django", "celery", "rest_framework"):
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, (module, probe.stderr)
    # The contract both halves import ships with the edge alone, and needs nothing of the control plane.
    contract = subprocess.run([python, "-c", "import cdncontract.signing, cdncontract.limits, edgeagent.config"],
                              capture_output=True, text=True, timeout=60)
    assert contract.returncode == 0, contract.stderr


def test_the_installed_cdn_edge_serves_and_stops_cleanly_on_sigterm(edge_venv: Path, tmp_path: Path) -> None:
    admin = free_port()
    process = subprocess.Popen(
        [str(edge_venv / "bin" / "cdn-edge"), "--name", "edge-pkg", "--pop", "pkg", "--listen",
         f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{admin}", "--cache-dir", str(tmp_path / "cache")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        health: Callable[[], bool] = lambda: httpx.get(f"http://127.0.0.1:{admin}/health", timeout=2).status_code == 200
        wait_for("the installed edge", health, timeout=30)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output = process.stdout.read().decode() if process.stdout else ""
    assert "edge ready" in output and "stopped" in output, output


def test_a_controlplane_install_migrates_and_serves_the_api_and_static_files(controlplane_venv: Path,
                                                                             tmp_path: Path) -> None:
    bin_dir = controlplane_venv / "bin"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "controlplane.settings",
           "CDN_VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "packaging-test-only",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'controlplane.sqlite3'}"}
    migrate = subprocess.run([str(bin_dir / "django-admin"), "migrate", "--noinput"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    assert "Applying distributions.0001_initial... OK" in migrate.stdout
    port = free_port()
    web = subprocess.Popen([str(bin_dir / "gunicorn"), "controlplane.wsgi:application", "--bind", f"127.0.0.1:{port}",
                            "--workers", "1"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    try:
        api = wait_for("gunicorn", lambda: httpx.get(f"http://127.0.0.1:{port}/api/v1/", timeout=2), timeout=30)
        assert api.status_code in (401, 403)
        css = httpx.get(f"http://127.0.0.1:{port}/static/rest_framework/css/bootstrap.min.css", timeout=10)
        assert css.status_code == 200 and len(css.content) > 10_000
    finally:
        web.terminate()
        web.wait(30)
