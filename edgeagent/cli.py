"""Command line and environment: every flag has an `EDGE_*` variable so containers and
the local supervisor can configure an edge without building argument lists."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_SIZE = re.compile(r"(\d+)\s*([kmgt]?)i?b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True)
class Settings:
    name: str
    pop: str
    listen: tuple[str, int]
    admin_listen: tuple[str, int]
    cache_dir: Path
    config_file: Path | None
    control_plane: str | None
    token: str | None
    memory_cache_bytes: int
    disk_cache_bytes: int
    memory_object_max: int
    range_passthrough_bytes: int
    shutdown_timeout: float
    collapse_timeout: float
    trust_forwarded_proto: bool
    log_level: str
    stats_buffer_reports: int
    access_log: Path | None
    access_log_max_bytes: int
    access_log_files: int
    access_log_buffer: int
    access_log_cookies: bool
    # Refuse origins in the operator's network even when the config document allows them.
    refuse_internal_origins: bool = False


def parse_size(text: str) -> int:
    """`1048576`, `512K`, `256M`, `10G`, `1GiB`: binary units, as operators write them."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 256M or 10G)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not host:port: {text!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {text!r}")
    return host, port


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _token_from(env: Mapping[str, str]) -> str | None:
    if env.get("EDGE_TOKEN"):
        return env["EDGE_TOKEN"]
    path = env.get("EDGE_TOKEN_FILE")
    if path:
        return Path(path).read_text().strip() or None
    return None


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    def default(var: str, fallback: str | None = None) -> str | None:
        return env.get(var) or fallback

    parser = argparse.ArgumentParser(
        prog="python -m edgeagent",
        description="Edge agent of the self-hosted CDN: serves distributions from the edge config document.",
    )
    add = parser.add_argument
    add("--name", default=default("EDGE_NAME"), required=not env.get("EDGE_NAME"),
        help="edge name, shown in X-Cache and Via (EDGE_NAME)")
    add("--pop", default=default("EDGE_POP"), required=not env.get("EDGE_POP"),
        help="PoP code, sent as X-Edge-Location (EDGE_POP)")
    add("--listen", type=parse_address, default=default("EDGE_LISTEN", "127.0.0.1:8081"),
        help="viewer traffic address host:port (EDGE_LISTEN)")
    add("--admin-listen", type=parse_address, default=default("EDGE_ADMIN_LISTEN", "127.0.0.1:9081"),
        help="admin API address host:port (EDGE_ADMIN_LISTEN)")
    add("--cache-dir", type=Path, default=default("EDGE_CACHE_DIR"), required=not env.get("EDGE_CACHE_DIR"),
        help="disk cache and persisted config (EDGE_CACHE_DIR)")
    add("--config", type=Path, default=default("EDGE_CONFIG"), help="serve this edge config document (EDGE_CONFIG)")
    add("--control-plane", default=default("EDGE_CONTROL_PLANE"), help="control plane base URL (EDGE_CONTROL_PLANE)")
    add("--token", default=_token_from(env), help="edge token (EDGE_TOKEN or EDGE_TOKEN_FILE)")
    add("--memory-cache-size", type=parse_size, default=default("EDGE_MEMORY_CACHE_SIZE", "256M"),
        help="memory tier bound (EDGE_MEMORY_CACHE_SIZE, default 256M)")
    add("--disk-cache-size", type=parse_size, default=default("EDGE_DISK_CACHE_SIZE", "10G"),
        help="disk tier bound (EDGE_DISK_CACHE_SIZE, default 10G)")
    add("--memory-object-max", type=parse_size, default=default("EDGE_MEMORY_OBJECT_MAX", "4M"),
        help="larger objects go straight to disk (EDGE_MEMORY_OBJECT_MAX, default 4M)")
    add("--range-passthrough-size", type=parse_size, default=default("EDGE_RANGE_PASSTHROUGH_SIZE", "1G"),
        help="range requests for larger objects go to the origin, uncached (EDGE_RANGE_PASSTHROUGH_SIZE, default 1G)")
    add("--shutdown-timeout", type=float, default=default("EDGE_SHUTDOWN_TIMEOUT", "10"),
        help="seconds in-flight requests get on SIGTERM (EDGE_SHUTDOWN_TIMEOUT)")
    add("--collapse-timeout", type=float, default=default("EDGE_COLLAPSE_TIMEOUT", "30"),
        help="longest wait for another request's origin fetch (EDGE_COLLAPSE_TIMEOUT)")
    add("--trust-forwarded-proto", action="store_true", default=_flag(env.get("EDGE_TRUST_FORWARDED_PROTO", "")),
        help="take the viewer scheme from X-Forwarded-Proto set by a trusted TLS front (EDGE_TRUST_FORWARDED_PROTO)")
    add("--log-level", default=default("EDGE_LOG_LEVEL", "INFO"), help="logging level (EDGE_LOG_LEVEL)")
    add("--stats-buffer-size", type=int, default=default("EDGE_STATS_BUFFER_SIZE", "8640"),
        help="10 s stats reports kept on disk while the control plane is unreachable; the oldest go first "
             "(EDGE_STATS_BUFFER_SIZE, default 8640: one day)")
    add("--access-log", default=default("EDGE_ACCESS_LOG", ""),
        help="JSON access log file, or 'off' (EDGE_ACCESS_LOG, default <cache-dir>/logs/access.log)")
    add("--access-log-max-size", type=parse_size, default=default("EDGE_ACCESS_LOG_MAX_SIZE", "64M"),
        help="rotate the access log at this size (EDGE_ACCESS_LOG_MAX_SIZE, default 64M)")
    add("--access-log-files", type=int, default=default("EDGE_ACCESS_LOG_FILES", "5"),
        help="access log files kept, the current one included (EDGE_ACCESS_LOG_FILES, default 5)")
    add("--access-log-buffer", type=int, default=default("EDGE_ACCESS_LOG_BUFFER", "65536"),
        help="requests waiting to be written; beyond it they are dropped and counted "
             "(EDGE_ACCESS_LOG_BUFFER, default 65536)")
    add("--access-log-cookies", action="store_true", default=_flag(env.get("EDGE_ACCESS_LOG_COOKIES", "")),
        help="log the Cookie header, cs(Cookie) (EDGE_ACCESS_LOG_COOKIES, default off)")
    add("--refuse-internal-origins", action="store_true",
        default=_flag(env.get("EDGE_REFUSE_INTERNAL_ORIGINS", "")),
        help="never connect to an origin address that is loopback, link-local, private or unspecified, "
             "whatever the config document says (EDGE_REFUSE_INTERNAL_ORIGINS, default off: the "
             "control plane's setting decides)")
    return parser


