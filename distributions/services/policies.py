"""Cache and origin request policies; a change to one in use republishes its distributions."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import ProtectedError

from ..models import CachePolicy, OriginRequestPolicy
from .errors import Conflict
from .publishing import config_changed

PolicyModel = type[CachePolicy] | type[OriginRequestPolicy]


def policy_is_writable(policy: CachePolicy | OriginRequestPolicy) -> bool:
    """The one rule: managed policies (CloudFront's, shipped by migrations) are read-only for
    everyone, staff included. The API, the admin and the services below all ask here."""
    return not policy.managed


def policy_check_writable(policy: CachePolicy | OriginRequestPolicy) -> None:
    if not policy_is_writable(policy):
        raise PermissionError("managed policies are read-only")


def _check_name_free(model: PolicyModel, owner: Any, name: str, exclude: Any = None) -> None:
    taken = model.objects.filter(owner=owner, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise Conflict(f"you already have a policy named {name!r}", name=name)


@transaction.atomic
def policy_create(*, model: PolicyModel, user: AbstractBaseUser, data: dict[str, Any]) -> CachePolicy | OriginRequestPolicy:
    """`data` may name an `owner` (the admin lets staff pick one); the caller owns it otherwise."""
    values = {"owner": user, **data}
    _check_name_free(model, values["owner"], values["name"])
    policy = model(id=uuid.uuid4(), **values)
    policy.full_clean()
    policy.save(force_insert=True)
    return policy


def _distribution_ids_using(policy: CachePolicy | OriginRequestPolicy) -> list[str]:
    return sorted(set(policy.behaviors.values_list("distribution_id", flat=True)))


@transaction.atomic
def policy_update(*, policy: CachePolicy | OriginRequestPolicy, user: AbstractBaseUser, data: dict[str, Any]) -> CachePolicy | OriginRequestPolicy:
    policy = type(policy).objects.select_for_update().get(pk=policy.pk)
    policy_check_writable(policy)
    if "name" in data or "owner" in data:
        _check_name_free(type(policy), data.get("owner", policy.owner), data.get("name", policy.name), exclude=policy.pk)
    for key, value in data.items():
        setattr(policy, key, value)
    policy.full_clean()
    policy.save()
    users = _distribution_ids_using(policy)
    if users:
        config_changed(f"{policy._meta.verbose_name} {policy.name} updated", users, user)
    return policy


@transaction.atomic
def policy_delete(*, policy: CachePolicy | OriginRequestPolicy) -> None:
    policy_check_writable(policy)
    users = _distribution_ids_using(policy)
    if users:
        raise Conflict(f"policy {policy.name!r} is used by distribution(s) {', '.join(users)}",
                       distributions=users)
    try:
        policy.delete()
    except ProtectedError as exc:  # a behavior started using it meanwhile
        raise Conflict(f"policy {policy.name!r} is in use") from exc

