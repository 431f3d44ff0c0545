"""`make run` on a temporary state directory and free ports, used the way a newcomer would:
follow the printed curl commands, invalidate, stop with Ctrl-C; and supervised the way an
operator expects: a process that dies comes back while the others keep running and serving."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from controlplane.run import Stage, Supervisor, restart_delay

from .cluster import wait_for
from .makerun import READY, MakeRun, Viewers, alive, processes_using

PROCESSES = {"web", "worker", "beat", "origin", "s3", "edge-fra", "edge-iad", "edge-sin"}


def curl(command: str) -> str:
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, (command, result.stderr)
    return result.stdout


def demo(text: str) -> tuple[str, list[int]]:
    """The demo distribution's host name and the three viewer ports, as the banner prints them."""
    domain = re.search(r"Host: ([a-z0-9.]+)'", text).group(1)  # type: ignore[union-attr]
    ports = [int(p) for p in re.findall(r"viewers http://127\.0\.0\.1:(\d+)/", text)]
    assert len(ports) == 3
    return domain, ports


def test_make_run_serves_through_three_edges_and_stops_cleanly(tmp_path: Path, run_env: dict[str, str]) -> None:
    env = run_env
    run = MakeRun(Path(env["CDN_VAR_DIR"]), env)
    try:
        text = run.wait_ready()
        credentials = json.loads((tmp_path / "var" / "credentials.json").read_text())
        token = credentials["token"]
        assert re.search(r"Dashboard: +http://127\.0\.0\.1:\d+/dashboard/ +user: admin\n", text)
        assert re.search(r"Admin: +http://127\.0\.0\.1:\d+/admin/ ", text)
        assert token not in text and credentials["password"] not in text  # the output is a log: no secrets
        curls = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
        cache_curls = [c for c in curls if "x-cache" in c]
        assert len(cache_curls) == 2
        assert curl(cache_curls[0]).strip().lower().startswith("x-cache: miss")
        assert curl(cache_curls[1]).strip().lower().startswith("x-cache: hit")
        edges_answer = curl(next(c for c in curls if "/edges/" in c))
        assert edges_answer.count('"healthy":true') == 3
        # The private S3 demo: moto refuses the unsigned request, the edges' signed ones go through.
        unsigned, signed, odd_key, upload = [c for c in curls if "hello.txt" in c or "spaces" in c or "-X PUT" in c]
        assert curl(unsigned).split()[1] == "403"
        assert curl(signed).startswith("HTTP/1.1 200") and "the edge signed this request" in curl(signed)
        assert curl(odd_key).startswith("HTTP/1.1 200")
        assert curl(upload).startswith("HTTP/1.1 200")
        assert curl(signed.replace("/hello.txt", "/uploads/note.txt")).endswith("\n\nuploaded")
        by_alias = httpx.get(f"http://127.0.0.1:{env['CDN_EDGE_PORT']}/hello.txt",
                             headers={"Host": "private.localhost"}, timeout=10)  # as README.md prints it
        assert by_alias.status_code == 200 and b"signed this request" in by_alias.content
        domain, ports = demo(text)
        for port in ports:
            answers = [httpx.get(f"http://127.0.0.1:{port}/index.html", headers={"Host": domain}, timeout=10)
                       for _ in range(2)]
            assert [a.headers["x-cache"].split(" from ")[0] for a in answers] == ["Miss", "Hit"]

        api = f"http://127.0.0.1:{env['CDN_WEB_PORT']}/api/v1"
        headers = {"Authorization": f"Token {token}"}
        distribution_id = domain.split(".")[0].upper()
        made = httpx.post(f"{api}/distributions/{distribution_id}/invalidations/", json={"paths": ["/index.html"]},
                          headers=headers, timeout=10)
        assert made.status_code == 201, made.text
        url = f"{api}/distributions/{distribution_id}/invalidations/{made.json()['id']}/"
        wait_for("the invalidation to complete",
                 lambda: httpx.get(url, headers=headers, timeout=5).json()["status"] == "Completed", 20)
        for port in ports:
            answer = httpx.get(f"http://127.0.0.1:{port}/index.html", headers={"Host": domain}, timeout=10)
            assert answer.headers["x-cache"].startswith("Miss")

        invalidation_id = made.json()["id"]
        wait_for("the completion in the log", lambda: f"invalidation {invalidation_id} completed" in run.text(), 10)
        log = run.text()
        assert "control plane unreachable" not in log  # the edges started once it answered
        for routine in ('"GET /api/v1/', "HTTP Request:", "Task distributions.tasks", "Sending due task"):
            assert routine not in log, routine  # request lines, heartbeats, fleet ticks: DEBUG only

        started = processes_using(tmp_path / "var")
        assert len(started) >= 8  # web, worker, beat, origin, s3 and three edges (and their children)
        assert set(run.pids()) == PROCESSES
        assert not run.restarts(), run.restarts()
        run.interrupt()
        wait_for("every process to stop", lambda: not processes_using(tmp_path / "var"), 20)
        assert run.output[-1] == "make run: stopped", run.text()[-2000:]
    finally:
        run.kill()


