"""First-start set-up for a local cluster: an `admin` user with a generated password and an
API token, written to var/credentials.json. Later runs reuse the file and change nothing.

`make run` reads the credentials from stdout; --hide-secrets is for output that lands in a
shared log (docker-compose's), where only the file's path is printed."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create the admin user and its API token once; print them and keep them in var/credentials.json."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--hide-secrets", action="store_true",
                            help="print the username and the file's path instead of the password and token")

    def handle(self, *args: Any, username: str, hide_secrets: bool = False, **options: Any) -> None:
        path = Path(settings.VAR_DIR) / "credentials.json"
        credentials = json.loads(path.read_text()) if path.exists() else {}
        user = User.objects.filter(username=username).first()
        if user is None or credentials.get("username") != username:
            password = secrets.token_urlsafe(12)
            if user is None:
                user = User.objects.create_superuser(username, email="", password=password)
            else:
                user.set_password(password)
                user.save()
            token, _ = Token.objects.get_or_create(user=user)
            credentials = {"username": username, "password": password, "token": token.key}
        else:
            token, _ = Token.objects.get_or_create(user=user, defaults={"key": credentials.get("token") or Token.generate_key()})
            credentials["token"] = token.key
        _write_owner_only(path, json.dumps(credentials, indent=2) + "\n")
        if hide_secrets:
            self.stdout.write(json.dumps({"username": username, "credentials_file": str(path)}))
        else:
            self.stdout.write(json.dumps(credentials))


def _write_owner_only(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte: never readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file left by an older run may have had a wider mode
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
