"""The run against real services really uses them (CI sets DATABASE_URL and CELERY_BROKER_URL)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from controlplane.celery import app


@pytest.mark.django_db
def test_the_configured_database_is_the_one_in_use() -> None:
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    assert connection.vendor == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_the_configured_broker_answers() -> None:
    url = os.environ.get("CELERY_BROKER_URL", "")
    assert settings.CELERY_BROKER_URL == (url or "atomicfs://")
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=5)
        assert conn.connected
        if url.startswith("redis://"):
            client: Any = conn.default_channel.client
            assert client.ping() is True
