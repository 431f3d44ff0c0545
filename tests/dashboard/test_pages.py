"""The dashboard with Django's test client: login, who sees what, empty states, no secrets,
and the history tab's rollback through the API's own code."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from distributions.models import Distribution, EdgeNode, Invalidation, TrafficStat

from .conftest import logged_in

pytestmark = pytest.mark.django_db

TABS = ("", "origins/", "behaviors/", "invalidations/", "stats/", "history/", "status/")


def urls_of(distribution_id: str) -> list[str]:
    return [f"/dashboard/distributions/{distribution_id}/{tab}" for tab in TABS] + [
        f"/dashboard/stats.json?distribution={distribution_id}"]


def test_every_page_sends_an_anonymous_visitor_to_the_login_page(created: dict[str, Any]) -> None:
    for url in ["/dashboard/", "/dashboard/distributions/", "/dashboard/stats.json", *urls_of(created["id"])]:
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/dashboard/login/?next="), url


def test_the_root_url_leads_to_the_dashboard() -> None:
    assert Client().get("/")["Location"] == "/dashboard/"


def test_logging_in_through_the_form_leads_back_to_the_page_asked_for(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get("/dashboard/login/?next=/dashboard/distributions/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="csrfmiddlewaretoken"' in body and '<label for="id_username">' in body
    token = page.context["csrf_token"]
    wrong = client.post("/dashboard/login/", {"username": "alice", "password": "nope", "next": "/dashboard/distributions/",
                                              "csrfmiddlewaretoken": token})
    assert wrong.status_code == 200 and "enter a correct username and password" in wrong.content.decode().lower()
    right = client.post("/dashboard/login/", {"username": "alice", "password": "alice-password-1",
                                              "next": "/dashboard/distributions/", "csrfmiddlewaretoken": token})
    assert right.status_code == 302 and right["Location"] == "/dashboard/distributions/"
    assert client.get("/dashboard/distributions/").status_code == 200


def test_a_post_without_the_csrf_token_is_refused(alice: User, created: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"/dashboard/distributions/{created['id']}/invalidations/create/", {"paths": "/*"})
    assert response.status_code == 403
    assert not Invalidation.objects.exists()


def test_logout_is_a_post_and_ends_the_session(alice: User) -> None:
    client = logged_in(alice)
    assert client.post("/dashboard/logout/").status_code == 302
    assert client.get("/dashboard/").status_code == 302


def test_another_users_distribution_is_a_404_on_every_dashboard_url(bob: User, created: dict[str, Any]) -> None:
    client = logged_in(bob)
    for url in urls_of(created["id"]):
        assert client.get(url).status_code == 404, url
    for url in (f"/dashboard/distributions/{created['id']}/invalidations/create/",
                f"/dashboard/distributions/{created['id']}/rollback/"):
        assert client.post(url, {"paths": "/*", "version": "1", "etag": "x"}).status_code == 404, url
    assert not Invalidation.objects.exists()
    listing = client.get("/dashboard/distributions/").content.decode()
    assert created["id"] not in listing and "You have no distribution yet" in listing


def test_staff_see_every_distribution(staff: User, created: dict[str, Any]) -> None:
    client = logged_in(staff)
    assert created["id"] in client.get("/dashboard/distributions/").content.decode()
    for url in urls_of(created["id"]):
        assert client.get(url).status_code == 200, url


def test_the_owner_sees_every_tab(alice: User, created: dict[str, Any]) -> None:
    client = logged_in(alice)
    for url in urls_of(created["id"]):
        assert client.get(url).status_code == 200, url
    assert client.get(f"/dashboard/distributions/{created['id']}/nonsense/").status_code == 404


def test_no_secret_is_ever_rendered(alice: User, created: dict[str, Any]) -> None:
    client = logged_in(alice)
    pages = [client.get(url).content.decode() for url in urls_of(created["id"])]
    pages.append(client.get(f"/dashboard/distributions/{created['id']}/history/?from=1").content.decode())
    assert all("s3cr3t-never-shown" not in page for page in pages)
    origins = client.get(f"/dashboard/distributions/{created['id']}/origins/").content.decode()
    assert "<td>set</td>" in origins


def test_empty_states(alice: User) -> None:
    client = logged_in(alice)
    overview = client.get("/dashboard/").content.decode()
    assert "No edge is registered yet" in overview and "No traffic in this range yet" in overview
    assert "You have no distribution yet" in client.get("/dashboard/distributions/").content.decode()
    distribution = Distribution.objects.create(owner=alice)
    assert "No distribution matches these filters" in client.get("/dashboard/distributions/?q=zzz").content.decode()
    tabs = {tab: client.get(f"/dashboard/distributions/{distribution.pk}/{tab}").content.decode()
            for tab in ("origins/", "behaviors/", "invalidations/", "history/")}
    assert "This distribution has no origin" in tabs["origins/"] and "No origin group" in tabs["origins/"]
    assert "No cache behavior" in tabs["behaviors/"]
    assert "No invalidation yet" in tabs["invalidations/"]
    assert "No config version has this distribution yet" in tabs["history/"]


def test_the_list_filters_by_search_status_and_enabled(alice: User, created: dict[str, Any]) -> None:
    client = logged_in(alice)
    assert created["id"] in client.get("/dashboard/distributions/?q=www.example").content.decode()
    assert created["id"] not in client.get("/dashboard/distributions/?q=nothing-like-it").content.decode()
    assert created["id"] in client.get("/dashboard/distributions/?status=InProgress").content.decode()  # no edge yet
    assert created["id"] not in client.get("/dashboard/distributions/?status=Deployed").content.decode()
    assert created["id"] not in client.get("/dashboard/distributions/?enabled=no").content.decode()


def test_every_control_has_a_label(alice: User, created: dict[str, Any]) -> None:
    import re

    client = logged_in(alice)
    for url in ["/dashboard/distributions/", *urls_of(created["id"])[:-2]]:
        body = client.get(url).content.decode()
        for control in re.findall(r"<(?:input|select|textarea)\b[^>]*>", body):
            if 'type="hidden"' in control:
                continue
            ident = re.search(r'id="([^"]+)"', control)
            assert ident and f'for="{ident.group(1)}"' in body, (url, control)


def test_the_fleet_shows_each_edge_and_its_refused_config_to_staff_only(alice: User, staff: User) -> None:
    EdgeNode.objects.create(name="edge-fra", pop="fra", url="http://127.0.0.1:9081", token_hash="a" * 64,
                            applied_version=7, healthy=True, last_seen=timezone.now(),
                            last_error="config 8 refused: bad header")
    for_staff = logged_in(staff).get("/dashboard/").content.decode()
    assert "edge-fra" in for_staff and "healthy" in for_staff and "config 8 refused: bad header" in for_staff
    for_alice = logged_in(alice).get("/dashboard/").content.decode()
    assert "edge-fra" in for_alice and "config 8 refused" not in for_alice  # as the API: staff only


def test_stats_json_counts_only_what_the_user_owns(alice: User, bob: User, created: dict[str, Any]) -> None:
    edge = EdgeNode.objects.create(name="edge-fra", pop="fra", url="http://127.0.0.1:9081", token_hash="b" * 64)
    minute = timezone.now().replace(second=0, microsecond=0) - timezone.timedelta(minutes=2)
    TrafficStat.objects.create(distribution_id=created["id"], edge=edge, resolution="minute", period_start=minute,
                               requests=120, hits=90, misses=30, bytes_out=6_000_000, status_2xx=114, status_4xx=6,
                               latency_ms_buckets=[120])
    data = logged_in(alice).get("/dashboard/stats.json").json()
    assert data["rps"] == [2.0] and data["hit_ratio"] == [75.0] and data["rate_4xx"] == [5.0]
    assert data["mbps"] == [0.8] and data["totals"]["requests"] == 120
    assert logged_in(bob).get("/dashboard/stats.json").json()["t"] == []
    assert logged_in(alice).get(f"/dashboard/stats.json?distribution={created['id']}&range=24h").json()["interval"] == "hour"


def test_an_invalidation_is_made_through_the_api_rules(alice: User, created: dict[str, Any]) -> None:
    client = logged_in(alice)
    url = f"/dashboard/distributions/{created['id']}/invalidations/create/"
    refused = client.post(url, {"paths": "no-leading-slash", "tags": ""})
    assert refused.status_code == 400
    body = refused.content.decode()
    assert 'id="inv-paths-errors"' in body and "no-leading-slash</textarea>" in body  # the input is kept
    assert not Invalidation.objects.exists()
    made = client.post(url, {"paths": "/index.html\n/img/*", "tags": ""})
    assert made.status_code == 302
    assert Invalidation.objects.get().paths == ["/index.html", "/img/*"]
    assert "/index.html, /img/*" in client.get(f"/dashboard/distributions/{created['id']}/invalidations/").content.decode()


def test_rollback_from_the_history_tab_goes_through_the_api_rollback(
        alice: User, created: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(alice)
    url = f"/api/v1/distributions/{created['id']}/"
    current = api.get(url)
    original_version = current.json()["config_version"]
    with django_capture_on_commit_callbacks(execute=True):
        changed = api.patch(url, {"default_root_object": "other.html"}, format="json",
                            headers={"If-Match": current["ETag"]})
    assert changed.status_code == 200
    client = logged_in(alice)
    history = client.get(f"/dashboard/distributions/{created['id']}/history/").content.decode()
    assert "default_root_object" in history and "other.html" in history  # the diff of the last change
    stale = client.post(f"/dashboard/distributions/{created['id']}/rollback/",
                        {"version": original_version, "etag": current["ETag"].strip('"')}, follow=True)
    assert "changed since this page was shown" in stale.content.decode()
    etag = Distribution.objects.get(pk=created["id"]).etag
    with django_capture_on_commit_callbacks(execute=True):
        rolled = client.post(f"/dashboard/distributions/{created['id']}/rollback/",
                             {"version": original_version, "etag": etag}, follow=True)
    assert "Rolled back to the settings of version" in rolled.content.decode()
    after = api.get(url).json()
    assert after["default_root_object"] == "index.html" and after["config_version"] > changed.json()["config_version"]
    versions = api.get(f"{url}versions/").json()["results"]
    assert versions[0]["reason"].endswith(f"rolled back to version {original_version}")


def test_the_dashboard_login_is_throttled_like_every_login(alice: User, settings: Any) -> None:
    """Django's LoginView passes the request to authenticate(): django-axes counts it (controlplane/login.py)."""
    browser = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        browser.post("/dashboard/login/", {"username": "alice", "password": "wrong"})
    page = browser.post("/dashboard/login/", {"username": "alice", "password": "alice-password-1",
                                              "next": "/dashboard/"})
    assert page.status_code == 429 and "Too many failed login attempts" in page.content.decode()
    assert browser.get("/dashboard/").status_code == 302  # still not logged in


