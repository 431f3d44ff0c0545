"""The systemd units under deploy/ are valid and agree with the code they start.

`systemd-analyze verify` (Debian's systemd package, which .ci/run installs) checks every unit
inside a scratch root: a copy of the system's own units (so targets like sysinit.target
resolve) plus an executable stand-in at each ExecStart path, because verify refuses a unit
whose binary is missing and /opt/cdn is not installed here. Verify exits 0 on settings it
ignores (a misspelt key, a bad value), so any line it prints is a failure too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from edgeagent.cli import parse_settings

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy").glob("*.service"))
CONTROL_PLANE_UNITS = ("cdn-migrate.service", "cdn-controlplane.service", "cdn-worker.service", "cdn-beat.service")
SYSTEM_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def _settings(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"not a plain duration: {value!r}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def _verify(units: list[Path], root: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is not installed (.ci/run installs Debian's systemd package)")
        pytest.skip("systemd-analyze is not installed")
    system_dir = next((d for d in SYSTEM_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    assert system_dir is not None, "systemd is installed but its unit directory was not found"
    shutil.copytree(system_dir, root / "usr/lib/systemd/system", symlinks=True)
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    for unit in units:
        shutil.copy(unit, unit_dir / unit.name)
        for command in _settings(unit).get("ExecStart", []):
            binary = root / shlex.split(command.lstrip("-@:+!"))[0].lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", *(u.name for u in units)],
                          capture_output=True, text=True, timeout=60)


def test_deploy_ships_the_edge_and_control_plane_units() -> None:
    assert {u.name for u in UNITS} >= {"cdn-edge.service", *CONTROL_PLANE_UNITS}


def test_systemd_analyze_verify_accepts_every_unit_without_a_warning(tmp_path: Path) -> None:
    result = _verify(UNITS, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_the_verification_catches_a_misspelt_setting(tmp_path: Path) -> None:
    broken = tmp_path / "cdn-broken.service"
    broken.write_text((ROOT / "deploy/cdn-edge.service").read_text().replace("Restart=on-failure",
                                                                             "Restart=sometimes"))
    result = _verify([broken], tmp_path / "root")
    assert "Failed to parse service restart specifier" in result.stderr


def test_the_edge_unit_runs_the_packaged_command_with_a_credential_token() -> None:
    unit = _settings(ROOT / "deploy/cdn-edge.service")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    command = shlex.split(unit["ExecStart"][0])
    assert Path(command[0]).name in scripts
    assert unit["User"] == ["cdn"] and unit["EnvironmentFile"] == ["/etc/cdn/edge.env"]
    credential, source = unit["LoadCredential"][0].split(":", 1)
    assert source == "/etc/cdn/edge.token"
    assert f"EDGE_TOKEN_FILE=%d/{credential}" in unit["Environment"]
    settings = parse_settings([*command[1:], "--name", "edge-x", "--pop", "x"], env={})
    assert str(settings.cache_dir) in unit["ReadWritePaths"]
    assert unit["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"]
    assert unit["Restart"] == ["on-failure"] and unit["KillSignal"] == ["SIGTERM"]


def test_systemd_waits_longer_than_the_edge_drains_before_it_kills() -> None:
    unit = _settings(ROOT / "deploy/cdn-edge.service")
    drain = parse_settings(["--name", "edge-x", "--pop", "x", "--cache-dir", "/tmp/x"], env={}).shutdown_timeout
    assert _seconds(unit["TimeoutStopSec"][0]) >= drain + 10


def test_the_control_plane_units_read_the_secret_key_from_a_credential() -> None:
    for name in CONTROL_PLANE_UNITS:
        unit = _settings(ROOT / "deploy" / name)
        credential, source = unit["LoadCredential"][0].split(":", 1)
        assert source == "/etc/cdn/secret_key", name
        assert f"SECRET_KEY_FILE=%d/{credential}" in unit["Environment"], name
        assert "CDN_VAR_DIR=/var/lib/cdn" in unit["Environment"] and unit["ReadWritePaths"] == ["/var/lib/cdn"], name
        assert unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"], name


def test_migrations_run_before_the_new_control_plane_starts() -> None:
    migrate = _settings(ROOT / "deploy/cdn-migrate.service")
    assert migrate["Type"] == ["oneshot"]
    assert shlex.split(migrate["ExecStart"][0])[1:] == ["migrate", "--noinput"]
    assert set(migrate["Before"][0].split()) == set(CONTROL_PLANE_UNITS) - {"cdn-migrate.service"}
