"""Writes. Every change that can affect the edges ends in `config_changed`, which publishes
one new ConfigVersion after the surrounding transaction commits."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone

from . import selectors
from .compiler import compile_document, document_body
from .models import (
    COUNTERS,
    LATENCY_BUCKETS_MS,
    Alias,
    CacheBehavior,
    CachePolicy,
    ConfigState,
    ConfigVersion,
    Distribution,
    EdgeNode,
    Invalidation,
    InvalidationAck,
    Origin,
    OriginGroup,
    OriginRequestPolicy,
    StatsReceipt,
    TrafficStat,
    hash_token,
    new_etag,
)

log = logging.getLogger(__name__)

# Called with the new ConfigVersion after it is stored (the fleet's push task hooks in here).
version_published_hooks: list[Callable[[ConfigVersion], None]] = []
# Called with a new Invalidation after its transaction commits.
invalidation_created_hooks: list[Callable[[Invalidation], None]] = []


class Conflict(Exception):
    """A request that clashes with existing state (HTTP 409); `detail` names what it clashes with."""

    def __init__(self, detail: str, **conflict: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.conflict = conflict


# ---- Config versions ----

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
        if latest is not None and document_body(latest.document) == document_body(candidate):
            if ids:
                Distribution.objects.filter(id__in=ids, config_version__lt=latest.version).update(config_version=latest.version)
            return None
        state.last_version += 1
        state.save(update_fields=["last_version"])
        version = ConfigVersion(version=state.last_version, document=candidate, reason=reason[:255],
                                created_by=user if user is not None and user.is_authenticated else None)
        version.save()
        if ids:
            Distribution.objects.filter(id__in=ids).update(config_version=version.version)
        transaction.on_commit(lambda: _run_hooks(version_published_hooks, version))
    log.info("published config version %s (%s)", version.version, reason)
    return version


def _run_hooks(hooks: list[Callable[[Any], None]], obj: Any) -> None:
    for hook in hooks:
        try:
            hook(obj)
        except Exception:  # a broken broker must not fail the API call: the beat task re-pushes
            log.exception("hook %r failed for %r", hook, obj)


# ---- Distributions ----

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
        # Credentials are write-only: a read-modify-write that leaves them out keeps the stored ones.
        kept = {o.origin_id: (o.access_key_id, o.secret_access_key) for o in distribution.origins.all() if o.has_credentials}
        distribution.origins.all().delete()
        for item in data["origins"]:
            origin = Origin(distribution=distribution, **item)
            if origin.kind == "s3" and "access_key_id" not in item and "secret_access_key" not in item:
                origin.access_key_id, origin.secret_access_key = kept.get(origin.origin_id, ("", ""))
            origin.save()
    if "origin_groups" in data:
        distribution.origin_groups.all().delete()
        for item in data["origin_groups"]:
            OriginGroup.objects.create(distribution=distribution, **item)
    if "cache_behaviors" in data:
        distribution.cache_behaviors.all().delete()
        for position, item in enumerate(data["cache_behaviors"]):
            CacheBehavior.objects.create(distribution=distribution, position=position, **item)


SCALAR_FIELDS = ("comment", "enabled", "default_root_object", "custom_error_responses")


@transaction.atomic
def distribution_create(*, user: AbstractBaseUser, data: dict[str, Any]) -> Distribution:
    _check_aliases_free(data.get("aliases", []), None, user)
    distribution = Distribution(owner=user, **{k: data[k] for k in SCALAR_FIELDS if k in data})
    distribution.save()
    _write_children(distribution, data)
    config_changed(f"distribution {distribution.id} created", [distribution.id], user)
    return distribution


@transaction.atomic
def distribution_update(*, distribution: Distribution, user: AbstractBaseUser, data: dict[str, Any]) -> Distribution:
    distribution = Distribution.objects.select_for_update().get(pk=distribution.pk)
    if "aliases" in data:
        _check_aliases_free(data["aliases"], distribution, user)
    for key in SCALAR_FIELDS:
        if key in data:
            setattr(distribution, key, data[key])
    distribution.etag = new_etag()
    distribution.save()
    _write_children(distribution, data)
    config_changed(f"distribution {distribution.id} updated", [distribution.id], user)
    return distribution


@transaction.atomic
def distribution_delete(*, distribution: Distribution, user: AbstractBaseUser | None = None) -> None:
    distribution = Distribution.objects.select_for_update().get(pk=distribution.pk)
    if distribution.enabled:
        raise Conflict(f"distribution {distribution.id} is enabled: disable it first, then delete it",
                       distribution=distribution.id)
    distribution_id = distribution.id
    distribution.delete()
    config_changed(f"distribution {distribution_id} deleted", (), user)


# ---- Policies ----

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


# ---- Invalidations ----

def invalidation_create(*, distribution: Distribution, user: AbstractBaseUser | None, paths: list[str],
                        tags: list[str], caller_reference: str | None) -> tuple[Invalidation, bool]:
    """Create an invalidation, or return the one made earlier with the same caller_reference.

    Like CloudFront, reusing a caller_reference with a different batch is a conflict.
    """
    reference = caller_reference or uuid.uuid4().hex
    existing = Invalidation.objects.filter(distribution=distribution, caller_reference=reference).first()
    if existing is None:
        try:
            with transaction.atomic():
                invalidation = Invalidation(distribution=distribution, paths=paths, tags=tags,
                                            caller_reference=reference, created_by=user)
                invalidation.full_clean()
                invalidation.save()
                transaction.on_commit(lambda: _run_hooks(invalidation_created_hooks, invalidation))
            return invalidation, True
        except IntegrityError:
            existing = Invalidation.objects.get(distribution=distribution, caller_reference=reference)
    invalidation_check_reuse(existing=existing, paths=paths, tags=tags)
    return existing, False


def invalidation_check_reuse(*, existing: Invalidation, paths: list[str], tags: list[str]) -> None:
    """Refuse a caller_reference reused with another batch; the admin form asks before it saves."""
    if existing.paths != paths or existing.tags != tags:
        raise Conflict(f"caller_reference {existing.caller_reference!r} was already used for invalidation {existing.id} "
                       "with other paths or tags", invalidation=existing.id)


# ---- Fleet ----

MISSED_HEARTBEATS = 3  # an edge is unhealthy after this many missed heartbeats
PENDING_INVALIDATIONS_LIMIT = 1000


def edge_register(*, name: str, pop: str, url: str) -> tuple[EdgeNode, str]:
    """Create an edge and return its token, which is shown once and stored only as a hash."""
    edge = EdgeNode(name=name, pop=pop, url=url.rstrip("/"))
    token = secrets.token_hex(32)  # hex: never starts with '-', safe on any command line
    edge.set_token(token)
    edge.full_clean()
    edge.save()
    return edge, token


def edge_for_token(token: str) -> EdgeNode | None:
    return EdgeNode.objects.filter(token_hash=hash_token(token)).first() if token else None


def pending_invalidations(edge: EdgeNode) -> list[Invalidation]:
    return list(
        Invalidation.objects.filter(created_at__gte=edge.created_at)
        .exclude(acks__edge=edge)
        .order_by("seq")[:PENDING_INVALIDATIONS_LIMIT]
    )


def invalidation_message(invalidation: Invalidation) -> dict[str, Any]:
    return {"id": invalidation.seq, "distribution_id": invalidation.distribution_id,
            "paths": list(invalidation.paths), "tags": list(invalidation.tags)}


def edge_heartbeat(*, edge: EdgeNode, version: int, invalidation_seq: int, error: str | None = None) -> dict[str, Any]:
    """Record that the edge is alive and what it runs; `error` is why it refused the newest config."""
    now = timezone.now()
    fields: dict[str, Any] = {"last_seen": now, "healthy": True, "invalidation_seq": invalidation_seq}
    if error is not None:
        fields["last_error"] = error
    if version != edge.applied_version:
        fields.update(applied_version=version, applied_at=now)
    EdgeNode.objects.filter(pk=edge.pk).update(**fields)
    if not edge.healthy:
        log.info("edge %s is healthy again", edge.name)
        # Its return may release invalidations and distributions waiting on it, or hold them.
        invalidations_check_complete()
    return {
        "name": edge.name,
        "pop": edge.pop,
        "version": selectors.latest_version_number(),
        "heartbeat_interval": settings.CDN_HEARTBEAT_SECONDS,
        "invalidations": [invalidation_message(i) for i in pending_invalidations(edge)],
    }


def edge_applied(*, edge_name: str, version: int, error: str = "") -> None:
    """Record what a push left the edge running; a version never goes back through a push."""
    now = timezone.now()
    EdgeNode.objects.filter(name=edge_name, applied_version__lt=version).update(applied_version=version, applied_at=now)
    EdgeNode.objects.filter(name=edge_name).update(last_error=error[:2000])


def invalidation_ack(*, edge: EdgeNode, ids: Iterable[int]) -> int:
    wanted = set(ids)
    existing = set(Invalidation.objects.filter(seq__in=wanted).values_list("seq", flat=True))
    InvalidationAck.objects.bulk_create(
        [InvalidationAck(invalidation_id=seq, edge=edge) for seq in sorted(existing)], ignore_conflicts=True)
    invalidations_check_complete(existing)
    return len(existing)


def invalidations_check_complete(seqs: Iterable[int] | None = None) -> int:
    """Complete every in-progress invalidation that all healthy edges acknowledged."""
    healthy = list(EdgeNode.objects.filter(healthy=True).values_list("pk", flat=True))
    pending = Invalidation.objects.filter(status="InProgress")
    if seqs is not None:
        pending = pending.filter(seq__in=list(seqs))
    done = {
        inv.seq: inv.id for inv in pending.prefetch_related("acks")
        if set(healthy) <= {ack.edge_id for ack in inv.acks.all()}
    }
    completed = Invalidation.objects.filter(seq__in=list(done), status="InProgress").update(
        status="Completed", completed_at=timezone.now())
    if completed:
        log.info("invalidation %s completed on every healthy edge", ", ".join(done.values()))
    return completed


def fleet_check_health() -> list[str]:
    """Mark edges that missed their heartbeats unhealthy; return their names."""
    cutoff = timezone.now() - timedelta(seconds=settings.CDN_HEARTBEAT_SECONDS * MISSED_HEARTBEATS)
    stale = EdgeNode.objects.filter(healthy=True).filter(Q(last_seen__lt=cutoff) | Q(last_seen__isnull=True))
    names = list(stale.values_list("name", flat=True))
    if names:
        EdgeNode.objects.filter(name__in=names).update(healthy=False)
        log.warning("edges missed %s heartbeats and are now unhealthy: %s", MISSED_HEARTBEATS, ", ".join(names))
        invalidations_check_complete()
    return names


# ---- Traffic statistics ----

def _bucket_sum(a: list[int], b: list[int]) -> list[int]:
    size = max(len(a), len(b), len(LATENCY_BUCKETS_MS))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(size)]


def _add_to_row(*, distribution_id: str, edge: EdgeNode, resolution: str, period_start: datetime,
                counters: dict[str, Any]) -> None:
    row, _ = TrafficStat.objects.select_for_update().get_or_create(
        distribution_id=distribution_id, edge=edge, resolution=resolution, period_start=period_start)
    for name in COUNTERS:
        setattr(row, name, getattr(row, name) + int(counters.get(name, 0)))
    row.latency_ms_buckets = _bucket_sum(list(row.latency_ms_buckets), list(counters.get("latency_ms_buckets", [])))
    row.save()


@transaction.atomic
def stats_ingest(*, edge: EdgeNode, interval_start: int, distributions: dict[str, dict[str, Any]]) -> bool:
    """Add one interval report to the minute and hour rows; False (nothing counted) for a retry.

    Both resolutions are written here rather than rolled up later, so a report that arrives
    late (an edge buffered it through an outage) lands in the right hour too.
    """
    start = datetime.fromtimestamp(interval_start, tz=dt_timezone.utc)
    try:
        with transaction.atomic():
            StatsReceipt.objects.create(edge=edge, interval_start=start)
    except IntegrityError:
        return False
    known = set(Distribution.objects.filter(id__in=list(distributions)).values_list("id", flat=True))
    minute = start.replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    for distribution_id in sorted(known):
        counters = distributions[distribution_id]
        _add_to_row(distribution_id=distribution_id, edge=edge, resolution="minute", period_start=minute,
                    counters=counters)
        _add_to_row(distribution_id=distribution_id, edge=edge, resolution="hour", period_start=hour,
                    counters=counters)
    return True


MINUTE_RETENTION = timedelta(days=7)
HOUR_RETENTION = timedelta(days=400)


def stats_prune(now: datetime | None = None) -> int:
    now = now or timezone.now()
    removed = TrafficStat.objects.filter(resolution="minute", period_start__lt=now - MINUTE_RETENTION).delete()[0]
    removed += TrafficStat.objects.filter(resolution="hour", period_start__lt=now - HOUR_RETENTION).delete()[0]
    StatsReceipt.objects.filter(interval_start__lt=now - MINUTE_RETENTION).delete()
    return removed