def test_the_edges_page_and_an_edges_detail(alice: User, staff: User, created: dict[str, Any]) -> None:
    assert "No edge is registered yet" in logged_in(alice).get("/dashboard/edges/").content.decode()
    edge = EdgeNode.objects.create(name="edge-iad", pop="iad", url="http://127.0.0.1:9082", token_hash="c" * 64,
                                   applied_version=1, healthy=True, last_seen=timezone.now(),
                                   last_error="config 2 refused: no")
    minute = timezone.now().replace(second=0, microsecond=0) - timezone.timedelta(minutes=1)
    TrafficStat.objects.create(distribution_id=created["id"], edge=edge, resolution="minute", period_start=minute,
                               requests=42, hits=40, status_2xx=42, latency_ms_buckets=[42])
    listing = logged_in(alice).get("/dashboard/edges/").content.decode()
    assert 'href="/dashboard/edges/edge-iad/"' in listing
    page = logged_in(alice).get("/dashboard/edges/edge-iad/").content.decode()
    assert "<dd>42</dd>" in page and "config 2 refused" not in page and "127.0.0.1:9082" not in page
    staff_page = logged_in(staff).get("/dashboard/edges/edge-iad/").content.decode()
    assert "config 2 refused: no" in staff_page and "127.0.0.1:9082" in staff_page
    assert logged_in(alice).get("/dashboard/edges/edge-nowhere/").status_code == 404
    per_edge = logged_in(alice).get("/dashboard/stats.json?edge=edge-iad").json()
    assert per_edge["totals"]["requests"] == 42
    assert logged_in(alice).get("/dashboard/stats.json?edge=edge-nowhere").status_code == 404


