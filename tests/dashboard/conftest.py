"""Users and a distribution for the dashboard's test-client tests."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from tests.controlplane.conftest import minimal


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def bob(db: Any) -> User:
    return User.objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def staff(db: Any) -> User:
    return User.objects.create_user("root", password="root-password-1", is_staff=True)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def created(alice: User, django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    """Alice's distribution, made through the API, with an S3-style secret header set on its origin."""
    api = APIClient()
    api.force_authenticate(alice)
    body = minimal()
    body["origins"][0].update(secret_header_name="X-Origin-Verify", secret_header_value="s3cr3t-never-shown")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/distributions/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()
