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


def test_with_hide_secrets_it_prints_where_the_secrets_are_and_never_them(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path
    out, err = StringIO(), StringIO()
    call_command("cdn_local_setup", "--edge-admin-ports", "9081,9082,9083", "--origin-port", "8090",
                 "--tokens-dir", str(tmp_path / "tokens"), "--hide-secrets", stdout=out, stderr=err)
    printed = out.getvalue() + err.getvalue()
    credentials = json.loads((tmp_path / "credentials.json").read_text())
    tokens = json.loads((tmp_path / "edges.json").read_text())
    assert credentials["password"] and credentials["token"] and len(tokens) == 3
    for secret in [credentials["password"], credentials["token"], *tokens.values()]:
        assert secret not in printed
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["edges"] == ["edge-fra", "edge-iad", "edge-sin"]
    assert summary["tokens_file"] == str(tmp_path / "edges.json")
    assert (tmp_path / "tokens" / "edge-fra").read_text().strip() == tokens["edge-fra"]
