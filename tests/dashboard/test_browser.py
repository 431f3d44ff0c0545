"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against a
real cluster (control plane, worker, beat, the demo origin and an edge, as processes).

Chromium comes from the `chromium` package (`make browser`, which `make test` runs), launched
by its path: no browser download. Missing, the tests skip on a developer's machine and fail
with CI=true. `UPDATE_SCREENSHOTS=1` writes the pages' screenshots into docs/screenshots/
(the README's); otherwise they go to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cluster import Cluster, running_cluster, wait_for

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The README's screenshots are rewritten only when asked (UPDATE_SCREENSHOTS=1): a plain test
# run takes them too, into a temporary folder, so that it leaves the work tree as it was.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCREENSHOTS = DOCS_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else \
    Path(tempfile.gettempdir()) / "cdn-dashboard-screenshots"
EDGE = "edge-fra"
PASSWORDS = {"alice": "alice-browser-pass-1", "bob": "bob-browser-pass-1"}


def _sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - requirements.txt pins it
        _missing(f"playwright is not installed ({exc}): pip install -r requirements.txt")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium package")
    return sync_playwright


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = _sync_playwright()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("dashboard"), (EDGE,)) as made:
        for name, password in PASSWORDS.items():
            made.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                       f"User.objects.create_user({name!r}, password={password!r})")
        yield made


def base(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.web_port}"


def log_in(browser: Any, cluster: Cluster, user: str, width: int = 1280) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base(cluster)}/dashboard/")
    assert "/dashboard/login/" in page.url  # login required
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base(cluster)}/dashboard/")
    return page


@pytest.fixture(scope="module")
def alice(browser: Any, cluster: Cluster) -> Iterator[Any]:
    page = log_in(browser, cluster, "alice")
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def alice_api(cluster: Cluster) -> httpx.Client:
    token = httpx.post(f"{cluster.api_url}/auth/token/", data={"username": "alice", "password": PASSWORDS["alice"]},
                       timeout=10).json()["token"]
    return httpx.Client(base_url=cluster.api_url, headers={"Authorization": f"Token {token}"}, timeout=30)


def distribution_body(origin_port: int, alias: str) -> dict[str, Any]:
    return {
        "comment": "browser", "enabled": True, "aliases": [alias], "default_root_object": "index.html",
        "origins": [{"origin_id": "demo", "domain_name": "127.0.0.1", "http_port": origin_port,
                     "protocol_policy": "http-only"}],
        "cache_behaviors": [{"path_pattern": "*", "target_origin_id": "demo", "cache_policy": "CachingOptimized"}],
    }


@pytest.fixture(scope="module")
def distribution(cluster: Cluster, alice_api: httpx.Client) -> dict[str, Any]:
    wait_for("the edge healthy", lambda: all(e["healthy"] for e in cluster.api("GET", "/edges/").json()["results"]))
    made = alice_api.post("/distributions/", json=distribution_body(cluster.origin_port, "browser.example.test"))
    assert made.status_code == 201, made.text
    return made.json()


