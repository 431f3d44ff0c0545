"""Public keys and key groups for signed URLs and cookies; a change to a group in use republishes
its distributions, and nothing a behavior relies on can be deleted from under it.

Deleting a key group a behavior trusts, or a key a group holds, is refused (409): removing
either silently would change which signatures the edges accept, and an emptied trust list
would serve private content to anyone.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import ProtectedError

from ..models import KeyGroup, PublicKey
from .errors import Conflict
from .publishing import config_changed


def _check_name_free(model: type[PublicKey] | type[KeyGroup], owner: Any, name: str, exclude: Any = None) -> None:
    taken = model.objects.filter(owner=owner, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise Conflict(f"you already have a {model._meta.verbose_name} named {name!r}", name=name)


def _distribution_ids_using(group: KeyGroup) -> list[str]:
    return sorted(set(group.behaviors.values_list("distribution_id", flat=True)))


@transaction.atomic
def public_key_create(*, user: AbstractBaseUser, data: dict[str, Any]) -> PublicKey:
    """`data` may name an `owner` (the admin lets staff pick one); the caller owns it otherwise."""
    values = {"owner": user, **data}
    _check_name_free(PublicKey, values["owner"], values["name"])
    key = PublicKey(**values)
    key.full_clean(validate_unique=False, validate_constraints=False)
    key.save(force_insert=True)
    return key


@transaction.atomic
def public_key_update(*, key: PublicKey, data: dict[str, Any]) -> PublicKey:
    """Name and comment only: the key itself never changes (upload a new one and rotate)."""
    key = PublicKey.objects.select_for_update().get(pk=key.pk)
    if "encoded_key" in data and data["encoded_key"].strip() != key.encoded_key.strip():
        raise Conflict(f"public key {key.id}: encoded_key cannot be changed; upload a new public key, add it to "
                       "the key group, and remove this one once nothing signs with it", public_key=key.id)
    if "name" in data or "owner" in data:
        _check_name_free(PublicKey, data.get("owner", key.owner), data.get("name", key.name), exclude=key.pk)
    for name in ("name", "comment", "owner"):
        if name in data:
            setattr(key, name, data[name])
    key.full_clean(validate_unique=False, validate_constraints=False)
    key.save()
    return key


@transaction.atomic
def public_key_delete(*, key: PublicKey) -> None:
    key = PublicKey.objects.select_for_update().get(pk=key.pk)
    groups = list(key.key_groups.order_by("name").values_list("id", "name"))
    if groups:
        raise Conflict(
            f"public key {key.id} is in key group(s) {', '.join(name for _, name in groups)}: "
            "remove it from them before deleting it", key_groups=[str(gid) for gid, _ in groups])
    key.delete()


def _set_keys(group: KeyGroup, keys: list[PublicKey]) -> None:
    group.public_keys.set(keys)


@transaction.atomic
def key_group_create(*, user: AbstractBaseUser, data: dict[str, Any]) -> KeyGroup:
    values = {"owner": user, **data}
    keys = values.pop("public_keys")
    _check_name_free(KeyGroup, values["owner"], values["name"])
    group = KeyGroup(**values)
    group.full_clean(validate_unique=False, validate_constraints=False)
    group.save(force_insert=True)
    _set_keys(group, keys)
    return group


@transaction.atomic
def key_group_update(*, group: KeyGroup, user: AbstractBaseUser, data: dict[str, Any]) -> KeyGroup:
    group = KeyGroup.objects.select_for_update().get(pk=group.pk)
    if "name" in data or "owner" in data:
        _check_name_free(KeyGroup, data.get("owner", group.owner), data.get("name", group.name), exclude=group.pk)
    for name in ("name", "comment", "owner"):
        if name in data:
            setattr(group, name, data[name])
    group.full_clean(validate_unique=False, validate_constraints=False)
    group.save()
    if "public_keys" in data:
        _set_keys(group, data["public_keys"])
    users = _distribution_ids_using(group)
    if users:
        config_changed(f"key group {group.name} updated", users, user)
    return group


@transaction.atomic
def key_group_delete(*, group: KeyGroup) -> None:
    group = KeyGroup.objects.select_for_update().get(pk=group.pk)
    users = _distribution_ids_using(group)
    if users:
        raise Conflict(f"key group {group.name!r} is trusted by distribution(s) {', '.join(users)}: remove it from "
                       "their cache behaviors before deleting it", distributions=users)
    try:
        group.delete()
    except ProtectedError as exc:
        raise Conflict(f"key group {group.name!r} is in use") from exc
