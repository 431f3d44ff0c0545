from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_it_issues_a_token_for_username_and_password(alice: User) -> None:
    response = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/distributions/").status_code == 200


def test_it_refuses_a_wrong_password(alice: User) -> None:
    response = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 400


def test_a_bad_token_is_refused(db: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/distributions/").status_code == 401


def test_session_login_works_for_the_api(alice: User) -> None:
    client = APIClient()
    # A request for the login throttle (axes refuses authenticate() without one: controlplane/login.py)
    assert client.login(request=HttpRequest(), username="alice", password="alice-password-1")
    assert client.get("/api/v1/distributions/").status_code == 200


def test_drf_create_token_works_from_manage_py(alice: User) -> None:
    # The management command itself, in this process (a subprocess would not see the test database).
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("drf_create_token", "alice", stdout=out)
    key = Token.objects.get(user=alice).key
    assert key in out.getvalue()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/distributions/").status_code == 200


def test_manage_py_refuses_to_start_without_a_secret_key_when_debug_is_off(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "false", "CDN_VAR_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(("name", "value", "words"), [
    ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
    ("DATABASE_URL", "nosuchdb://x", "DATABASE_URL='nosuchdb://x' is not a valid database URL"),
    ("CELERY_BROKER_URL", "carrier-pigeon://x", "unsupported scheme"),
])
def test_settings_fail_loudly_on_bad_values(tmp_path: Path, name: str, value: str, words: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 50, "CDN_VAR_DIR": str(tmp_path), name: value}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert words in result.stderr


def test_secret_key_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-" + "y" * 40)
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY_FILE": str(secret), "CDN_VAR_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='controlplane.settings';"
                             "from django.conf import settings;print(settings.SECRET_KEY)"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "from-a-file-" + "y" * 40, result.stderr