def x_cache(response: httpx.Response) -> str:
    return response.headers.get("x-cache", "").split(" from ")[0]


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_the_login_page(browser: Any, cluster: Cluster) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 700})
    page.goto(f"{base(cluster)}/dashboard/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    assert "correct username and password" in page.locator("[role=alert]").inner_text()
    assert page.get_by_label("Username").input_value() == "alice"
    shoot(page, "login")
    page.close()


def test_a_distribution_created_through_the_form_turns_deployed_without_a_reload(alice: Any, cluster: Cluster) -> None:
    wait_for("the edge healthy", lambda: all(e["healthy"] for e in cluster.api("GET", "/edges/").json()["results"]))
    alice.goto(f"{base(cluster)}/dashboard/distributions/")
    alice.get_by_role("link", name="Create distribution").first.click()
    alice.get_by_label("Comment").fill("made in the browser")
    alice.get_by_label("Aliases (host names), one a line").fill("form.example.test")
    alice.locator("#o-0-origin_id").fill("demo")
    alice.locator("#o-0-domain_name").fill("127.0.0.1")
    alice.locator("#o-0-http_port").fill("99999")  # refused first: every input must survive
    alice.locator("#b-0-target_origin_id").fill("demo")
    alice.locator("#b-0-cache_policy").select_option(label="CachingOptimized (managed)")
    alice.get_by_role("button", name="Create distribution").click()
    error = alice.locator('[data-origin-row="0"] .errors')
    assert "less than or equal to 65535" in error.inner_text()
    assert alice.get_by_label("Comment").input_value() == "made in the browser"
    assert alice.locator("#b-0-target_origin_id").input_value() == "demo"
    assert alice.locator("#o-0-http_port").input_value() == "99999"
    shoot(alice, "distribution-form-refused")
    alice.locator("#o-0-http_port").fill(str(cluster.origin_port))
    alice.get_by_role("button", name="Create distribution").click()
    alice.wait_for_selector(".messages .msg-success")
    alice.evaluate("window.stillTheSamePage = true")
    alice.wait_for_selector('#deploy-status[data-status="Deployed"]', timeout=30_000)
    assert alice.evaluate("window.stillTheSamePage") is True
    response = cluster.viewer(EDGE, "form.example.test", "/index.html")
    assert response.status_code == 200 and x_cache(response) == "Miss"


def test_a_bad_ttl_is_shown_by_its_field_with_the_other_inputs_kept(alice: Any, cluster: Cluster) -> None:
    alice.goto(f"{base(cluster)}/dashboard/policies/")
    alice.get_by_role("link", name="Create cache policy").click()
    alice.get_by_label("Name", exact=True).fill("browser-short")
    alice.get_by_label("Comment").fill("kept")
    alice.get_by_label("Minimum TTL").fill("7200")
    alice.get_by_label("Default TTL").fill("300")
    alice.get_by_label("Maximum TTL").fill("3600")
    alice.get_by_label("Query strings in the cache key").select_option("allowlist")
    alice.locator("#p-query_strings_names").fill("page")
    alice.get_by_role("button", name="Create cache policy").click()
    errors = alice.locator(".field .errors")
    assert errors.count() >= 1 and "ttl" in errors.first.inner_text().lower()
    assert alice.get_by_label("Comment").input_value() == "kept"
    assert alice.get_by_label("Minimum TTL").input_value() == "7200"
    assert alice.get_by_label("Query strings in the cache key").input_value() == "allowlist"
    shoot(alice, "cache-policy-refused")
    alice.get_by_label("Minimum TTL").fill("0")
    alice.get_by_role("button", name="Create cache policy").click()
    alice.wait_for_selector('table.cache-policies tr[data-policy="browser-short"]')


def test_a_change_shows_in_progress_then_deployed_without_a_reload(
        alice: Any, cluster: Cluster, alice_api: httpx.Client, distribution: dict[str, Any]) -> None:
    url = f"/distributions/{distribution['id']}/"
    wait_for("Deployed", lambda: alice_api.get(url).json()["status"] == "Deployed")
    cluster.stop(EDGE)  # so that the change stays InProgress while the page looks (a comment is no edge change)
    try:
        current = alice_api.get(url)
        changed = alice_api.patch(url, json={"default_root_object": "home.html"}, headers={"If-Match": current.headers["ETag"]})
        assert changed.status_code == 200, changed.text
        alice.goto(f"{base(cluster)}/dashboard/distributions/{distribution['id']}/")
        alice.evaluate("window.stillTheSamePage = true")
        status = alice.locator("#deploy-status")
        assert status.get_attribute("data-status") == "InProgress"
        assert "InProgress" in status.inner_text()
        shoot(alice, "distribution-in-progress")
    finally:
        cluster.restart(EDGE)
    alice.wait_for_selector('#deploy-status[data-status="Deployed"]', timeout=30_000)
    assert alice.evaluate("window.stillTheSamePage") is True  # turned Deployed by polling, not by a reload
    assert "Deployed in" in alice.locator("#deploy-status").inner_text()
    shoot(alice, "distribution-general")


def test_traffic_through_the_edge_draws_the_charts(alice: Any, cluster: Cluster, distribution: dict[str, Any]) -> None:
    for _ in range(30):
        assert cluster.viewer(EDGE, "browser.example.test", "/bench/1k").status_code == 200
    for _ in range(5):
        assert cluster.viewer(EDGE, "browser.example.test", "/no-such-page").status_code == 404
    alice.goto(f"{base(cluster)}/dashboard/")
    # The edge reports every 10 s and the page refreshes its charts every 10 s, by itself.
    alice.wait_for_function("Number(document.getElementById('charts').dataset.points || 0) > 0", timeout=45_000)
    assert alice.locator("#charts .chart canvas").count() == 4
    assert alice.locator(".chart-empty").is_hidden()
    assert EDGE in alice.locator("table.fleet").inner_text() and "healthy" in alice.locator("table.fleet").inner_text()
    assert no_horizontal_scroll(alice)
    shoot(alice, "overview")
    alice.goto(f"{base(cluster)}/dashboard/distributions/{distribution['id']}/stats/?range=24h")
    alice.wait_for_function("Number(document.getElementById('charts').dataset.points || 0) > 0", timeout=45_000)
    shoot(alice, "distribution-stats")


def test_an_invalidation_is_created_and_completes(alice: Any, cluster: Cluster, distribution: dict[str, Any]) -> None:
    alice.goto(f"{base(cluster)}/dashboard/distributions/{distribution['id']}/invalidations/")
    assert "No invalidation yet" in alice.content()
    alice.get_by_label("Paths, one a line").fill("/bench/*")
    alice.get_by_role("button", name="Invalidate").click()
    alice.wait_for_selector("table.invalidations")
    alice.evaluate("window.stillTheSamePage = true")
    alice.wait_for_selector("table.invalidations .badge.ok:text('Completed')", timeout=30_000)
    assert alice.evaluate("window.stillTheSamePage") is True
    assert x_cache(cluster.viewer(EDGE, "browser.example.test", "/bench/1k")) == "Miss"
    shoot(alice, "distribution-invalidations")


def test_a_rollback_from_the_history_tab_makes_the_edge_serve_the_old_setting(
        alice: Any, cluster: Cluster, alice_api: httpx.Client, distribution: dict[str, Any]) -> None:
    url = f"/distributions/{distribution['id']}/"
    wait_for("Deployed", lambda: alice_api.get(url).json()["status"] == "Deployed")
    before = alice_api.get(url)
    original_version = before.json()["config_version"]
    behaviors = before.json()["cache_behaviors"]
    behaviors.insert(0, {"path_pattern": "/bench/*", "target_origin_id": "demo", "cache_policy": "CachingDisabled"})
    changed = alice_api.patch(url, json={"cache_behaviors": behaviors}, headers={"If-Match": before.headers["ETag"]})
    assert changed.status_code == 200, changed.text
    wait_for("the change Deployed", lambda: alice_api.get(url).json()["status"] == "Deployed")
    fresh = "/bench/100k"  # never requested before: not in the cache from earlier tests
    assert [x_cache(cluster.viewer(EDGE, "browser.example.test", fresh)) for _ in range(2)] == ["Miss", "Miss"]

    alice.goto(f"{base(cluster)}/dashboard/distributions/{distribution['id']}/history/")
    assert "/bench/*" in alice.locator("table.diff").inner_text()  # the diff of the last change
    shoot(alice, "distribution-history")
    alice.get_by_role("button", name=f"Roll back to version {original_version}").click()
    alice.wait_for_selector(".messages .msg-success")
    alice.wait_for_selector('#deploy-status[data-status="Deployed"]', timeout=30_000)
    after = alice_api.get(url).json()
    assert [b["path_pattern"] for b in after["cache_behaviors"]] == ["*"]
    assert [x_cache(cluster.viewer(EDGE, "browser.example.test", fresh)) for _ in range(2)] == ["Miss", "Hit"]


def test_the_distributions_list_and_a_phone_width(browser: Any, alice: Any, cluster: Cluster,
                                                  distribution: dict[str, Any]) -> None:
    alice.goto(f"{base(cluster)}/dashboard/distributions/")
    listed = alice.locator("table.distributions").inner_text()
    assert distribution["id"] in listed and "form.example.test" in listed
    alice.get_by_label("Search").fill("no-such-distribution")
    alice.get_by_role("button", name="Filter").click()
    assert "No distribution matches these filters" in alice.content()
    alice.goto(f"{base(cluster)}/dashboard/distributions/")
    shoot(alice, "distributions")
    alice.goto(f"{base(cluster)}/dashboard/policies/")
    assert distribution["id"] in alice.locator('table.cache-policies tr[data-policy="CachingOptimized"]').inner_text()
    shoot(alice, "policies")
    alice.goto(f"{base(cluster)}/dashboard/edges/")
    alice.get_by_role("link", name=EDGE).click()
    assert "healthy" in alice.locator("dl.fields").inner_text()
    alice.wait_for_function("Number(document.getElementById('charts').dataset.points || 0) > 0", timeout=20_000)
    shoot(alice, "edge")
    phone = log_in(browser, cluster, "alice", width=390)
    for path in ("/dashboard/", "/dashboard/distributions/", f"/dashboard/distributions/{distribution['id']}/",
                 f"/dashboard/distributions/{distribution['id']}/history/", "/dashboard/distributions/new/",
                 "/dashboard/edges/", f"/dashboard/edges/{EDGE}/", "/dashboard/policies/"):
        phone.goto(f"{base(cluster)}{path}")
        assert no_horizontal_scroll(phone), path
    phone.goto(f"{base(cluster)}/dashboard/")
    shoot(phone, "overview-phone")
    phone.context.close()


def test_a_second_user_gets_404_for_the_first_users_distribution(browser: Any, cluster: Cluster,
                                                                 distribution: dict[str, Any]) -> None:
    bob = log_in(browser, cluster, "bob")
    for tab in ("", "history/", "invalidations/", "stats/"):
        response = bob.goto(f"{base(cluster)}/dashboard/distributions/{distribution['id']}/{tab}")
        assert response is not None and response.status == 404, tab
    bob.goto(f"{base(cluster)}/dashboard/distributions/")
    assert "You have no distribution yet" in bob.content()
    bob.context.close()
