"""Config versions. Every change that can affect the edges ends in `config_changed`, which
publishes one new ConfigVersion after the surrounding transaction commits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .. import crypto, history, selectors
from ..compiler import compile_document, document_body
from ..models import ConfigState, ConfigVersion, ConfigVersionChange, Distribution

log = logging.getLogger(__name__)

# Called with the new ConfigVersion after it is stored (the fleet's push task hooks in here).
version_published_hooks: list[Callable[[ConfigVersion], None]] = []


def config_changed(reason: str, distribution_ids: Iterable[str] = (), user: AbstractBaseUser | None = None) -> None:
    """Publish a new config version once the current transaction commits (at once outside one).

    Several calls in one transaction publish one version: the second finds the document
    unchanged and only marks its distributions as included in the version already published.
    """
    ids = list(distribution_ids)
    transaction.on_commit(lambda: config_version_publish(reason, ids, user))


def config_version_publish(reason: str, distribution_ids: Iterable[str] = (), user: AbstractBaseUser | None = None) -> ConfigVersion | None:
    """Compile the current state; store it as a new version unless it equals the newest one."""
    ids = list(distribution_ids)
    with transaction.atomic():
        state, _ = ConfigState.objects.select_for_update().get_or_create(id=1)
        latest = ConfigVersion.objects.filter(version=state.last_version).first()
        candidate = compile_document(selectors.distributions_for_compile(), state.last_version + 1)
        stored = _opened(latest)
        if latest is not None and stored is not None and document_body(stored) == document_body(candidate):
            if ids:
                Distribution.objects.filter(id__in=ids, config_version__lt=latest.version).update(config_version=latest.version)
            return None
        state.last_version += 1
        state.save(update_fields=["last_version"])
        version = ConfigVersion(version=state.last_version, document=crypto.seal_document(candidate),
                                reason=reason[:255], created_by=user if user is not None and user.is_authenticated else None)
        version.save()
        _record_changes(version, latest, stored, candidate)
        if ids:
            Distribution.objects.filter(id__in=ids).update(config_version=version.version)
        transaction.on_commit(lambda: run_hooks(version_published_hooks, version))
    log.info("published config version %s (%s)", version.version, reason)
    return version


def _opened(latest: ConfigVersion | None) -> dict[str, Any] | None:
    """The newest version in clear, to compare with a compiled one: sealing the same
    credentials twice never gives the same text. None without one, or when it is sealed
    under a key that is gone (it is then published again under the current one)."""
    if latest is None:
        return None
    try:
        return crypto.open_document(latest.document)
    except crypto.SecretsUnavailable:
        return None


def _record_changes(version: ConfigVersion, latest: ConfigVersion | None, stored: dict[str, Any] | None,
                    candidate: dict[str, Any]) -> None:
    """Which distributions this version changed: their config history (history.py)."""
    if latest is not None and stored is None:  # unreadable secrets: compare the rest
        changes = history.changed_distributions(history.public_document(latest.document),
                                                history.public_document(candidate))
    else:
        changes = history.changed_distributions(stored, candidate)
    ConfigVersionChange.objects.bulk_create(
        ConfigVersionChange(version=version, distribution_id=distribution_id, change=change)
        for distribution_id, change in sorted(changes.items()))


def run_hooks(hooks: list[Callable[[Any], None]], obj: Any) -> None:
    for hook in hooks:
        try:
            hook(obj)
        except Exception:  # a broken broker must not fail the API call: the beat task re-pushes
            log.exception("hook %r failed for %r", hook, obj)

