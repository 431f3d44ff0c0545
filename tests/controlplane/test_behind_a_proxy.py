"""The control plane behind a TLS-terminating proxy: the forwarded scheme (and host) are
trusted only when the environment says so, and a malformed setting stops the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from rest_framework.test import APIClient

from controlplane.settings import proxy_ssl_header

ROOT = Path(__file__).resolve().parents[2]


def _settings_in_a_fresh_process(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Settings are read once per process, as gunicorn and Celery read them."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    environment.update(DEBUG="true", CDN_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="controlplane.settings", **env)
    code = ("import json; from django.conf import settings; "
            "print(json.dumps([settings.SECURE_PROXY_SSL_HEADER, settings.USE_X_FORWARDED_HOST]))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=60)


def test_a_forwarded_https_request_is_secure_when_the_proxy_header_is_set(
        api: APIClient, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO,https")
    settings.SECURE_PROXY_SSL_HEADER = proxy_ssl_header()
    assert RequestFactory().get("/", HTTP_X_FORWARDED_PROTO="https").is_secure()
    assert not RequestFactory().get("/", HTTP_X_FORWARDED_PROTO="http").is_secure()
    links = api.get("/api/v1/", HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https").json()
    assert links["distributions"] == "https://localhost/api/v1/distributions/"


def test_the_forwarded_proto_is_ignored_when_the_proxy_header_is_unset(
        api: APIClient, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECURE_PROXY_SSL_HEADER", raising=False)
    monkeypatch.delenv("SECURE_PROXY_SSL_HEADER_FILE", raising=False)
    settings.SECURE_PROXY_SSL_HEADER = proxy_ssl_header()
    assert settings.SECURE_PROXY_SSL_HEADER is None
    assert not RequestFactory().get("/", HTTP_X_FORWARDED_PROTO="https").is_secure()
    links = api.get("/api/v1/", HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https").json()
    assert links["distributions"] == "http://localhost/api/v1/distributions/"


@pytest.mark.parametrize("value", ["X-Forwarded-Proto,https", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_PROTO,",
                                   "http_x_forwarded_proto,https", "HTTP_X_FORWARDED_PROTO,https,http", ",https"])
def test_it_rejects_a_malformed_proxy_header_setting(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", value)
    with pytest.raises(ImproperlyConfigured, match=r"SECURE_PROXY_SSL_HEADER=.* must be HTTP_<HEADER>,<value>"):
        proxy_ssl_header()


def test_the_settings_come_from_the_environment_of_the_process(tmp_path: Path) -> None:
    result = _settings_in_a_fresh_process(tmp_path, SECURE_PROXY_SSL_HEADER=" HTTP_X_FORWARDED_PROTO , https ",
                                          USE_X_FORWARDED_HOST="true")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [["HTTP_X_FORWARDED_PROTO", "https"], True]
    defaults = _settings_in_a_fresh_process(tmp_path, SECURE_PROXY_SSL_HEADER="", USE_X_FORWARDED_HOST="")
    assert json.loads(defaults.stdout) == [None, False]


@pytest.mark.parametrize(("name", "value"), [("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https"),
                                             ("USE_X_FORWARDED_HOST", "maybe")])
def test_the_control_plane_does_not_start_with_a_bad_proxy_setting(name: str, value: str, tmp_path: Path) -> None:
    result = _settings_in_a_fresh_process(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and f"{name}=" in result.stderr
