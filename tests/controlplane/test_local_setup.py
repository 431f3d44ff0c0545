"""The first-start set-up that `make run` and docker-compose's `setup` service run."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from distributions.models import Distribution, EdgeNode

pytestmark = pytest.mark.django_db


def setup(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("cdn_local_setup", *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_it_creates_the_admin_three_edges_and_a_demo_once(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path
    first = setup("--edge-admin-ports", "9081,9082,9083", "--origin-port", "8090", "--origin-host", "origin",
                  "--edge-url", "http://{name}:{port}", "--tokens-dir", str(tmp_path / "tokens"))
    assert sorted(first["edges"]) == ["edge-fra", "edge-iad", "edge-sin"]
    assert EdgeNode.objects.get(name="edge-iad").url == "http://edge-iad:9082"
    for name, token in first["edges"].items():
        assert (tmp_path / "tokens" / name).read_text().strip() == token
        assert EdgeNode.objects.get(name=name).check_token(token)
    demo = Distribution.objects.get(pk=first["distribution_id"])
    assert demo.owner.username == "admin" and demo.origins.get().domain_name == "origin"
    assert json.loads((tmp_path / "credentials.json").read_text())["username"] == "admin"

    again = setup("--edge-admin-ports", "9181,9182,9183", "--origin-port", "8190")
    assert again["edges"] == first["edges"] and again["distribution_id"] == first["distribution_id"]
    assert EdgeNode.objects.get(name="edge-fra").url == "http://127.0.0.1:9181"
    assert Distribution.objects.get(pk=first["distribution_id"]).origins.get().http_port == 8190
    assert Distribution.objects.count() == 1 and EdgeNode.objects.count() == 3