def test_the_banner_is_also_in_ready_txt_and_the_credentials_only_in_an_owner_only_file(
        tmp_path: Path, run_env: dict[str, str]) -> None:
    run = MakeRun(Path(run_env["CDN_VAR_DIR"]), run_env)
    ready = tmp_path / "var" / "ready.txt"
    try:
        text = run.wait_ready()
        banner = ready.read_text()
        assert "The local CDN is ready." in banner
        assert banner.strip() in text
        credentials_file = tmp_path / "var" / "credentials.json"
        assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
        assert json.loads(credentials_file.read_text())["password"] not in banner
        run.interrupt()
        assert not ready.exists()  # a stopped cluster has no readiness banner
    finally:
        run.kill()


def test_a_second_make_run_reuses_the_state_and_the_edges_caches(tmp_path: Path, run_env: dict[str, str]) -> None:
    passwords: list[str] = []
    caches: list[str] = []
    for _ in range(2):
        run = MakeRun(Path(run_env["CDN_VAR_DIR"]), run_env)
        try:
            text = run.wait_ready()
            passwords.append(json.loads((tmp_path / "var" / "credentials.json").read_text())["password"])
            assert "after a fresh" in text  # the banner does not promise a Miss a warm cache would not give
            domain, ports = demo(text)
            answer = httpx.get(f"http://127.0.0.1:{ports[0]}/index.html", headers={"Host": domain}, timeout=10)
            caches.append(answer.headers["x-cache"].split(" from ")[0])
        finally:
            run.interrupt()
        wait_for("every process to stop", lambda: not processes_using(tmp_path / "var"), 20)
    assert passwords[0] == passwords[1]
    assert (tmp_path / "var" / "credentials.json").exists()
    assert caches == ["Miss", "Hit"]  # the disk cache outlived the restart (index.html: max-age=60)


def test_a_killed_worker_is_restarted_while_the_others_keep_running_and_edges_keep_serving(
        run_env: dict[str, str]) -> None:
    run = MakeRun(Path(run_env["CDN_VAR_DIR"]), run_env)
    try:
        domain, ports = demo(run.wait_ready())
        before = run.pids()
        with Viewers(ports, domain) as viewers:
            os.kill(before["worker"], signal.SIGKILL)
            wait_for("the worker to be restarted", lambda: run.pids()["worker"] != before["worker"], 30)
            wait_for("a few more viewer requests", lambda: len(viewers.results) >= 60, 30)
        after = run.pids()
        assert "make run: worker was killed by SIGKILL; restarting in 0.5s (restart 1)" in run.output
        assert alive(after["worker"])
        assert {n: p for n, p in after.items() if n != "worker"} == {n: p for n, p in before.items() if n != "worker"}
        assert all(alive(pid) for pid in after.values())
        assert len(run.restarts()) == 1, run.restarts()
        assert viewers.results and not viewers.failures(), viewers.failures()[:5]
    finally:
        run.interrupt()
        run.kill()