def _access_log_path(value: str, cache_dir: Path) -> Path | None:
    if value.strip().lower() == "off":
        return None
    return Path(value) if value.strip() else cache_dir / "logs" / "access.log"


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    parser = build_parser(env)
    args = parser.parse_args(argv)
    if args.control_plane and not args.token:
        parser.error("--control-plane needs --token (or EDGE_TOKEN)")

    # argparse runs `type` on string defaults too, so env values arrive converted.
    return Settings(
        name=args.name,
        pop=args.pop,
        listen=args.listen,
        admin_listen=args.admin_listen,
        cache_dir=Path(args.cache_dir),
        config_file=Path(args.config) if args.config else None,
        control_plane=args.control_plane,
        token=args.token,
        memory_cache_bytes=args.memory_cache_size,
        disk_cache_bytes=args.disk_cache_size,
        memory_object_max=args.memory_object_max,
        range_passthrough_bytes=args.range_passthrough_size,
        shutdown_timeout=float(args.shutdown_timeout),
        collapse_timeout=float(args.collapse_timeout),
        trust_forwarded_proto=bool(args.trust_forwarded_proto),
        log_level=str(args.log_level).upper(),
        stats_buffer_reports=max(1, int(args.stats_buffer_size)),
        access_log=_access_log_path(str(args.access_log), Path(args.cache_dir)),
        access_log_max_bytes=args.access_log_max_size,
        access_log_files=max(1, int(args.access_log_files)),
        access_log_buffer=max(1, int(args.access_log_buffer)),
        access_log_cookies=bool(args.access_log_cookies),
        refuse_internal_origins=bool(args.refuse_internal_origins),
    )
