"""Login attempts are throttled per username and per client address, on every login: the API's
token call, the admin and any view that authenticates through Django (controlplane/login.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from controlplane.login import client_address

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]

LIMIT = settings.AXES_FAILURE_LIMIT
COOL_OFF = settings.AXES_COOLOFF_TIME
ALICE = {"username": "alice", "password": "alice-password-1"}
BOB = {"username": "bob", "password": "bob-password-1"}
HERE, THERE, ELSEWHERE = "198.51.100.1", "198.51.100.2", "203.0.113.9"


def token_login(credentials: dict[str, str], address: str = HERE, **headers: Any) -> Any:
    return APIClient().post("/api/v1/auth/token/", credentials, format="json", REMOTE_ADDR=address, **headers)


def wrong(username: str) -> dict[str, str]:
    return {"username": username, "password": "not-the-password"}


def fail(times: int, username: str = "alice", address: str = HERE) -> None:
    for _ in range(times):
        assert token_login(wrong(username), address).status_code in (400, 429)


def admin_login(credentials: dict[str, str], address: str = HERE) -> tuple[Client, Any]:
    browser = Client(REMOTE_ADDR=address)
    return browser, browser.post("/admin/login/?next=/admin/", credentials)


def age_attempts(by: timedelta) -> None:
    """The cool-off passing, without waiting for it: every recorded failure moved back in time."""
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= by
        attempt.save()


@pytest.fixture
def staff_alice(alice: User) -> User:
    alice.is_staff = True
    alice.save()
    return alice


def test_the_defaults_are_five_failures_and_a_fifteen_minute_cool_off() -> None:
    assert (LIMIT, COOL_OFF) == (5, timedelta(minutes=15))


# ---- The token call ----


def test_the_token_call_refuses_the_right_password_after_too_many_wrong_ones(alice: User) -> None:
    answers = [token_login(wrong("alice")) for _ in range(LIMIT)]
    assert [a.status_code for a in answers] == [400] * (LIMIT - 1) + [429]  # the failure that reaches the limit locks
    response = token_login(ALICE)
    assert response.status_code == 429
    assert response.json() == {"detail": "Too many failed login attempts. Try again later."}
    assert 0 < int(response["Retry-After"]) <= COOL_OFF.total_seconds()
    assert not Token.objects.exists()


def test_a_locked_out_answer_does_not_tell_whether_the_account_exists(alice: User) -> None:
    fail(LIMIT, "alice", HERE)
    fail(LIMIT, "nobody-by-this-name", THERE)
    real, made_up = token_login(ALICE, HERE), token_login({"username": "nobody-by-this-name", "password": "x"}, THERE)
    assert (real.status_code, real.json()) == (made_up.status_code, made_up.json())


def test_the_right_password_works_again_after_the_cool_off(alice: User) -> None:
    fail(LIMIT)
    assert token_login(ALICE).status_code == 429
    age_attempts(COOL_OFF + timedelta(seconds=1))
    response = token_login(ALICE)
    assert response.status_code == 200 and response.json()["token"]


def test_failures_during_a_lockout_neither_count_nor_extend_it(alice: User) -> None:
    fail(LIMIT)
    age_attempts(COOL_OFF - timedelta(seconds=30))  # 30 s of the lockout left
    for _ in range(3):
        response = token_login(wrong("alice"))
        assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 30
    age_attempts(timedelta(seconds=31))
    assert token_login(ALICE).status_code == 200


def test_a_success_resets_the_failure_count(alice: User) -> None:
    for _ in range(3):
        fail(LIMIT - 1)
        assert token_login(ALICE).status_code == 200
    assert not AccessAttempt.objects.exists()


def test_a_success_does_not_forgive_the_guesses_at_other_accounts_from_that_address(alice: User, bob: User) -> None:
    fail(LIMIT - 1, "bob", HERE)
    assert token_login(ALICE, HERE).status_code == 200  # the attacker's own account
    assert token_login(wrong("carol"), HERE).status_code == 429  # the address's count was kept
    assert token_login(ALICE, HERE).status_code == 429


# ---- Per username, per address ----


def test_one_address_is_locked_out_after_guessing_at_many_usernames(alice: User) -> None:
    for n in range(LIMIT):
        token_login(wrong(f"user{n}"), HERE)
    assert token_login(ALICE, HERE).status_code == 429
    assert token_login(ALICE, THERE).status_code == 200  # alice herself is not locked


def test_one_username_is_locked_out_after_guesses_from_many_addresses(alice: User, bob: User) -> None:
    for n in range(LIMIT):
        token_login(wrong("alice"), f"192.0.2.{n + 1}")
    assert token_login(ALICE, ELSEWHERE).status_code == 429
    assert token_login(BOB, ELSEWHERE).status_code == 200  # the address is not locked


def test_a_locked_user_does_not_lock_another_user_from_another_address(alice: User, bob: User) -> None:
    fail(LIMIT, "alice", HERE)
    assert token_login(ALICE, HERE).status_code == 429
    assert token_login(ALICE, ELSEWHERE).status_code == 429  # per username, from anywhere
    assert token_login(BOB, ELSEWHERE).status_code == 200
    assert token_login(BOB, HERE).status_code == 429  # per address, for anyone


# ---- The admin and any login view through Django's authentication ----


def test_the_admin_login_is_locked_out_with_a_clear_page(staff_alice: User) -> None:
    for _ in range(LIMIT - 1):
        _, page = admin_login(wrong("alice"))
        assert page.status_code == 200 and "Please enter the correct username and password" in page.content.decode()
    _, page = admin_login(wrong("alice"))
    assert page.status_code == 429
    browser, page = admin_login(ALICE)
    assert page.status_code == 429
    text = page.content.decode()
    assert "<h1>Too many failed login attempts</h1>" in text and "a correct password is refused too" in text
    assert "about 15 minutes" in text and 0 < int(page["Retry-After"]) <= COOL_OFF.total_seconds()
    assert page["Content-Type"].startswith("text/html")
    assert browser.get("/admin/").status_code == 302  # not logged in


def test_the_admin_login_works_again_after_the_cool_off(staff_alice: User) -> None:
    for _ in range(LIMIT):
        admin_login(wrong("alice"))
    age_attempts(COOL_OFF + timedelta(seconds=1))
    browser, page = admin_login(ALICE)
    assert page.status_code == 302 and page["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200


def test_the_admin_and_the_api_share_one_count(staff_alice: User) -> None:
    fail(LIMIT - 1)
    _, page = admin_login(wrong("alice"))
    assert page.status_code == 429
    assert token_login(ALICE).status_code == 429


def test_a_django_login_view_is_throttled_too(alice: User) -> None:
    """DRF's browsable login is Django's LoginView: what the dashboard's will be."""
    browser = Client(REMOTE_ADDR=HERE)
    for _ in range(LIMIT):
        browser.post("/api/v1/auth/login/", wrong("alice"))
    page = browser.post("/api/v1/auth/login/", {**ALICE, "next": "/api/v1/"})
    assert page.status_code == 429 and "Too many failed login attempts" in page.content.decode()
    assert browser.get("/api/v1/distributions/").status_code in (401, 403)


