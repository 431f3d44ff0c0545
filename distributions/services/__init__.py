"""Writes, by concern. Views, tasks, the admin and the management commands call these names
(`services.distribution_create(...)`); the modules hold them:

- `publishing`: config versions, published after the surrounding transaction commits
- `distributions`, `policies`, `keys`, `invalidations`: what users change
- `edges`: registration, heartbeats, push outcomes, health
- `stats`: traffic reports from the edges and their retention
- `secrets`: re-encryption of the secrets at rest under the current key
"""

from __future__ import annotations

from .distributions import distribution_create, distribution_delete, distribution_rollback, distribution_update
from .edges import (
    MISSED_HEARTBEATS,
    edge_delete,
    edge_for_token,
    edge_heartbeat,
    edge_push_backoff,
    edge_push_failed,
    edge_push_ok,
    edge_register,
    edge_update,
    edges_applied,
    fleet_check_health,
)
from .errors import Conflict
from .invalidations import (
    PENDING_INVALIDATIONS_LIMIT,
    in_progress_missing,
    invalidation_ack,
    invalidation_acks,
    invalidation_check_reuse,
    invalidation_create,
    invalidation_created_hooks,
    invalidation_message,
    invalidations_check_complete,
    pending_invalidations,
)
from .keys import (
    key_group_create,
    key_group_delete,
    key_group_update,
    public_key_create,
    public_key_delete,
    public_key_update,
)
from .policies import policy_check_writable, policy_create, policy_delete, policy_is_writable, policy_update
from .publishing import config_changed, config_version_publish, version_published_hooks
from .secrets import secrets_reencrypt
from .stats import HOUR_RETENTION, MINUTE_RETENTION, stats_ingest, stats_prune

__all__ = [
    "HOUR_RETENTION",
    "MINUTE_RETENTION",
    "MISSED_HEARTBEATS",
    "PENDING_INVALIDATIONS_LIMIT",
    "Conflict",
    "config_changed",
    "config_version_publish",
    "distribution_create",
    "distribution_delete",
    "distribution_rollback",
    "distribution_update",
    "edge_delete",
    "edge_for_token",
    "edge_heartbeat",
    "edge_push_backoff",
    "edge_push_failed",
    "edge_push_ok",
    "edge_register",
    "edge_update",
    "edges_applied",
    "fleet_check_health",
    "in_progress_missing",
    "invalidation_ack",
    "invalidation_acks",
    "invalidation_check_reuse",
    "invalidation_create",
    "invalidation_created_hooks",
    "invalidation_message",
    "invalidations_check_complete",
    "key_group_create",
    "key_group_delete",
    "key_group_update",
    "pending_invalidations",
    "policy_check_writable",
    "policy_create",
    "policy_delete",
    "policy_is_writable",
    "policy_update",
    "public_key_create",
    "public_key_delete",
    "public_key_update",
    "secrets_reencrypt",
    "stats_ingest",
    "stats_prune",
    "version_published_hooks",
]
