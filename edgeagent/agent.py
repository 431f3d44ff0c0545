"""The edge agent: builds the parts of one edge process, wires them and runs them.

It owns the running config, the store, the counters (Prometheus metrics and the
control-plane stats), the origin client, the access log, the listeners and the
control-plane link, and passes each part the collaborators it needs; no part imports it.

Everything that changes what the edge serves goes through `Agent.apply_config` and
`Agent.apply_invalidation`, whoever calls them (the admin API and the control-plane link),
so validation, persistence and counting happen in one place. A config swap is one
attribute assignment (`RunningConfig.config`): each request reads it once when it starts
and keeps that object, so in-flight requests finish on the config they began with.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from typing import Any

from aiohttp import web

from cdncontract.signing import signing_key

from . import prometheus
from .accesslog import AccessLog
from .admin import start_admin
from .cli import Settings
from .config import ConfigError, EdgeConfig, parse_document
from .errors import InvalidDocumentError, StaleConfigError
from .files import write_atomically
from .link import ControlPlaneLink
from .origin import OriginClient
from .proxy import Proxy
from .server import start_server
from .stats import StatsBuffer, StatsCollector
from .store import Store

log = logging.getLogger("edgeagent")

CONFIG_FILE = "edge-config.json"
STATS_BUFFER_DIR = "stats-buffer"
INVALIDATIONS_FILE = "invalidations.json"
REMEMBERED_INVALIDATIONS = 10_000


class RunningConfig:
    """The config being served: one attribute, swapped whole (proxy.ConfigSource)."""

    __slots__ = ("config",)

    def __init__(self) -> None:
        self.config: EdgeConfig | None = None


class Agent:
    """One edge process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.name
        self.pop = settings.pop
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        self.running = RunningConfig()
        # S3 credentials in a document are sealed for this key (cdncontract/sealing.py).
        self._edge_key = signing_key(settings.token) if settings.token else None
        self.metrics = prometheus.Metrics()
        self.store = Store(
            memory_bytes=settings.memory_cache_bytes,
            disk_dir=settings.cache_dir / "objects",
            disk_bytes=settings.disk_cache_bytes,
            memory_object_max=settings.memory_object_max,
        )
        self.origins = OriginClient()
        # Without a control plane nobody reads closed intervals, so none are buffered.
        linked = bool(settings.control_plane and settings.token)
        buffer = StatsBuffer(settings.cache_dir / STATS_BUFFER_DIR, settings.stats_buffer_reports) if linked else None
        self.stats = StatsCollector(buffer)
        self.link: ControlPlaneLink | None = None
        self.access_log: AccessLog | None = None
        if settings.access_log is not None:
            self.access_log = AccessLog(
                settings.access_log, settings.pop, settings.access_log_max_bytes,
                settings.access_log_files, settings.access_log_buffer, settings.access_log_cookies,
            )  # fmt: skip
        self.proxy = Proxy(
            self.running, self.store, self.metrics, self.stats, self.origins, settings, self.access_log
        )
        self.applied_invalidations: dict[int, float] = self._load_invalidations()
        self._stop = asyncio.Event()
        self._viewer: asyncio.Server | None = None
        self._admin: web.AppRunner | None = None
        self._stats_task: asyncio.Task[None] | None = None

    # ---- config ----

    @property
    def config(self) -> EdgeConfig | None:
        return self.running.config

    @config.setter
    def config(self, config: EdgeConfig | None) -> None:
        self.running.config = config
        refuse = self.settings.refuse_internal_origins or (config is not None and config.refuse_internal_origins)
        self.origins.configure(refuse_internal=refuse)

    @property
    def version(self) -> int:
        return self.config.version if self.config is not None else 0

    def document(self) -> dict[str, Any] | None:
        return self.config.document if self.config is not None else None

    def load_initial_config(self) -> None:
        """The newer of the persisted last good config and `--config FILE`.

        A pushed config newer than the file survives a restart, and an unreachable control
        plane never leaves a restarted edge without a config.
        """
        candidates: list[tuple[str, EdgeConfig]] = []
        sources = [("persisted", self.settings.cache_dir / CONFIG_FILE)]
        if self.settings.config_file is not None:
            sources.append(("file", self.settings.config_file))
        for label, path in sources:
            if not path.exists():
                continue
            try:
                candidates.append((label, parse_document(json.loads(path.read_bytes()), edge_key=self._edge_key)))
            except (OSError, ValueError) as exc:
                log.error("ignoring %s config %s: %s", label, path, exc)
        if not candidates:
            log.warning("no config yet: every host gets 404 until one is pushed")
            return
        label, best = max(candidates, key=lambda c: (c[1].version, c[0] == "file"))
        self.config = best
        self._persist(best.document)
        log.info("serving config version %d (%s)", best.version, label)

    def apply_config(self, doc: object) -> int:
        """Validate, persist, swap; the running config is untouched unless all three succeed."""
        try:
            new = parse_document(doc, edge_key=self._edge_key)
        except ConfigError as exc:
            self.metrics.config_rejected += 1
            raise InvalidDocumentError(str(exc)) from exc
        current = self.config
        if current is not None:
            if new.version < current.version:
                self.metrics.config_rejected += 1
                raise StaleConfigError(f"version {new.version} is older than the running version {current.version}")
            if new.version == current.version:
                return current.version
        self._persist(new.document)
        self.config = new
        self.metrics.config_applied += 1
        log.info("config version %d applied", new.version)
        return new.version

    def _persist(self, doc: dict[str, Any]) -> None:
        """Mode 0600 (write_atomically): credentials in it are sealed, and the key is this edge's token."""
        write_atomically(self.settings.cache_dir / CONFIG_FILE, json.dumps(doc, sort_keys=True).encode())

    # ---- invalidations ----

    def _load_invalidations(self) -> dict[int, float]:
        path = self.settings.cache_dir / INVALIDATIONS_FILE
        try:
            raw = json.loads(path.read_bytes())
            return {int(k): float(v) for k, v in raw.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def apply_invalidation(self, inv_id: int, distribution_id: str, paths: list[str], tags: list[str]) -> int:
        """Remove matching objects from both tiers; a repeated id is a no-op so retries are safe."""
        if inv_id in self.applied_invalidations:
            return 0
        self.proxy.invalidated(distribution_id)
        removed = self.store.invalidate(distribution_id, paths, tags)
        self.applied_invalidations[inv_id] = time.time()
        if len(self.applied_invalidations) > REMEMBERED_INVALIDATIONS:
            oldest = sorted(self.applied_invalidations.items(), key=lambda item: item[1])
            self.applied_invalidations = dict(oldest[-REMEMBERED_INVALIDATIONS:])
        write_atomically(
            self.settings.cache_dir / INVALIDATIONS_FILE,
            json.dumps({str(k): v for k, v in self.applied_invalidations.items()}).encode(),
        )
        self.metrics.invalidations_applied += 1
        self.metrics.objects_invalidated += removed
        log.info("invalidation %d on %s removed %d objects", inv_id, distribution_id, removed)
        return removed

    # ---- metrics and logs ----

    def access_log_tail(self, distribution_id: str, limit: int) -> bytes | None:
        """The distribution's most recent access log lines as NDJSON; None when the log is off."""
        if self.access_log is None:
            return None
        return self.access_log.tail(distribution_id, limit)

    def metrics_text(self) -> str:
        families: list[tuple[str, str, str, float]] = []
        access_log = self.access_log
        if access_log is not None:
            families += [
                ("edge_access_log_lines_total", "counter", "Access log lines written.", access_log.written),
                ("edge_access_log_dropped_total", "counter",
                 "Access log lines lost: buffer full or write error.", access_log.lost),
            ]  # fmt: skip
        buffer = self.stats.buffer
        if buffer is not None:
            families += [
                ("edge_stats_buffer_reports", "gauge", "Stats reports waiting on disk for the control plane.",
                 len(buffer)),
                ("edge_stats_dropped_reports_total", "counter",
                 "Stats reports lost: buffer full (oldest first), unreadable or unwritable.", buffer.dropped),
                ("edge_stats_unclean_stops_total", "counter",
                 "Earlier runs found to have stopped without saving their stats (up to 1 s of counts lost).",
                 self.stats.unclean_stops),
            ]  # fmt: skip
        link = self.link
        if link is not None:
            families += [
                ("edge_control_plane_connected", "gauge", "1 when the last control-plane sync succeeded.",
                 int(link.connected)),
                ("edge_control_plane_last_sync_seconds", "gauge", "Unix time of the last successful sync.",
                 link.last_sync),
                ("edge_control_plane_heartbeat_failures_total", "counter", "Heartbeats that failed.",
                 link.heartbeat_failures),
                ("edge_stats_reports_sent_total", "counter", "Stats reports the control plane answered 200 to.",
                 link.reports_sent),
            ]  # fmt: skip
        return prometheus.render(self.metrics, self.name, self.pop, self.version, self.store.stats, families)

    # ---- lifecycle ----

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self.load_initial_config()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        self._stats_task = loop.create_task(self.stats.run(), name="stats-intervals")
        if self.access_log is not None:
            self.access_log.start(loop)
        settings = self.settings
        if settings.control_plane and settings.token:
            # Before the viewer listener: an edge that was away must not serve an old
            # config, or objects invalidated meanwhile, when the control plane can say so.
            self.link = ControlPlaneLink(self, settings.control_plane, settings.token, self.stats)
            await self.link.start()
        host, port = self.settings.listen
        self._viewer = await start_server(self.proxy, host, port)
        admin_host, admin_port = self.settings.admin_listen
        self._admin = await start_admin(self, self.settings.token, admin_host, admin_port)
        viewer_addr = self._viewer.sockets[0].getsockname()
        admin_addr = self._admin.addresses[0]
        self.origins.configure(own_ports=(viewer_addr[1], admin_addr[1]))
        log.info(
            "edge ready: viewer=%s:%d admin=%s:%d name=%s pop=%s version=%d",
            viewer_addr[0], viewer_addr[1], admin_addr[0], admin_addr[1], self.name, self.pop, self.version,
        )  # fmt: skip
        await self._stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight responses finish (bounded), then flush and close."""
        log.info("shutting down: waiting up to %.0fs for in-flight requests", self.settings.shutdown_timeout)
        if self._viewer is not None:
            self._viewer.close()
        await self.proxy.drain(self.settings.shutdown_timeout)
        if self._admin is not None:
            await self._admin.cleanup()
        if self.link is not None:
            await self.link.stop()
        if self._stats_task is not None:
            self._stats_task.cancel()
        # After the link stopped: the partial interval is sent by the next run, once closed.
        self.stats.flush()
        if self.access_log is not None:
            # After in-flight requests: their lines are written too.
            self.access_log.stop()
            await asyncio.to_thread(self.access_log.close)
        await self.origins.close()
        self.store.close()
        log.info("stopped")