def test_the_policies_page_lists_managed_and_custom_policies_and_the_behaviors_using_them(
        alice: User, bob: User, created: dict[str, Any]) -> None:
    from distributions.models import CachePolicy

    CachePolicy.objects.create(id=__import__("uuid").uuid4(), owner=alice, name="alice-short", min_ttl=0, default_ttl=60,
                               max_ttl=600)
    CachePolicy.objects.create(id=__import__("uuid").uuid4(), owner=bob, name="bob-secret-policy")
    page = logged_in(alice).get("/dashboard/policies/").content.decode()
    assert "CachingOptimized" in page and "AllViewer" in page and "managed" in page
    assert "alice-short" in page and "0 / 60 / 600" in page and "bob-secret-policy" not in page
    row = page[page.index('data-policy="CachingOptimized"'):]
    row = row[:row.index("</tr>")]
    assert created["id"] in row and "<code>*</code>" in row
    bobs = logged_in(bob).get("/dashboard/policies/").content.decode()
    assert created["id"] not in bobs and "no behavior of yours" in bobs


def test_the_stats_tab_breaks_the_traffic_down_by_edge_with_latency(alice: User, created: dict[str, Any]) -> None:
    client = logged_in(alice)
    assert "No edge is registered yet" in client.get(f"/dashboard/distributions/{created['id']}/stats/").content.decode()
    fra = EdgeNode.objects.create(name="edge-fra", pop="fra", url="http://127.0.0.1:9081", token_hash="d" * 64)
    EdgeNode.objects.create(name="edge-sin", pop="sin", url="http://127.0.0.1:9083", token_hash="e" * 64)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timezone.timedelta(hours=2)
    TrafficStat.objects.create(distribution_id=created["id"], edge=fra, resolution="hour", period_start=hour,
                               requests=10, hits=5, status_2xx=10, latency_ms_buckets=[10])
    page = client.get(f"/dashboard/distributions/{created['id']}/stats/?range=24h").content.decode()
    fra_row = page[page.index('data-edge="edge-fra"'):]
    assert "<td>10</td>" in fra_row[:fra_row.index("</tr>")]
    sin_row = page[page.index('data-edge="edge-sin"'):]
    assert "<td>0</td>" in sin_row[:sin_row.index("</tr>")]
    assert 'data-latency="p50"' in page and "— ms" not in page.split('data-latency="p50"')[1][:20]