def test_authenticate_without_a_request_is_refused_rather_than_left_unthrottled(alice: User) -> None:
    with pytest.raises(ValueError, match="requires a request"):
        authenticate(username="alice", password="alice-password-1")


# ---- The client address behind a proxy ----


def test_a_client_cannot_pick_its_address_with_x_forwarded_for_by_default(alice: User) -> None:
    for n in range(LIMIT):
        token_login(wrong(f"user{n}"), HERE, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}")
    assert token_login(ALICE, HERE, HTTP_X_FORWARDED_FOR="10.9.9.200").status_code == 429


def test_behind_trusted_proxies_the_address_is_the_one_the_nearest_proxy_saw(settings: Any, alice: User) -> None:
    settings.CDN_TRUSTED_PROXY_COUNT = 1
    proxy = "172.18.0.5"
    for n in range(LIMIT):  # the client writes a new left part each time; the proxy appends the real one
        token_login(wrong(f"user{n}"), proxy, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, {HERE}")
    assert token_login(ALICE, proxy, HTTP_X_FORWARDED_FOR=HERE).status_code == 429
    assert token_login(ALICE, proxy, HTTP_X_FORWARDED_FOR=THERE).status_code == 200  # another client, same proxy


@pytest.mark.parametrize(("count", "forwarded", "expected"), [
    (0, "192.0.2.7", "198.51.100.1"),
    (1, "192.0.2.7", "192.0.2.7"),
    (1, "10.0.0.1, 192.0.2.7", "192.0.2.7"),
    (2, "10.0.0.1, 192.0.2.7, 172.18.0.2", "192.0.2.7"),
    (2, "192.0.2.7", "192.0.2.7"),  # fewer hops than proxies: the first one there is
    (1, "", "198.51.100.1"),
    (1, "not-an-address", "198.51.100.1"),
    (1, "2001:DB8::1", "2001:db8::1"),
])  # fmt: skip
def test_the_client_address_is_read_from_the_right_of_x_forwarded_for(
        settings: Any, count: int, forwarded: str, expected: str) -> None:
    settings.CDN_TRUSTED_PROXY_COUNT = count
    request = RequestFactory().post("/", REMOTE_ADDR=HERE, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


# ---- Documented in the schema ----


def test_the_schema_documents_the_429_and_its_retry_after(api: APIClient) -> None:
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    locked = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]["429"]
    assert locked["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert "429" not in schema["paths"]["/api/v1/distributions/"]["post"]["responses"]


def test_the_limit_and_the_cool_off_come_from_the_environment(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    environment.update(DEBUG="true", CDN_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="controlplane.settings",
                       CDN_LOGIN_FAILURE_LIMIT="3", CDN_LOGIN_COOLOFF_SECONDS="60")
    code = ("import json; from django.conf import settings; "
            "print(json.dumps([settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds()]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [3, 60]
    environment["CDN_LOGIN_FAILURE_LIMIT"] = "0"
    refused = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode != 0 and "CDN_LOGIN_FAILURE_LIMIT=0 must be at least 1" in refused.stderr
