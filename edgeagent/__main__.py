"""`python -m edgeagent`: parse flags and environment, then run one agent on uvloop."""

from __future__ import annotations

import logging
import sys

import uvloop

from .agent import Agent
from .cli import parse_settings


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if settings.log_level != "DEBUG":  # httpx logs every heartbeat and stats post at INFO
        logging.getLogger("httpx").setLevel(logging.WARNING)

    async def run() -> None:
        await Agent(settings).run()

    uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