def test_the_list_is_paged_and_the_status_filter_follows_the_status_rule(alice: User) -> None:
    from distributions.dashboard.views import LIST_PAGE_SIZE

    Distribution.objects.bulk_create(Distribution(owner=alice, comment=f"d{i}", config_version=1 + i % 2)
                                     for i in range(LIST_PAGE_SIZE + 5))
    EdgeNode.objects.create(name="edge-fra", pop="fra", url="http://127.0.0.1:9081", token_hash="f" * 64,
                            applied_version=1, healthy=True, last_seen=timezone.now())
    client = logged_in(alice)
    first = client.get("/dashboard/distributions/")
    assert len(first.context["rows"]) == LIST_PAGE_SIZE and "Page 1 of 2" in first.content.decode()
    assert len(client.get("/dashboard/distributions/?page=2").context["rows"]) == 5
    deployed = client.get("/dashboard/distributions/?status=Deployed").context["page"].paginator.count
    in_progress = client.get("/dashboard/distributions/?status=InProgress").context["page"].paginator.count
    assert (deployed, in_progress) == (28, 27)  # version 1 runs on the edge: Deployed; version 2: not yet
    rows = client.get("/dashboard/distributions/?status=Deployed").context["rows"]
    assert {row["status"] for row in rows} == {"Deployed"}


def test_the_charts_counters_summed_by_the_database_equal_the_apis_stats(alice: User, created: dict[str, Any]) -> None:
    from distributions import selectors

    edges = [EdgeNode.objects.create(name=f"edge-{i}", pop="fra", url=f"http://127.0.0.1:{9090 + i}",
                                     token_hash=f"{i:064x}") for i in range(2)]
    other = Distribution.objects.create(owner=alice)
    minute = timezone.now().replace(second=0, microsecond=0)
    for n, (distribution_id, edge) in enumerate([(created["id"], edges[0]), (created["id"], edges[1]), (other.pk, edges[0])]):
        for back in (1, 2):
            TrafficStat.objects.create(distribution_id=distribution_id, edge=edge, resolution="minute",
                                       period_start=minute - timezone.timedelta(minutes=back), requests=10 * (n + back),
                                       hits=n + back, bytes_out=1000 * n, status_4xx=n, status_5xx=back,
                                       latency_ms_buckets=[1])
    span = {"start": minute - timezone.timedelta(hours=1), "end": minute + timezone.timedelta(minutes=1),
            "interval": "minute"}
    ids = [created["id"], other.pk]
    full = selectors.traffic_stats(ids, **span)
    summed = selectors.traffic_counters(Distribution.objects.filter(owner=alice), **span)
    keys = ("requests", "hits", "bytes_out", "status_4xx", "status_5xx", "hit_ratio", "error_rate_4xx", "error_rate_5xx")
    assert [{k: row[k] for k in ("start", *keys)} for row in full["series"]] == \
        [{k: row[k] for k in ("start", *keys)} for row in summed["series"]]
    assert {k: full["totals"][k] for k in keys} == {k: summed["totals"][k] for k in keys}
    one_edge = selectors.traffic_counters(ids, edge_id=edges[1].pk, **span)
    assert one_edge["totals"]["requests"] == sum(r["requests"] for r in TrafficStat.objects.filter(edge=edges[1]).values("requests"))


def test_an_htmx_poll_of_the_invalidations_gets_the_history_fragment_alone(alice: User, created: dict[str, Any]) -> None:
    client = logged_in(alice)
    client.post(f"/dashboard/distributions/{created['id']}/invalidations/create/", {"paths": "/x"})
    url = f"/dashboard/distributions/{created['id']}/invalidations/"
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert fragment.startswith('<div id="invalidation-history"') and "<html" not in fragment
    assert 'hx-trigger="every 1s"' in fragment  # InProgress (no edge): it keeps polling
    assert "<html" in client.get(url).content.decode()
