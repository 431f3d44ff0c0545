"""Edge agent vs nginx proxy_cache vs Varnish, side by side in one run, in front of one demo origin.

The edge runs twice: as operators run it (access log on) and with `--access-log off`, so the
log's cost per request is measured in the same interleaved run.

    python -m bench.run            # full: 3 runs x 10 s per server per case, medians
    python -m bench.run --quick    # smoke: 1 run x 2 s (what CI runs)

Runs are interleaved (run 1 of every server, then run 2 ...) so that a noisy neighbour on a
shared 2-core box hurts every server alike instead of whichever happened to go last.
Writes bench/results/latest.md (and latest.json with every raw run) and prints the table.
Exits 1 when a server did not start, died, or answered with errors (never for a missed target:
speed is reported, not asserted).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

import httpx

from bench import servers as srv

RESULTS = srv.ROOT / "bench" / "results"
REQUIRED_TOOLS = {"nginx": "nginx", "varnishd": "varnish", "wrk": "wrk"}
SERVER_ORDER = ("edge", "edge-log-off", "baseline", "baseline-log-off", "nginx", "varnish")
DEFAULT_SERVERS = ("edge", "edge-log-off", "nginx", "varnish")
BASELINE = ("baseline", "baseline-log-off")  # only with --baseline DIR
CONNECTIONS = 64


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    hit: bool


CASES = (
    Case("1 KiB hit", "/bench/1k", True),
    Case("100 KiB hit", "/bench/100k", True),
    Case("1 KiB miss", "/bench/nocache/1k", False),
)


@dataclass
class Measurement:
    server: str
    case: str
    run: int
    requests: int
    seconds: float
    rps: float
    p99_ms: float
    cpu_us_per_req: float
    errors: int
    timeouts: int
    origin_requests: int
    origin_cpu_us_per_req: float


# ---- Tools ----


def ensure_tools(tools: dict[str, str] = REQUIRED_TOOLS) -> None:
    """Install the Debian packages of the tools missing (by default nginx, Varnish and wrk)."""
    missing = sorted({pkg for tool, pkg in tools.items() if not shutil.which(tool) and not Path("/usr/sbin", tool).exists()})
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {' '.join(missing)} ...", flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", *missing], check=True, env=env)


def tool_versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except OSError:
            return "not installed"
        return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"

    return {
        "nginx": first_line(["nginx", "-v"]),
        "varnish": first_line(["varnishd", "-V"]),
        "wrk": first_line(["wrk", "-v"]).split(" [")[0],
        "python": sys.version.split()[0],
    }


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Linux {platform.release()}"


# ---- wrk ----

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * UNIT_MS[match.group(2)]


def parse_wrk(output: str) -> tuple[int, float, float, int, int]:
    """(requests, seconds, p99 ms, errors, timeouts) from `wrk --latency` output.

    Timeouts (no answer within wrk's 2 s) are kept apart from errors: on a contended box a
    slow origin causes them, while an error (reset, bad status) means something is broken.
    """
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.MULTILINE)
    if not total or not p99:
        raise ValueError(f"cannot parse wrk output:\n{output}")
    seconds = parse_duration_ms(total.group(2) + total.group(3)) / 1000
    errors = timeouts = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        connect, read, write, timeouts = (int(n) for n in socket_errors.groups())
        errors += connect + read + write
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return int(total.group(1)), seconds, parse_duration_ms(p99.group(1)), errors, timeouts


def wrk(url: str, duration: float) -> str:
    argv = [
        "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration:g}s", "--latency",
        "-H", f"Host: {srv.BENCH_HOST}", url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}")
    return done.stdout


def measure(server: srv.Server, origin: srv.Server, case: Case, run: int, duration: float) -> Measurement:
    tree = srv.process_tree(server.proc.pid)
    origin_tree = srv.process_tree(origin.proc.pid)
    origin_before = srv.origin_requests(origin).get(case.path, 0)
    cpu_before, origin_cpu_before = srv.cpu_ticks(tree), srv.cpu_ticks(origin_tree)
    output = wrk(server.url + case.path, duration)
    cpu = srv.cpu_seconds_between(cpu_before, srv.cpu_ticks(tree))
    origin_cpu = srv.cpu_seconds_between(origin_cpu_before, srv.cpu_ticks(origin_tree))
    origin_after = srv.origin_requests(origin).get(case.path, 0)
    requests, seconds, p99_ms, errors, timeouts = parse_wrk(output)
    return Measurement(
        server=server.name,
        case=case.name,
        run=run,
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p99_ms=p99_ms,
        cpu_us_per_req=cpu * 1e6 / requests if requests else 0.0,
        errors=errors,
        timeouts=timeouts,
        origin_requests=origin_after - origin_before,
        origin_cpu_us_per_req=origin_cpu * 1e6 / requests if requests else 0.0,
    )


# ---- Profiling the edge ----


def frame_name(frame: str) -> str:
    """`func (path/file.py:123)` without the line number, so samples of one function add up."""
    return re.sub(r":\d+\)$", ")", frame.strip())


Ranking = list[tuple[str, float]]


def top_functions(folded: str, limit: int = 15) -> tuple[Ranking, Ranking, Ranking]:
    """(self, inclusive, hottest lines) shares of samples from py-spy's raw (folded) output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    lines: dict[str, int] = {}
    total = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw_frames = stack.split(";")
        frames = [frame_name(f) for f in raw_frames]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        lines[raw_frames[-1].strip()] = lines.get(raw_frames[-1].strip(), 0) + count
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count

    def ranked(counts: dict[str, int]) -> Ranking:
        best = sorted(counts.items(), key=lambda item: item[1], reverse=True)[:limit]
        return [(name, 100.0 * n / total) for name, n in best] if total else []

    return ranked(own), ranked({k: v for k, v in inclusive.items() if "edgeagent/" in k}), ranked(lines)


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_edge(edge: srv.Server, seconds: float, output: Path) -> str:
    """Sample the edge with py-spy under the same wrk load, one case at a time, after the
    measured runs so the sampler's cost never shows in the table."""
    tool = py_spy()
    if tool is None:
        return "py-spy is not installed (pip install -r requirements.txt): no profile"
    sections = [
        "# Edge profile under wrk load",
        "",
        f"py-spy record --nonblocking --rate 250, {seconds:g} s per case, same wrk flags as the benchmark.",
        "Self: share of samples with the function on top of the stack (time spent in C called from it",
        "counts as its own). Inclusive: share of samples with the function anywhere on the stack (edgeagent only).",
        "Lines: the same self samples, per source line.",
    ]
    for case in CASES:
        folded = output.parent / f"profile-edge-{case.path.strip('/').replace('/', '-')}.folded"
        sampler = subprocess.Popen(
            [tool, "record", "--pid", str(edge.proc.pid), "--duration", f"{max(1, round(seconds))}",
             "--rate", "250", "--format", "raw", "--nonblocking", "--output", str(folded)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        time.sleep(0.3)
        wrk(edge.url + case.path, seconds)
        try:
            _, err = sampler.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            srv.stop(sampler)
            err = b"timed out"
        if not folded.exists():
            sections += ["", f"## {case.name}", "", f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}"]
            continue
        own, inclusive, hot_lines = top_functions(folded.read_text())
        sections += ["", f"## {case.name} (`{case.path}`)"]
        for title, ranking in (("self % | function", own), ("inclusive % | function", inclusive), ("self % | line", hot_lines)):
            sections += ["", f"| {title} |", "|---:|---|", *(f"| {share:.1f} | `{name}` |" for name, share in ranking)]
    output.write_text("\n".join(sections) + "\n")
    shown = output.relative_to(srv.ROOT) if output.is_relative_to(srv.ROOT) else output
    return f"edge profile (py-spy, top functions per case): {shown}"


# ---- Checks before measuring ----


def check_caching(server: srv.Server) -> list[str]:
    """Problems that would make the numbers meaningless: hits that are not hits, misses that are."""
    problems = []
    for case in CASES:
        try:
            srv.cache_status(server, case.path)
            status = srv.cache_status(server, case.path)
        except (srv.ServerFailed, httpx.HTTPError) as exc:
            problems.append(f"{server.name}: GET {case.path} failed: {exc!r}")
            continue
        if case.hit and not srv.looks_like_hit(status):
            problems.append(f"{server.name}: second GET {case.path} says {status!r}, expected a hit")
        if not case.hit and srv.looks_like_hit(status):
            problems.append(f"{server.name}: GET {case.path} says {status!r}, expected a miss")
    return problems


# ---- Report ----


@dataclass
class Summary:
    server: str
    case: str
    rps: float
    rps_min: float
    rps_max: float
    p99_ms: float
    cpu_us_per_req: float
    errors: int
    timeouts: int
    origin_requests: int
    origin_cpu_us_per_req: float
    requests: int


def summarise(measurements: list[Measurement]) -> dict[tuple[str, str], Summary]:
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.server, m.case), []).append(m)
    return {
        key: Summary(
            server=key[0],
            case=key[1],
            rps=statistics.median(m.rps for m in runs),
            rps_min=min(m.rps for m in runs),
            rps_max=max(m.rps for m in runs),
            p99_ms=statistics.median(m.p99_ms for m in runs),
            cpu_us_per_req=statistics.median(m.cpu_us_per_req for m in runs),
            errors=sum(m.errors for m in runs),
            timeouts=sum(m.timeouts for m in runs),
            origin_requests=sum(m.origin_requests for m in runs),
            origin_cpu_us_per_req=statistics.median(m.origin_cpu_us_per_req for m in runs),
            requests=sum(m.requests for m in runs),
        )
        for key, runs in groups.items()
    }


@dataclass(frozen=True)
class Target:
    label: str
    case: str
    versus: str
    metric: str
    minimum: float


TARGETS = (
    Target("1 KiB hit: edge ≥ 1.2x nginx req/s", "1 KiB hit", "nginx", "rps", 1.2),
    Target("1 KiB hit: edge ≥ 1.3x Varnish req/s", "1 KiB hit", "varnish", "rps", 1.3),
    Target("1 KiB hit: edge p99 ≤ nginx p99", "1 KiB hit", "nginx", "p99", 1.0),
    Target("100 KiB hit: edge ≥ 1.0x nginx req/s", "100 KiB hit", "nginx", "rps", 1.0),
    Target("1 KiB miss: edge ≥ 0.5x nginx req/s (within 2x)", "1 KiB miss", "nginx", "rps", 0.5),
)


def target_rows(summary: dict[tuple[str, str], Summary]) -> list[str]:
    rows = []
    for target in TARGETS:
        edge = summary.get(("edge", target.case))
        other = summary.get((target.versus, target.case))
        if edge is None or other is None:
            rows.append(f"| {target.label} | not measured | - |")
            continue
        if target.metric == "rps":
            ratio = edge.rps / other.rps if other.rps else 0.0
            measured = f"{ratio:.2f}x ({edge.rps:,.0f} vs {other.rps:,.0f})"
            met = ratio >= target.minimum
        else:
            measured = f"{edge.p99_ms:.2f} ms vs {other.p99_ms:.2f} ms"
            met = edge.p99_ms <= other.p99_ms * target.minimum
        rows.append(f"| {target.label} | {measured} | {'yes' if met else '**no**'} |")
    return rows


ACCESS_LOG_TARGET = 1.10  # the access log may cost at most 10 % more CPU per 1 KiB hit


def access_log_rows(summary: dict[tuple[str, str], Summary]) -> list[str]:
    """CPU per request with the edge's access log on against `--access-log off`, per case."""
    rows = []
    for case in CASES:
        on, off = summary.get(("edge", case.name)), summary.get(("edge-log-off", case.name))
        if on is None or off is None or not off.cpu_us_per_req:
            continue
        ratio = on.cpu_us_per_req / off.cpu_us_per_req
        met = "" if case.name != "1 KiB hit" else (" (target ≤ +10 %: " + ("met)" if ratio <= ACCESS_LOG_TARGET else "**missed**)"))
        rows.append(f"| {case.name} | {on.cpu_us_per_req:.1f} | {off.cpu_us_per_req:.1f} | {100 * (ratio - 1):+.1f} %{met} |")
    if not rows:
        return []
    return ["", "## Access log cost (edge)", "", "| case | CPU µs/req, log on | CPU µs/req, log off | difference |",
            "|---|---:|---:|---:|", *rows]


def baseline_rows(summary: dict[tuple[str, str], Summary]) -> list[str]:
    """The edge against the baseline checkout's edge, log on and off, per case (--baseline)."""
    rows = []
    for case in CASES:
        for edge, base in (("edge", "baseline"), ("edge-log-off", "baseline-log-off")):
            now, before = summary.get((edge, case.name)), summary.get((base, case.name))
            if now is None or before is None or not before.cpu_us_per_req or not before.rps:
                continue
            rows.append(
                f"| {case.name} | {edge} | {before.cpu_us_per_req:.1f} | {now.cpu_us_per_req:.1f} | "
                f"{100 * (now.cpu_us_per_req / before.cpu_us_per_req - 1):+.1f} % | {before.rps:,.0f} | {now.rps:,.0f} | "
                f"{100 * (now.rps / before.rps - 1):+.1f} % |"
            )
    if not rows:
        return []
    return ["", "## Change against the baseline (--baseline)", "",
            "| case | server | CPU µs/req, baseline | CPU µs/req, now | CPU | req/s, baseline | req/s, now | req/s |",
            "|---|---|---:|---:|---:|---:|---:|---:|", *rows]


def render(
    summary: dict[tuple[str, str], Summary],
    servers: dict[str, srv.Server],
    notes: list[str],
    runs: int,
    duration: float,
    started: str,
) -> str:
    versions = tool_versions()
    lines = [
        "# Benchmark results",
        "",
        f"- When: {started} ({'quick smoke run' if runs == 1 and duration < 10 else 'full run'})",
        f"- Machine: {machine()}",
        f"- Tools: {versions['nginx']}; {versions['varnish']}; {versions['wrk']}; Python {versions['python']}",
        f"- Load: `wrk -t1 -c{CONNECTIONS} -d{duration:g}s --latency -H 'Host: {srv.BENCH_HOST}'`, "
        f"{runs} run(s) per server per case, interleaved, median shown (req/s spread: min-max)",
        "- CPU µs/req: user+system CPU of the server's whole process tree (/proc/<pid>/stat) during the run, divided by requests",
        "- Origin fetches: requests the demo origin received for that path during the measured runs (0 expected for hits);"
        " origin µs/req: the demo origin's CPU over the same runs, per viewer request",
        "",
    ]
    for name in SERVER_ORDER:
        if name in servers:
            lines.append(f"- **{name}**: {servers[name].describe}")
    lines += ["", "| case | server | req/s | spread | p99 ms | CPU µs/req | vs nginx | errors / timeouts | origin fetches | origin µs/req |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case in CASES:
        nginx = summary.get(("nginx", case.name))
        for name in SERVER_ORDER:
            s = summary.get((name, case.name))
            if s is None:
                lines.append(f"| {case.name} | {name} | not run | | | | | | | |")
                continue
            ratio = f"{s.rps / nginx.rps:.2f}x" if nginx and nginx.rps else "-"
            lines.append(
                f"| {case.name} | {name} | {s.rps:,.0f} | {s.rps_min:,.0f}-{s.rps_max:,.0f} | {s.p99_ms:.2f} | "
                f"{s.cpu_us_per_req:.1f} | {ratio} | {s.errors} / {s.timeouts} | {s.origin_requests:,} | {s.origin_cpu_us_per_req:.1f} |"
            )
    lines += ["", "## Targets (edge)", "", "| target | measured | met |", "|---|---|---|", *target_rows(summary)]
    lines += access_log_rows(summary)
    lines += baseline_rows(summary)
    if notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def write_report(output: Path, report: str, started: str, runs: int, duration: float,
                 measurements: list[Measurement]) -> None:
    """The table to `output`, every raw run beside it as JSON, and the table on stdout."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    output.with_suffix(".json").write_text(json.dumps(
        {"started": started, "runs": runs, "duration": duration, "measurements": [asdict(m) for m in measurements]},
        indent=1))
    print()
    print(report)


# ---- Main ----


def start_servers(
    names: list[str], workdir: Path, origin_port: int, notes: list[str], baseline: Path | None = None
) -> dict[str, srv.Server]:
    starters: dict[str, Callable[[Path, int], srv.Server]] = {
        "edge": srv.start_edge,
        "edge-log-off": functools.partial(srv.start_edge, access_log=False),
        "baseline": functools.partial(srv.start_edge, root=baseline),
        "baseline-log-off": functools.partial(srv.start_edge, access_log=False, root=baseline),
        "nginx": srv.start_nginx,
        "varnish": srv.start_varnish,
    }
    started: dict[str, srv.Server] = {}
    for name in names:
        try:
            started[name] = starters[name](workdir, origin_port)
        except srv.ServerFailed as exc:
            lines = str(exc).strip().splitlines()
            notes.append(f"{name} did not start, not measured: {lines[0]} {lines[-1] if len(lines) > 1 else ''}".strip())
            print(f"!! {exc}", file=sys.stderr, flush=True)
    return started


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into an exception so the `finally` that stops every server still runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: 1 run of 2 s per server per case")
    parser.add_argument("--runs", type=int, help="runs per server per case (default 3, quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 10, quick 2)")
    parser.add_argument("--servers", help="comma-separated subset of " + ",".join(SERVER_ORDER)
                        + " (default: " + ",".join(DEFAULT_SERVERS) + ", plus the baseline's two with --baseline)")
    parser.add_argument("--baseline", type=Path, help="also run the edge of this checkout (e.g. a git worktree of the "
                        "commit before a change), interleaved with the others: 'Change against the baseline' compares them")
    parser.add_argument("--cases", help="comma-separated subset of the cases' paths (default: all of "
                        + ",".join(c.path for c in CASES) + ")")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.md")
    parser.add_argument("--profile", action="store_true", help="afterwards, sample the edge with py-spy under load (results/profile-edge.md)")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    duration = args.duration or (2.0 if args.quick else 10.0)
    warmup = 1.0
    default = DEFAULT_SERVERS + (BASELINE if args.baseline else ())
    names = [n for n in (args.servers or ",".join(default)).split(",") if n]
    unknown = set(names) - set(SERVER_ORDER)
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    if set(names) & set(BASELINE) and args.baseline is None:
        parser.error("the baseline servers need --baseline DIR")
    wanted = set(args.cases.split(",")) if args.cases else {c.path for c in CASES}
    if wanted - {c.path for c in CASES}:
        parser.error(f"unknown case(s): {', '.join(sorted(wanted - {c.path for c in CASES}))}")
    cases = tuple(c for c in CASES if c.path in wanted)
    if args.baseline is not None and not (args.baseline / "edgeagent" / "__main__.py").exists():
        parser.error(f"--baseline {args.baseline}: no edgeagent/ there")

    terminate_on_sigterm()
    ensure_tools()
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    workdir = Path(tempfile.mkdtemp(prefix="cdn-bench-"))
    notes: list[str] = []
    measurements: list[Measurement] = []
    origin: srv.Server | None = None
    servers: dict[str, srv.Server] = {}
    dead: set[str] = set()
    try:
        origin = srv.start_origin(workdir)
        servers = start_servers(names, workdir, origin.port, notes, args.baseline)
        for server in servers.values():
            notes += check_caching(server)
        for run in range(1, runs + 1):
            for case in cases:
                for name in SERVER_ORDER:
                    target = servers.get(name)
                    if target is None or name in dead:
                        continue
                    if target.proc.poll() is not None:
                        notes.append(f"{name} exited during the run (code {target.proc.returncode}); later runs skipped")
                        dead.add(name)
                        continue
                    if run == 1:
                        wrk(target.url + case.path, warmup)
                    m = measure(target, origin, case, run, duration)
                    measurements.append(m)
                    print(
                        f"run {run}/{runs} {case.name:<11} {name:<7} {m.rps:>9,.0f} req/s  p99 {m.p99_ms:6.2f} ms  "
                        f"{m.cpu_us_per_req:6.1f} µs/req  errors {m.errors}/{m.timeouts}  origin {m.origin_requests}",
                        flush=True,
                    )
        edge = servers.get("edge")
        if args.profile and edge is not None and "edge" not in dead:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            notes.append(profile_edge(edge, min(duration, 5.0), args.output.with_name("profile-edge.md")))
    finally:
        srv.stop_all([*servers.values(), origin], workdir)

    summary = summarise(measurements)
    for s in summary.values():
        case = next(c for c in CASES if c.name == s.case)
        if case.hit and s.origin_requests:
            notes.append(f"{s.server} sent {s.origin_requests} {case.path} requests to the origin during '{s.case}' runs")
        if not case.hit and s.origin_requests < 0.95 * s.requests:
            notes.append(
                f"{s.server} answered {s.requests:,} '{s.case}' requests with only {s.origin_requests:,} origin fetches: "
                "responses the origin marked no-store were shared between viewers, so this row is not a per-request miss"
            )
        if s.errors:
            notes.append(f"{s.server} had {s.errors} errors (connection errors or non-2xx) in '{s.case}' runs")
        if s.timeouts:
            notes.append(f"{s.server} left {s.timeouts} requests unanswered within wrk's 2 s timeout in '{s.case}' runs")
    write_report(args.output, render(summary, servers, notes, runs, duration, started_at), started_at, runs,
                 duration, measurements)
    healthy = set(servers) == set(names) and not dead and not any(s.errors for s in summary.values())
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
