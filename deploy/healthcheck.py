"""Container health check: GET a URL; healthy (exit 0) on a 2xx/3xx or on one of the statuses given.

    python deploy/healthcheck.py http://127.0.0.1:8000/api/v1/ 401 403

Used by docker-compose.yml instead of inline `python -c` programs: every argument is one
word, so no engine's handling of spaces inside an exec-form health check can break it
(podman's Docker API splits them: `python -c import` ...). Standard library only.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: healthcheck.py URL [ALSO_HEALTHY_STATUS ...]", file=sys.stderr)
        return 2
    url, accepted = argv[0], {int(status) for status in argv[1:]}
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - a URL from the compose file
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    if status < 400 or status in accepted:
        return 0
    print(f"{url}: HTTP {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