def test_a_killed_edge_is_restarted_while_the_other_edges_keep_serving(run_env: dict[str, str]) -> None:
    run = MakeRun(Path(run_env["CDN_VAR_DIR"]), run_env)
    try:
        domain, ports = demo(run.wait_ready())
        before = run.pids()
        with Viewers(ports[:2], domain) as viewers:
            os.kill(before["edge-sin"], signal.SIGKILL)
            wait_for("edge-sin to be restarted", lambda: run.pids()["edge-sin"] != before["edge-sin"], 30)
            wait_for("edge-sin to serve again", lambda: httpx.get(
                f"http://127.0.0.1:{ports[2]}/index.html", headers={"Host": domain}, timeout=2).status_code == 200, 30)
        after = run.pids()
        assert "make run: edge-sin was killed by SIGKILL; restarting in 0.5s (restart 1)" in run.output
        assert {n: p for n, p in after.items() if n != "edge-sin"} == {n: p for n, p in before.items() if n != "edge-sin"}
        assert all(alive(pid) for pid in after.values())
        assert viewers.results and not viewers.failures(), viewers.failures()[:5]
    finally:
        run.interrupt()
        run.kill()


def test_sigterm_to_make_run_stops_every_process_and_leaves_none_behind(tmp_path: Path,
                                                                        run_env: dict[str, str]) -> None:
    run = MakeRun(Path(run_env["CDN_VAR_DIR"]), run_env)
    try:
        run.wait_ready()
        assert len(processes_using(tmp_path / "var")) >= 7
        os.kill(run.process.pid, signal.SIGTERM)  # make itself, as a service manager would
        run.process.wait(30)
        wait_for("every process to stop", lambda: not processes_using(tmp_path / "var"), 20)
        assert "make run: SIGTERM: stopping every process" in run.output, run.text()[-2000:]
        assert run.output[-1] == "make run: stopped", run.text()[-2000:]
        assert not run.restarts(), run.restarts()
    finally:
        run.kill()


def test_the_restart_delay_doubles_from_half_a_second_up_to_thirty() -> None:
    assert [restart_delay(n) for n in range(9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_crash_looping_process_backs_off_while_the_others_keep_running() -> None:
    out = io.StringIO()
    supervisor = Supervisor(out, colour=False)
    supervisor.add("crasher", [sys.executable, "-c", "print('about to fail'); raise SystemExit(3)"], dict(os.environ))
    supervisor.add("steady", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                   dict(os.environ))
    runner = threading.Thread(target=supervisor.run, args=([Stage(["crasher", "steady"])],))
    runner.start()
    try:
        wait_for("the third restart", lambda: "(restart 3)" in out.getvalue(), 20)
    finally:
        supervisor.stopping.set()
        runner.join(30)
    lines = out.getvalue().splitlines()
    assert [line for line in lines if "restarting" in line][:3] == [
        "make run: crasher exited with code 3; restarting in 0.5s (restart 1)",
        "make run: crasher exited with code 3; restarting in 1.0s (restart 2)",
        "make run: crasher exited with code 3; restarting in 2.0s (restart 3)",
    ]
    assert "crasher | about to fail" in lines
    assert len([line for line in lines if line.startswith("make run: steady started")]) == 1
    assert "steady  | up" in lines
    assert not runner.is_alive() and lines[-1] == "make run: stopped"
    assert supervisor.children["steady"].process is not None
    assert supervisor.children["steady"].process.returncode == -signal.SIGTERM


SUPERVISE_ONE = """
import os, sys
from controlplane.run import Stage, Supervisor
supervisor = Supervisor(sys.stdout, colour=False)
supervisor.add("steady", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
               dict(os.environ))
supervisor.run([Stage(["steady"])])
"""


def test_a_supervisor_killed_by_sigkill_takes_its_processes_with_it() -> None:
    """SIGKILL (or the OOM killer) gives the supervisor no chance to stop anything itself."""
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISE_ONE], cwd=Path(__file__).parents[2],
                                  stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(line.rstrip() for line in supervisor.stdout or ()),
                     daemon=True).start()
    try:
        wait_for("the child to start", lambda: "steady | up" in lines, 20)
        child = int(re.search(r"steady started \(pid (\d+)\)", "\n".join(lines)).group(1))  # type: ignore[union-attr]
        assert alive(child)
        supervisor.kill()
        supervisor.wait(10)
        wait_for("the child to stop with its supervisor", lambda: not alive(child), 10)
    finally:
        supervisor.kill()
