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


@transaction.atomic
def policy_create(*, model: PolicyModel, user: AbstractBaseUser, data: dict[str, Any]) -> CachePolicy | OriginRequestPolicy:
    if model.objects.filter(owner=user, name=data["name"]).exists():
        raise Conflict(f"you already have a policy named {data['name']!r}", name=data["name"])
    policy = model(id=uuid.uuid4(), owner=user, **data)
    policy.full_clean()
    policy.save(force_insert=True)
    return policy


def _distribution_ids_using(policy: CachePolicy | OriginRequestPolicy) -> list[str]:
    return sorted(set(policy.behaviors.values_list("distribution_id", flat=True)))


@transaction.atomic
def policy_update(*, policy: CachePolicy | OriginRequestPolicy, user: AbstractBaseUser, data: dict[str, Any]) -> CachePolicy | OriginRequestPolicy:
    if policy.managed:
        raise PermissionError("managed policies are read-only")
    if "name" in data and data["name"] != policy.name and type(policy).objects.filter(owner=policy.owner, name=data["name"]).exists():
        raise Conflict(f"you already have a policy named {data['name']!r}", name=data["name"])
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
    if policy.managed:
        raise PermissionError("managed policies are read-only")
    users = _distribution_ids_using(policy)
    if users:
        raise Conflict(f"policy {policy.name!r} is used by distribution(s) {', '.join(users)}",
                       distributions=users)
    try:
        policy.delete()
    except ProtectedError as exc:  # a behavior started using it meanwhile
        raise Conflict(f"policy {policy.name!r} is in use") from exc

