"""The config history's diff and rollback, once: the API's `diff` and `rollback` actions and
the dashboard's history tab both call these, so the rules and messages are the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework import serializers

from .. import crypto, history, selectors, services
from ..models import ConfigVersion, Distribution
from .serializers import DistributionSerializer


def version_or_400(name: str, number: int) -> ConfigVersion:
    version = selectors.config_version_get(number)
    if version is None:
        raise serializers.ValidationError({name: [f"there is no config version {number}"]})
    return version


def opened(snapshot: dict[str, Any]) -> dict[str, Any]:
    """One distribution's snapshot with its secrets in clear (only its own are decrypted)."""
    return crypto.open_document({"distributions": [snapshot]})["distributions"][0]


def flatten_errors(errors: Any, data: Any, path: str = "") -> list[str]:
    """DRF's nested errors as `cache_behaviors[/api/*].cache_policy: message` lines."""
    if isinstance(errors, dict) and isinstance(data, list):  # a list's errors, by index
        errors = [errors.get(i, errors.get(str(i), {})) for i in range(len(data))]
    if isinstance(errors, dict):
        return [line for key, value in errors.items()
                for line in flatten_errors(value, data.get(key) if isinstance(data, dict) else None,
                                           f"{path}.{key}" if path else str(key))]
    if isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
        return [f"{path}: {message}" for message in errors]
    if isinstance(errors, list):
        lines = []
        for i, value in enumerate(errors):
            item = data[i] if isinstance(data, list) and i < len(data) else None
            name = next((item[k] for k in ("path_pattern", "origin_id", "group_id") if isinstance(item, dict) and k in item), i)
            lines.extend(flatten_errors(value, item, f"{path}[{name}]"))
        return lines
    return [f"{path}: {errors}"]


def distribution_diff(distribution: Distribution, start: int | None, to: int | None) -> dict[str, Any]:
    """What differs in the distribution between config versions `start` and `to`, field by field.

    `to` defaults to the newest version that changed it, `start` to the one before `to` that
    changed it (so the diff is what `to` changed). No secret is shown, only whether it changed.
    """
    newest = selectors.distribution_history(distribution.pk).values_list("version", flat=True).first()
    to = to or newest or selectors.latest_version_number() or None
    if start is None and to is not None:
        start = selectors.distribution_history_before(distribution.pk, to) or to
    answer: dict[str, Any] = {"distribution_id": distribution.pk, "from": start, "to": to,
                              "from_served": False, "to_served": False, "changes": []}
    if start is None or to is None:  # no version published yet
        return answer
    old_version = version_or_400("from", start)
    new_version = version_or_400("to", to)
    old = history.distribution_snapshot(old_version.document, distribution.pk)
    new = history.distribution_snapshot(new_version.document, distribution.pk)
    clear = None
    if old is not None and new is not None:
        try:
            clear = (opened(old), opened(new))
        except crypto.SecretsUnavailable:
            pass  # secrets sealed under a key that is gone: only whether each is set is compared
    answer.update(from_served=old is not None, to_served=new is not None,
                  changes=history.snapshot_diff(old or {}, new or {}, clear))
    return answer


def distribution_rollback(distribution: Distribution, *, user: AbstractBaseUser, number: int,
                          serializer_context: dict[str, Any],
                          check_current: Callable[[Distribution], None]) -> Distribution:
    """Give the distribution the settings it had in config version `number` again, as a new version.

    The old settings are validated by the API's own serializer, as a PATCH is; `check_current`
    is the caller's precondition (the API's If-Match, the dashboard's ETag from the page), run
    again on the locked row. 400 for a version that does not hold the distribution, 409
    (services.Conflict) for settings no longer valid or secrets that cannot be decrypted.
    """
    sealed = history.distribution_snapshot(version_or_400("version", number).document, distribution.pk)
    if sealed is None:
        raise serializers.ValidationError({"version": [
            f"config version {number} does not hold distribution {distribution.pk}: it was not created yet, "
            "or was disabled then"]})
    try:
        snapshot = opened(sealed)
    except crypto.SecretsUnavailable as exc:
        raise services.Conflict(f"the secrets of config version {number} cannot be decrypted with any key "
                                "of CDN_SECRET_KEYS, so it cannot be restored", version=number) from exc
    payload = history.rollback_payload(snapshot, distribution.origins.all())
    serializer = DistributionSerializer(distribution, data=payload, partial=True, context=serializer_context)
    if not serializer.is_valid():
        problems = "; ".join(flatten_errors(serializer.errors, payload))
        raise services.Conflict(f"the settings of config version {number} for this distribution are no longer "
                                f"valid: {problems}", version=number, errors=serializer.errors)
    with transaction.atomic():
        locked = Distribution.objects.select_for_update().get(pk=distribution.pk)
        check_current(locked)
        return services.distribution_rollback(distribution=locked, user=user, data=serializer.validated_data,
                                              version=number)
