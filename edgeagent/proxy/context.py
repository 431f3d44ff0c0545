"""What every phase of a request shares: the per-request context and the proxy's state.

`Ctx` is one request routed by admission to its distribution and behavior, with the config
it started on and what the stats and the access log record once it is answered.
`ProxyState` holds the proxy's collaborators, passed in by the agent (the running config,
the store, the counters, the origin client, the settings, the access log), and the state
the phases share (fills in flight, the routing memo, connections).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Protocol

from ..accesslog import SIMPLE_CONTENT_TYPE, AccessLog
from ..cli import Settings
from ..config import Behavior, Distribution, EdgeConfig
from ..prometheus import DistributionMetrics, Metrics
from ..origin import OriginClient
from ..server import HttpConnection, Request
from ..stats import EDGE, StatsCollector
from ..store import CachedObject, Store
from .heads import Heads

if TYPE_CHECKING:
    from .fill import Fill
    from .hit import Route


class ConfigSource(Protocol):
    """Where the running config is read, once per request (agent.RunningConfig)."""

    config: EdgeConfig | None


class Ctx:
    """A request routed to its distribution and behavior, with the config it started on."""

    __slots__ = (
        "req", "conn", "config", "dist", "behavior", "path", "scheme", "query", "metrics", "head_only", "key",
        "started", "status", "outcome", "sent", "result", "cache_status", "content_type", "content_range",
        "origin_began", "origin_fbl", "origin_lbl", "relay_interim", "key_id",
    )  # fmt: skip

    def __init__(
        self,
        req: Request,
        conn: HttpConnection,
        config: EdgeConfig,
        dist: Distribution,
        behavior: Behavior,
        path: str,
        scheme: str,
        metrics: DistributionMetrics,
        query: str = "",
    ) -> None:
        self.req = req
        self.conn = conn
        self.config = config
        self.dist = dist
        self.behavior = behavior
        # The path in its normal form and the query without a fragment (admission.admit).
        self.path = path
        self.scheme = scheme
        self.query = query
        # The distribution's Prometheus counters (prometheus.py); the control-plane stats
        # are recorded from `status`, `outcome` and `sent` below.
        self.metrics = metrics
        self.head_only = req.method == "HEAD"
        self.key = ""
        self.started = False
        # What the control-plane stats record once the response is done (stats.py).
        self.status = 0
        self.outcome = EDGE
        self.sent = 0
        # What the access log adds: the X-Cache result, response fields, origin timings.
        # A response that never reaches _start_response is one of the edge's plain texts.
        self.result = "Error"
        # This edge's Cache-Status parameters (RFC 9211) for the response, set by the phase
        # that knows the outcome (`fwd=stale; fwd-status=304`, `hit; ttl=-5`, ...); "" takes
        # the default of the X-Cache result (heads.CACHE_STATUS).
        self.cache_status = ""
        self.content_type: str | None = SIMPLE_CONTENT_TYPE
        self.content_range: str | None = None
        self.origin_began = 0.0
        self.origin_fbl: float | None = None
        self.origin_lbl: float | None = None
        # The viewer waits for the answer of this request's origin fetch, so the origin's
        # interim (1xx) responses go to it (PassThrough._relay_interim); not for background
        # refreshes, custom error pages or fills this viewer only joined.
        self.relay_interim = False
        # The public key that signed the request (signed URLs and cookies), for the log and stats.
        self.key_id: str | None = None

    def origin_done(self) -> None:
        """The origin's body has been read to its end (origin-lbl)."""
        if self.origin_began:
            self.origin_lbl = time.monotonic() - self.origin_began


class ProxyState:
    """The collaborators and shared state of the proxy's phases (see `Proxy`)."""

    def __init__(
        self,
        running: ConfigSource,
        store: Store,
        metrics: Metrics,
        stats: StatsCollector,
        origins: OriginClient,
        settings: Settings,
        access_log: AccessLog | None,
    ) -> None:
        self.running = running
        self.store = store
        self.metrics = metrics
        self.stats = stats
        self.origins = origins
        self.settings = settings
        self.access_log = access_log
        self.trust_forwarded_proto = settings.trust_forwarded_proto
        self.heads = Heads(settings.name, settings.pop)
        self.via = self.heads.via
        self.closing = False
        self.connections: set[HttpConnection] = set()
        self.fills: dict[str, Fill] = {}
        self.background: set[asyncio.Task[None]] = set()
        self.big_objects: dict[str, float] = {}
        self.routes: dict[tuple[str | None, str, str | None, str, str], Route] = {}
        self._boundary_counter = 0

    def _start_fill(self, ctx: Ctx, key: str, stale: CachedObject | None, ranged: bool = False) -> Fill:
        """The fill for `key` (fill.Filling); declared here for respond.py's error pages."""
        raise NotImplementedError
