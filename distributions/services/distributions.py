"""Distributions with their inline parts (aliases, origins, origin groups, cache behaviors)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from ..models import CREDENTIAL_FIELDS, ORIGIN_SECRET_FIELDS, Alias, CacheBehavior, Distribution, Origin, OriginGroup, new_etag
from .errors import Conflict
from .publishing import config_changed


def _check_aliases_free(aliases: list[str], distribution: Distribution | None, user: AbstractBaseUser) -> None:
    taken = Alias.objects.filter(name__in=aliases).select_related("distribution")
    if distribution is not None:
        taken = taken.exclude(distribution=distribution)
    for alias in taken:
        other = alias.distribution
        visible = getattr(user, "is_staff", False) or other.owner_id == user.pk
        raise Conflict(
            f"alias {alias.name!r} is already used by "
            + (f"distribution {other.id}" if visible else "another distribution"),
            alias=alias.name,
            distribution=other.id if visible else None,
        )


def _write_children(distribution: Distribution, data: dict[str, Any]) -> None:
    """Replace the inline lists that `data` carries (a PATCH may carry only some)."""
    if "aliases" in data:
        distribution.alias_set.all().delete()
        try:
            with transaction.atomic():
                Alias.objects.bulk_create(Alias(distribution=distribution, name=name) for name in data["aliases"])
        except IntegrityError as exc:  # taken between the check and the insert
            raise Conflict("an alias of this distribution was taken by another distribution at the same moment") from exc
    if "origins" in data:
        # Credentials are write-only: a read-modify-write that leaves them all out keeps the stored ones.
        kept = {o.origin_id: {name: getattr(o, name) for name in CREDENTIAL_FIELDS}
                for o in distribution.origins.all() if o.has_credentials}
        kept_secrets = {o.origin_id: {name: getattr(o, name) for name in ORIGIN_SECRET_FIELDS}
                        for o in distribution.origins.all()}
        distribution.origins.all().delete()
        for item in data["origins"]:
            origin = Origin(distribution=distribution, **item)
            if origin.kind == "s3" and not set(CREDENTIAL_FIELDS) & set(item):
                for name, value in kept.get(origin.origin_id, {}).items():
                    setattr(origin, name, value)
            for name, value in kept_secrets.get(origin.origin_id, {}).items():
                if name not in item:
                    setattr(origin, name, value)
            origin.save()
    if "origin_groups" in data:
        distribution.origin_groups.all().delete()
        for item in data["origin_groups"]:
            OriginGroup.objects.create(distribution=distribution, **item)
    if "cache_behaviors" in data:
        distribution.cache_behaviors.all().delete()
        for position, item in enumerate(data["cache_behaviors"]):
            fields = dict(item)
            groups = fields.pop("trusted_key_groups", [])
            behavior = CacheBehavior.objects.create(distribution=distribution, position=position, **fields)
            if groups:
                behavior.trusted_key_groups.set(groups)


SCALAR_FIELDS = ("comment", "enabled", "default_root_object", "custom_error_responses")


@transaction.atomic
def distribution_create(*, user: AbstractBaseUser, data: dict[str, Any],
                        owner: AbstractBaseUser | None = None) -> Distribution:
    """`owner` defaults to the user; the admin lets staff create one for someone else."""
    _check_aliases_free(data.get("aliases", []), None, user)
    distribution = Distribution(owner=owner or user, **{k: data[k] for k in SCALAR_FIELDS if k in data})
    distribution.save()
    _write_children(distribution, data)
    config_changed(f"distribution {distribution.id} created", [distribution.id], user)
    return distribution


@transaction.atomic
def distribution_update(*, distribution: Distribution, user: AbstractBaseUser, data: dict[str, Any],
                        owner: AbstractBaseUser | None = None, reason: str = "") -> Distribution:
    """`data` carries what changes (a PATCH may carry only some parts); `owner` hands it over (admin);
    `reason` is what the config version says (its history), by default "distribution ... updated"."""
    distribution = Distribution.objects.select_for_update().get(pk=distribution.pk)
    if "aliases" in data:
        _check_aliases_free(data["aliases"], distribution, user)
    if owner is not None:
        distribution.owner = owner
    for key in SCALAR_FIELDS:
        if key in data:
            setattr(distribution, key, data[key])
    distribution.etag = new_etag()
    distribution.save()
    _write_children(distribution, data)
    config_changed(reason or f"distribution {distribution.id} updated", [distribution.id], user)
    return distribution


def distribution_rollback(*, distribution: Distribution, user: AbstractBaseUser, data: dict[str, Any],
                          version: int) -> Distribution:
    """Give the distribution the settings it had in config `version` again, as a new version.

    `data` is `history.rollback_payload` of that version's snapshot, validated as any write is
    (the API runs it through the same serializer as a PATCH): a rollback is an update, so
    the version number only grows and the edges get it the way they get every change.
    """
    return distribution_update(distribution=distribution, user=user, data=data,
                               reason=f"distribution {distribution.id} rolled back to version {version}")


@transaction.atomic
def distribution_delete(*, distribution: Distribution, user: AbstractBaseUser | None = None) -> None:
    distribution = Distribution.objects.select_for_update().get(pk=distribution.pk)
    if distribution.enabled:
        raise Conflict(f"distribution {distribution.id} is enabled: disable it first, then delete it",
                       distribution=distribution.id)
    distribution_id = distribution.id
    distribution.delete()
    config_changed(f"distribution {distribution_id} deleted", (), user)

