"""Which HTTP client the edge's miss path can afford: httpx vs aiohttp, 64 concurrent 1 KiB GETs.

    python -m bench.origin_client [--requests 4000] [--concurrency 64]

Both clients run in this one process on uvloop against the demo origin (another process), so
the CPU this process spends per request is the client's cost, and req/s shows what the
client alone lets a proxy reach on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

from bench import servers as srv

PATH = "/bench/nocache/1k"
Fetch = Callable[[], Awaitable[int]]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(fetch: Fetch, requests: int, concurrency: int) -> tuple[float, float]:
    """(req/s, CPU µs/req) for `requests` fetches spread over `concurrency` workers."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if await fetch() != 1024:
                raise RuntimeError("short body from the origin")

    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    return requests / wall, cpu * 1e6 / requests


async def with_httpx(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def fetch() -> int:
            return len((await client.get(url)).content)

        await drive(fetch, min(requests, 200), concurrency)
        return await drive(fetch, requests, concurrency)


async def with_aiohttp(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch() -> int:
            async with session.get(url) as response:
                return len(await response.read())

        await drive(fetch, min(requests, 200), concurrency)
        return await drive(fetch, requests, concurrency)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.origin_client", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cdn-bench-client-") as workdir:
        origin = srv.start_origin(Path(workdir))
        try:
            url = origin.url + PATH
            rows = [
                ("httpx.AsyncClient " + httpx.__version__, uvloop.run(with_httpx(url, args.requests, args.concurrency))),
                ("aiohttp.ClientSession " + aiohttp.__version__, uvloop.run(with_aiohttp(url, args.requests, args.concurrency))),
            ]
        finally:
            srv.stop(origin.proc)
    print(f"{args.concurrency} concurrent GET {PATH}, {args.requests} requests per client\n")
    print("| client | req/s | client CPU µs/req |\n|---|---:|---:|")
    for name, (rps, cpu_us) in rows:
        print(f"| {name} | {rps:,.0f} | {cpu_us:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
