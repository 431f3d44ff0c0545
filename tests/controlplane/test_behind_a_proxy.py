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


# ---- HTTPS settings ----

HTTPS_SETTINGS = ("SECURE_SSL_REDIRECT", "SECURE_REDIRECT_EXEMPT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
                  "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "CDN_TRUSTED_PROXY_COUNT")


def _https_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("DJANGO_", "PYTEST_")) and k not in HTTPS_SETTINGS}
    environment.update(DEBUG="true", CDN_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="controlplane.settings", **env)
    code = f"import json; from django.conf import settings; print(json.dumps([getattr(settings, n) for n in {HTTPS_SETTINGS!r}]))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=60)


def test_https_settings_are_off_by_default_so_local_http_keeps_working(tmp_path: Path) -> None:
    result = _https_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, [], 0, False, False, False, False, 0]


def test_https_settings_come_from_the_environment(tmp_path: Path) -> None:
    result = _https_settings(tmp_path, SECURE_SSL_REDIRECT="true", SECURE_REDIRECT_EXEMPT="^api/v1/edge/, ^health$",
                             SECURE_HSTS_SECONDS="31536000", SECURE_HSTS_INCLUDE_SUBDOMAINS="yes",
                             SECURE_HSTS_PRELOAD="1", SESSION_COOKIE_SECURE="on", CSRF_COOKIE_SECURE="true",
                             CDN_TRUSTED_PROXY_COUNT="2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, ["^api/v1/edge/", "^health$"], 31536000, True, True, True, True, 2]


@pytest.mark.parametrize(("name", "value", "words"), [
    ("SECURE_SSL_REDIRECT", "always", "SECURE_SSL_REDIRECT='always' is not a boolean"),
    ("SECURE_HSTS_SECONDS", "a-year", "SECURE_HSTS_SECONDS='a-year' is not an integer"),
    ("SECURE_HSTS_SECONDS", "-1", "SECURE_HSTS_SECONDS=-1 must be at least 0"),
    ("SESSION_COOKIE_SECURE", "maybe", "SESSION_COOKIE_SECURE='maybe' is not a boolean"),
    ("SECURE_REDIRECT_EXEMPT", "^api/(", "SECURE_REDIRECT_EXEMPT: '^api/(' is not a regular expression"),
    ("CDN_TRUSTED_PROXY_COUNT", "-1", "CDN_TRUSTED_PROXY_COUNT=-1 must be at least 0"),
])  # fmt: skip
def test_a_bad_https_setting_stops_the_process(tmp_path: Path, name: str, value: str, words: str) -> None:
    result = _https_settings(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and words in result.stderr


def test_with_the_redirect_on_http_is_redirected_but_exempt_and_forwarded_https_requests_are_not(
        settings: Any, db: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = ["^api/v1/edge/"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    client = APIClient()
    redirected = client.get("/admin/login/", HTTP_HOST="localhost")
    assert redirected.status_code == 301 and redirected["Location"] == "https://localhost/admin/login/"
    assert client.get("/api/v1/edge/config", HTTP_HOST="localhost").status_code == 401  # an edge, over HTTP
    secure = client.get("/admin/login/", HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200 and secure["Strict-Transport-Security"] == "max-age=3600"
