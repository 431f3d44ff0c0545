"""Personas and helpers shared by the control plane tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

MINIMAL = {
    "comment": "static site",
    "enabled": True,
    "aliases": ["www.example.test"],
    "default_root_object": "index.html",
    "origins": [{"origin_id": "web", "kind": "custom", "domain_name": "127.0.0.1", "http_port": 8090,
                 "protocol_policy": "http-only"}],
    "origin_groups": [],
    "cache_behaviors": [
        {"path_pattern": "/api/*", "target_origin_id": "web", "cache_policy": "CachingDisabled", "allowed_methods": "ALL"},
        {"path_pattern": "*", "target_origin_id": "web", "cache_policy": "CachingOptimized",
         "viewer_protocol_policy": "allow-all", "compress": True},
    ],
}


def minimal(**overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(MINIMAL)
    body.update(overrides)
    return body


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def bob(db: Any) -> User:
    return User.objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def staff(db: Any) -> User:
    return User.objects.create_user("root", password="root-password-1", is_staff=True, is_superuser=True)


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def api(alice: User) -> APIClient:
    return client_for(alice)


@pytest.fixture
def bob_api(bob: User) -> APIClient:
    return client_for(bob)


@pytest.fixture
def staff_api(staff: User) -> APIClient:
    return client_for(staff)


@pytest.fixture
def created(api: APIClient, django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/distributions/", minimal(), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def tasks_run_inline() -> Any:
    """Unit tests run Celery tasks in-process; the end-to-end tests start a real worker."""
    from controlplane.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False
