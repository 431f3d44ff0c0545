"""The edge's side of the control-plane API (docs/edge-config.md, "Control plane API for edges").

Pushes from the control plane are the fast path; this link is the safety net that makes
them optional. Every heartbeat reports the running version and the highest applied
invalidation; the answer says what the edge is missing, and the edge fetches and applies
it, acknowledges the invalidations, and sends its buffered stats reports. Nothing here may
stop the edge from serving: the first sync is bounded by a short timeout (the persisted
config keeps serving meanwhile), and every later error is logged and retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Protocol

import httpx

from cdncontract.errors import ContractError
from cdncontract.invalidations import Invalidation, parse_invalidation

from .errors import InvalidDocumentError, StaleConfigError
from .stats import StatsCollector

log = logging.getLogger("edgeagent.link")

HEARTBEAT_PATH = "/api/v1/edge/heartbeat"
CONFIG_PATH = "/api/v1/edge/config"
ACKS_PATH = "/api/v1/edge/acks"
STATS_PATH = "/api/v1/edge/stats"

MIN_INTERVAL = 0.05
MAX_INTERVAL = 300.0


class LinkError(Exception):
    """The control plane answered something the contract does not allow, or an error status."""


class LinkTarget(Protocol):
    """What the link drives (agent.Agent)."""

    applied_invalidations: dict[int, float]

    @property
    def version(self) -> int: ...

    def apply_config(self, doc: object) -> int: ...

    def apply_invalidation(self, inv_id: int, distribution_id: str, paths: list[str], tags: list[str]) -> int: ...


def _invalidation(raw: object) -> Invalidation:
    try:
        return parse_invalidation(raw)
    except ContractError as exc:
        raise LinkError(f"malformed invalidation {raw!r}: {exc.where or 'invalidation'}: {exc.problem}") from None


def _json(response: httpx.Response, what: str) -> Any:
    if response.status_code != 200:
        raise LinkError(f"{what}: HTTP {response.status_code} {response.text[:200]!r}")
    try:
        return response.json()
    except ValueError as exc:
        raise LinkError(f"{what}: the answer is not JSON") from exc


class ControlPlaneLink:
    """Heartbeats, config catch-up, invalidation acks and stats delivery for one edge."""

    def __init__(
        self,
        agent: LinkTarget,
        url: str,
        token: str,
        stats: StatsCollector | None = None,
        *,
        heartbeat_interval: float = 5.0,
        start_timeout: float = 3.0,
        request_timeout: float = 5.0,
        max_backoff: float = 30.0,
        reports_per_tick: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.agent = agent
        self.stats = stats
        self.interval = heartbeat_interval
        self.start_timeout = start_timeout
        self.max_backoff = max_backoff
        self.reports_per_tick = reports_per_tick
        self.client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=request_timeout,
            transport=transport,
        )
        self.connected = False
        self.failures = 0
        self.heartbeats = 0
        self.heartbeat_failures = 0
        self.reports_sent = 0
        self.reports_duplicate = 0
        self.reports_refused = 0
        self.last_sync = 0.0
        self._refused_version = 0
        self._refused_reason = ""  # told to the control plane with every heartbeat
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle ----

    async def start(self) -> bool:
        """One bounded sync, then the heartbeat loop; True when the first sync succeeded."""
        ok = await self._tick(self.start_timeout, send_stats=False)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="control-plane-link")
        return ok

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.client.aclose()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.next_delay())
            await self._tick(None, send_stats=True)

    def next_delay(self) -> float:
        """The heartbeat interval; while failing, a jittered try at most one interval apart.

        No growing backoff: an edge must be back within one interval of the control plane's
        return, well inside the 3 missed heartbeats that make it unhealthy. A failing edge
        tries no more often than a healthy one heartbeats, and the jitter spreads a fleet.
        """
        if self.failures == 0:
            return self.interval
        return min(self.interval, self.max_backoff) * random.uniform(0.5, 1.0)

    async def _tick(self, timeout: float | None, send_stats: bool) -> bool:
        try:
            await asyncio.wait_for(self.sync(), timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            if self.connected or self.failures == 1:
                log.warning("control plane unreachable (%s: %s); serving version %d, retrying",
                            type(exc).__name__, exc, self.agent.version)  # fmt: skip
            else:
                log.debug("control plane still unreachable (%s); next try in about %.1fs", exc, self.next_delay())
            self.connected = False
            return False
        if not self.connected:
            log.info("control plane reached: running version %d", self.agent.version)
        self.connected = True
        self.failures = 0
        if send_stats:
            try:
                await self.send_stats()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Heartbeats work, so no backoff: the reports stay buffered for the next tick.
                log.warning("stats delivery failed (%s: %s); retrying next heartbeat", type(exc).__name__, exc)
        return True

    # ---- heartbeat and catch-up ----

    @property
    def invalidation_seq(self) -> int:
        return max(self.agent.applied_invalidations, default=0)

    async def sync(self) -> None:
        """Heartbeat, then fetch and apply what the answer says is missing.

        After a config change a second heartbeat tells the control plane at once, rather
        than one interval later, that this edge now runs the new version.
        """
        if await self._catch_up(await self._heartbeat()):
            await self._catch_up(await self._heartbeat())
        self.last_sync = time.time()

    async def _heartbeat(self) -> dict[str, Any]:
        body = {"version": self.agent.version, "invalidation_seq": self.invalidation_seq,
                "error": self._refused_reason}
        try:
            answer = _json(await self.client.post(HEARTBEAT_PATH, json=body), "heartbeat")
        except Exception:
            self.heartbeat_failures += 1
            raise
        if not isinstance(answer, dict) or not isinstance(answer.get("version"), int):
            raise LinkError(f"heartbeat: unexpected answer {answer!r}")
        self.heartbeats += 1
        interval = answer.get("heartbeat_interval")
        if isinstance(interval, (int, float)) and not isinstance(interval, bool) and interval > 0:
            self.interval = min(max(float(interval), MIN_INTERVAL), MAX_INTERVAL)
        return answer

    async def _catch_up(self, answer: dict[str, Any]) -> bool:
        """Apply a newer config and the listed invalidations; True when the config changed."""
        before = self.agent.version
        latest: int = answer["version"]
        if latest > before and latest != self._refused_version:
            await self._fetch_config(latest)
        invalidations = answer.get("invalidations", [])
        if not isinstance(invalidations, list):
            raise LinkError(f"heartbeat: invalidations must be a list, got {invalidations!r}")
        applied: list[int] = []
        for raw in invalidations:
            invalidation = _invalidation(raw)
            self.agent.apply_invalidation(*invalidation)
            applied.append(invalidation.id)
        if applied:
            _json(await self.client.post(ACKS_PATH, json={"invalidations": applied}), "acks")
        return self.agent.version != before

    async def _fetch_config(self, latest: int) -> None:
        response = await self.client.get(CONFIG_PATH)
        if response.status_code == 404:
            return
        doc = _json(response, "config")
        try:
            applied = self.agent.apply_config(doc)
        except InvalidDocumentError as exc:
            # Fetching the same refused document every heartbeat would only repeat this.
            self._refused_version = latest
            self._refused_reason = f"refused config version {latest}: {exc}"[:2000]
            log.error("refused config version %d from the control plane: %s", latest, exc)
            return
        except StaleConfigError as exc:
            log.info("ignoring the fetched config: %s", exc)
            return
        self._refused_reason = ""
        log.info("caught up to config version %d from the control plane", applied)

    # ---- stats ----

    async def send_stats(self) -> int:
        """Send buffered reports of closed intervals, oldest first; stop at the first error.

        A report leaves the buffer once the control plane answered 200, accepted or not (not
        accepted means it already counted that interval). A 400 means the control plane will
        never take that report, so it is dropped rather than blocking every later one.
        """
        stats = self.stats
        if stats is None or stats.buffer is None:
            return 0
        buffer = stats.buffer
        sent = 0
        for start in buffer.pending(before=stats.current_start)[: self.reports_per_tick]:
            report = buffer.load(start)
            if report is None:
                continue
            response = await self.client.post(STATS_PATH, json=report)
            if response.status_code == 400:
                log.error("control plane refused the stats of interval %d for good: %s", start, response.text[:200])
                buffer.remove(start)
                self.reports_refused += 1
                continue
            answer = _json(response, "stats")
            buffer.remove(start)
            sent += 1
            self.reports_sent += 1
            if isinstance(answer, dict) and answer.get("accepted") is False:
                self.reports_duplicate += 1
        return sent
