"""Reads. Views and tasks ask here instead of building querysets themselves."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Max, Q, QuerySet

from .models import (
    CachePolicy,
    ConfigVersion,
    Distribution,
    EdgeNode,
    Invalidation,
    OriginRequestPolicy,
    Status,
)

User = AbstractBaseUser | AnonymousUser


def _is_staff(user: User) -> bool:
    return bool(getattr(user, "is_staff", False))


def distribution_list(user: User) -> QuerySet[Distribution]:
    qs = Distribution.objects.select_related("owner").prefetch_related(
        "alias_set", "origins", "origin_groups", "cache_behaviors__cache_policy", "cache_behaviors__origin_request_policy"
    )
    return qs if _is_staff(user) else qs.filter(owner=user)


def distributions_for_compile() -> QuerySet[Distribution]:
    return Distribution.objects.filter(enabled=True).prefetch_related(
        "alias_set", "origins", "origin_groups", "cache_behaviors__cache_policy", "cache_behaviors__origin_request_policy"
    )


def cache_policy_list(user: User) -> QuerySet[CachePolicy]:
    qs = CachePolicy.objects.all()
    return qs if _is_staff(user) else qs.filter(Q(managed=True) | Q(owner=user))


def origin_request_policy_list(user: User) -> QuerySet[OriginRequestPolicy]:
    qs = OriginRequestPolicy.objects.all()
    return qs if _is_staff(user) else qs.filter(Q(managed=True) | Q(owner=user))


def invalidation_list(distribution: Distribution) -> QuerySet[Invalidation]:
    return distribution.invalidations.all()


def edge_list() -> QuerySet[EdgeNode]:
    return EdgeNode.objects.all()


def config_version_latest() -> ConfigVersion | None:
    return ConfigVersion.objects.order_by("-version").first()


def deployed_version_floor() -> int | None:
    """The lowest version any healthy edge runs, or None when there is no healthy edge."""
    edges = EdgeNode.objects.filter(healthy=True)
    if not edges.exists():
        return None
    return min(edge.applied_version for edge in edges)


def distribution_status(distribution: Distribution, floor: int | None) -> str:
    """InProgress until every healthy edge runs a version that includes the distribution's last change.

    `floor` is `deployed_version_floor()`, computed once per request by the caller.
    """
    if floor is None or distribution.config_version <= floor:
        return Status.DEPLOYED
    return Status.IN_PROGRESS


def latest_version_number() -> int:
    return ConfigVersion.objects.aggregate(v=Max("version"))["v"] or 0
