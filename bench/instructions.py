"""Instructions the edge executes per request, counted by Valgrind (callgrind): a noise-free A/B.

CPU time per request on a shared 2-core machine moves by +-30 % from one run to the next
(docs/performance.md), which hides the 5 % a hot-path target is about. The instructions the
edge executes per request barely move (well under 1 % between rounds), so a change is
measured against the code before it (`--baseline DIR`, a git worktree of the old commit) by
instructions per request, on every thread of the edge process (the access log's writer
thread included).

    python -m bench.instructions --baseline /tmp/before          # 1 KiB hit, 3 rounds of 2,000
    python -m bench.instructions --log-off --cases /bench/1k,/bench/nocache/1k
    python -m bench.instructions --quick                          # smoke: 1 round of 200 (CI)

Each edge starts under `valgrind --tool=callgrind` (about a minute: every instruction is
simulated), is warmed up, then for each round its counters are zeroed, one keep-alive
connection sends the requests one after another, and the counts are dumped. It is one
connection without pipelining, unlike bench.run's 64: the event loop's per-wakeup costs are
not amortised here, so the absolute numbers are an upper bound; the A/B between two edges
under the same load is what this is for. Valgrind is installed with apt-get when missing.
Writes bench/results/instructions.md and prints it; exits 1 when an edge fails or errs.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import servers as srv
from bench.run import CASES, RESULTS, ensure_tools, machine

READY_TIMEOUT = 300.0  # the edge's start-up under Valgrind is 50-100 times slower
REQUEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class Count:
    edge: str
    case: str
    round: int
    requests: int
    instructions: int

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests


class Viewer:
    """One keep-alive connection that sends a GET and reads its whole answer, request after request."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((srv.LOOPBACK, port), timeout=REQUEST_TIMEOUT)

    def get(self, path: str) -> tuple[int, dict[str, str]]:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {srv.BENCH_HOST}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(body) < length:
            body += self._recv()
        return int(lines[0].split()[1]), headers

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise srv.ServerFailed("the edge closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def callgrind_control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def dumped_instructions(out: Path, pid: int, before: set[Path]) -> int:
    """The `summary:` (instructions since the counters were zeroed) of the dump just written."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = [p for p in out.glob(f"callgrind.{pid}*") if p not in before]
        for path in new:
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("summary:"):
                    return int(line.split()[1])
        time.sleep(0.2)
    raise srv.ServerFailed("callgrind wrote no dump")


def measure(name: str, server: srv.Server, out: Path, paths: list[str], requests: int, rounds: int,
            warmup: int) -> list[Count]:
    viewer = Viewer(server.port)
    counts: list[Count] = []
    try:
        for path in paths:
            for _ in range(warmup):
                status, _ = viewer.get(path)
        for number in range(1, rounds + 1):
            for path in paths:  # rounds interleave the cases, as bench.run interleaves runs
                callgrind_control(server.proc.pid, "--zero")
                expect_hit = next(c.hit for c in CASES if c.path == path)
                for _ in range(requests):
                    status, headers = viewer.get(path)
                    if status != 200 or headers.get("x-cache", "").startswith("Hit") != expect_hit:
                        raise srv.ServerFailed(f"{name} {path}: {status} {headers.get('x-cache')}")
                before = set(out.glob(f"callgrind.{server.proc.pid}*"))
                callgrind_control(server.proc.pid, "--dump")
                counts.append(Count(name, path, number, requests, dumped_instructions(out, server.proc.pid, before)))
                print(f"{name} {path} round {number}: {counts[-1].per_request:,.0f} instructions per request", flush=True)
    finally:
        viewer.close()
    return counts


def render(counts: list[Count], args: argparse.Namespace, edges: dict[str, str]) -> str:
    lines = ["# Instructions per request (callgrind)", "",
             f"Machine: {machine()}. Python {sys.version.split()[0]}. "
             f"{args.rounds} round(s) of {args.requests} requests per edge per case, one keep-alive connection, "
             f"after {args.warmup} warm-up requests.", ""]
    lines += [f"- `{name}`: {describe}" for name, describe in edges.items()]
    lines += ["", "| case | edge | instructions per request (median) | min | max | vs `edge` |", "|---|---|---:|---:|---:|---:|"]
    medians: dict[tuple[str, str], float] = {}
    for case in dict.fromkeys(c.case for c in counts):
        for name in edges:
            values = [c.per_request for c in counts if c.case == case and c.edge == name]
            medians[case, name] = statistics.median(values)
            versus = "" if name == "edge" else f"{(medians[case, name] / medians[case, 'edge'] - 1) * 100:+.1f} %"
            lines.append(f"| {case} | {name} | {medians[case, name]:,.0f} | {min(values):,.0f} | {max(values):,.0f} | {versus} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: 1 round of 200 requests, 1 KiB hit only")
    parser.add_argument("--requests", type=int, help="requests per round (default 2000, quick 200)")
    parser.add_argument("--rounds", type=int, help="rounds per edge per case (default 3, quick 1)")
    parser.add_argument("--warmup", type=int, default=300, help="requests per case before counting")
    parser.add_argument("--cases", help="comma-separated case paths (default /bench/1k; any of "
                        + ",".join(c.path for c in CASES) + ")")
    parser.add_argument("--baseline", type=Path, help="also count the edge of this checkout (the code before a change)")
    parser.add_argument("--log-off", action="store_true", help="also count this edge (and the baseline's) with --access-log off")
    parser.add_argument("--output", type=Path, default=RESULTS / "instructions.md")
    args = parser.parse_args(argv)
    args.requests = args.requests or (200 if args.quick else 2000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    paths = (args.cases or "/bench/1k").split(",")
    unknown = [p for p in paths if p not in {c.path for c in CASES}]
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)}; choose from {', '.join(c.path for c in CASES)}")
    if args.baseline is not None and not (args.baseline / "edgeagent").is_dir():
        parser.error(f"--baseline {args.baseline}: no edgeagent/ there")
    if not shutil.which("valgrind"):
        ensure_tools({"valgrind": "valgrind"})

    variants: list[tuple[bool, Path | None]] = [(True, None)]
    if args.log_off:
        variants.append((False, None))
    if args.baseline is not None:
        variants.append((True, args.baseline.resolve()))
        if args.log_off:
            variants.append((False, args.baseline.resolve()))
    counts: list[Count] = []
    edges: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        work = Path(tmp)
        origin = srv.start_origin(work)
        try:
            for index, (access_log, root) in enumerate(variants):
                out = work / f"callgrind-{index}"
                out.mkdir()
                prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.%p"]
                server = srv.start_edge(work, origin.port, access_log, root, prefix, READY_TIMEOUT)
                edges[server.name] = "valgrind --tool=callgrind " + server.describe
                try:
                    counts += measure(server.name, server, out, paths, args.requests, args.rounds, args.warmup)
                finally:
                    srv.stop(server.proc)
        except srv.ServerFailed as exc:
            print(f"failed: {exc}", file=sys.stderr)
            return 1
        finally:
            srv.stop(origin.proc)
    report = render(counts, args, edges)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
