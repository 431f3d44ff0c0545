"""The dashboard's pages: thin views over the selectors (reads), the services (writes) and the
API's serializers and actions (validation, diff, rollback), so nothing here has rules of its own."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework import serializers

from .. import selectors, services
from ..api import actions
from ..api.serializers import CachePolicySerializer, DistributionSerializer, InvalidationSerializer
from ..models import CREDENTIAL_FIELDS, CachePolicy, ConfigVersion, Distribution, ListBehavior, Status
from . import forms

LOGIN_URL = "dashboard:login"
dashboard_login_required = login_required(login_url=LOGIN_URL)

# The range picker: how far back, and the stats resolution that span is read at.
RANGES = {"1h": (timedelta(hours=1), "minute", 60), "24h": (timedelta(hours=24), "hour", 3600),
          "7d": (timedelta(days=7), "hour", 3600)}
LIST_PAGE_SIZE = 50
DASHBOARD_TABS = ("general", "origins", "behaviors", "invalidations", "stats", "history")


def _owned(request: HttpRequest, distribution_id: str) -> Distribution:
    """The distribution if the user may see it (owner or staff); 404 otherwise, as the API answers."""
    return get_object_or_404(selectors.distribution_list(request.user), pk=distribution_id)


def _fleet_rows(request: HttpRequest) -> list[dict[str, Any]]:
    staff = request.user.is_staff
    return [{"edge": edge, "last_error": edge.last_error if staff else None} for edge in selectors.edge_list()]


@require_GET
@dashboard_login_required
def overview(request: HttpRequest) -> HttpResponse:
    owned = selectors.distribution_list(request.user)
    end = timezone.now()
    totals = selectors.traffic_counters(owned, start=end - timedelta(hours=1), end=end, interval="minute")["totals"]
    return render(request, "dashboard/overview.html", {
        "fleet": _fleet_rows(request), "totals": totals, "distribution_count": owned.count(),
        "stats_url": reverse("dashboard:stats-json"), "nav": "overview"})


def _series(stats: dict[str, Any], seconds: int) -> dict[str, Any]:
    """The selector's series as uPlot's columns: time, requests/s, hit ratio %, Mbit/s, 4xx and 5xx %."""
    rows = stats["series"]

    def pct(value: float | None) -> float | None:
        return None if value is None else round(value * 100, 2)

    return {
        "t": [int(row["start"].timestamp()) for row in rows],
        "rps": [round(row["requests"] / seconds, 3) for row in rows],
        "hit_ratio": [pct(row["hit_ratio"]) for row in rows],
        "mbps": [round(row["bytes_out"] * 8 / seconds / 1e6, 4) for row in rows],
        "rate_4xx": [pct(row["error_rate_4xx"]) for row in rows],
        "rate_5xx": [pct(row["error_rate_5xx"]) for row in rows],
        "totals": {name: stats["totals"][name] for name in ("requests", "hits", "bytes_out", "status_4xx",
                                                             "status_5xx", "hit_ratio")},
    }


@require_GET
@dashboard_login_required
def stats_json(request: HttpRequest) -> JsonResponse:
    """The charts' data: everything the user owns, or one distribution of theirs (`?distribution=`)."""
    span, interval, seconds = RANGES.get(request.GET.get("range", "1h"), RANGES["1h"])
    if request.GET.get("distribution"):
        ids: Any = [_owned(request, request.GET["distribution"]).pk]
    else:
        ids = selectors.distribution_list(request.user)
    edge_id = None
    if request.GET.get("edge"):  # what one edge served of them
        edge_id = get_object_or_404(selectors.edge_list(), name=request.GET["edge"]).pk
    end = timezone.now()
    stats = selectors.traffic_counters(ids, start=end - span, end=end, interval=interval, edge_id=edge_id)
    return JsonResponse({"interval": interval, "start": int(stats["start"].timestamp()),
                         "end": int(stats["end"].timestamp()), **_series(stats, seconds)})


@require_GET
@dashboard_login_required
def distribution_list(request: HttpRequest) -> HttpResponse:
    everything = selectors.distribution_list(request.user)
    query = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    enabled = request.GET.get("enabled", "")
    shown = everything
    if query:
        shown = shown.filter(Q(id__icontains=query) | Q(comment__icontains=query)
                             | Q(alias_set__name__icontains=query) | Q(origins__domain_name__icontains=query)).distinct()
    if enabled in ("yes", "no"):
        shown = shown.filter(enabled=enabled == "yes")
    serving = selectors.edges_serving()
    if status in (Status.DEPLOYED, Status.IN_PROGRESS):
        # distribution_status's rule as a filter: Deployed once every serving edge runs its last change.
        oldest = min((edge.applied_version for edge in serving), default=None)
        deployed = Q(config_version__lte=oldest) if oldest is not None else Q(pk__in=[])
        shown = shown.filter(deployed) if status == Status.DEPLOYED else shown.exclude(deployed)
    page = Paginator(shown, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"distribution": d, "status": selectors.distribution_status(d, serving)} for d in page]
    return render(request, "dashboard/distribution_list.html", {
        "rows": rows, "page": page, "q": query, "status": status, "enabled": enabled,
        "owns_any": bool(rows) or everything.exists(), "statuses": (Status.IN_PROGRESS, Status.DEPLOYED),
        "nav": "distributions"})


def _deployment(distribution: Distribution) -> dict[str, Any]:
    """Status, and for a change every edge runs, how long it took from publication to the last edge."""
    serving = selectors.edges_serving()
    status = selectors.distribution_status(distribution, serving)
    answer: dict[str, Any] = {"status": status, **selectors.distribution_deployment(distribution, serving)}
    version = selectors.config_version_get(distribution.config_version) if distribution.config_version else None
    answer["published_at"] = version.created_at if version else None
    if (status == Status.DEPLOYED and version is not None
            and all(edge.applied_version == version.version for edge in serving)):
        # Each edge's applied_at is when it took the version it runs: this one, so the last of
        # them is when the change reached every edge. Once a later version reaches them, the
        # moment is no longer known and only "Deployed" shows.
        applied = [edge.applied_at for edge in selectors.edge_list().filter(pk__in=[e.pk for e in serving])]
        if applied and all(applied):
            answer["took_seconds"] = max(0.0, (max(applied) - version.created_at).total_seconds())
    return answer


def _origin_rows(distribution: Distribution) -> list[dict[str, Any]]:
    """Origins as the page shows them: every secret only as set / not set."""
    rows = []
    for origin in distribution.origins.all():
        rows.append({
            "origin": origin,
            "credentials_set": any(getattr(origin, name) for name in CREDENTIAL_FIELDS),
            "secret_header_set": bool(origin.secret_header_value),
            "client_key_set": bool(origin.client_key),
            "custom_header_names": [h.get("name", "") for h in origin.custom_headers or [] if isinstance(h, dict)],
        })
    return rows


def _tab_context(request: HttpRequest, distribution: Distribution, tab: str) -> dict[str, Any]:
    return {"d": distribution, "tab": tab, "tabs": DASHBOARD_TABS, "deployment": _deployment(distribution),
            "nav": "distributions"}


@require_GET
@dashboard_login_required
def distribution_detail(request: HttpRequest, distribution_id: str, tab: str = "general") -> HttpResponse:
    if tab not in DASHBOARD_TABS:
        raise Http404("no such tab")
    distribution = _owned(request, distribution_id)
    context = _tab_context(request, distribution, tab)
    if tab == "origins":
        context["origins"] = _origin_rows(distribution)
        context["groups"] = list(distribution.origin_groups.all())
    elif tab == "behaviors":
        context["behaviors"] = list(distribution.cache_behaviors.all())
    elif tab == "invalidations":
        context.update(_invalidation_context(distribution))
        if request.htmx:  # the history's own poll: the fragment alone (django-htmx's request.htmx)
            return render(request, "dashboard/_invalidation_history.html", context)
    elif tab == "stats":
        context["range"] = request.GET.get("range") if request.GET.get("range") in RANGES else "1h"
        context["ranges"] = list(RANGES)
        context["stats_url"] = f"{reverse('dashboard:stats-json')}?distribution={distribution.pk}&range={context['range']}"
        span, interval, _ = RANGES[context["range"]]
        end = timezone.now()
        context["totals"] = selectors.traffic_stats([distribution.pk], start=end - span, end=end,
                                                    interval=interval)["totals"]
        context["per_edge"] = [
            {"edge": edge, "totals": selectors.traffic_stats([distribution.pk], start=end - span, end=end,
                                                             interval=interval, edge_id=edge.pk)["totals"]}
            for edge in selectors.edge_list().order_by("name")]
    elif tab == "history":
        context.update(_history_context(request, distribution))
    return render(request, f"dashboard/distribution_{tab}.html", context)


@require_GET
@dashboard_login_required
def distribution_status(request: HttpRequest, distribution_id: str) -> HttpResponse:
    """The status badge alone, polled by htmx while a change is InProgress."""
    distribution = _owned(request, distribution_id)
    return render(request, "dashboard/_status.html", {"d": distribution, "deployment": _deployment(distribution)})


# ---- Invalidations ----

def _invalidation_context(distribution: Distribution, form: dict[str, Any] | None = None) -> dict[str, Any]:
    serving = selectors.edges_serving()
    rows = []
    for invalidation in selectors.invalidation_list(distribution).order_by("-created_at")[:100]:
        took = (invalidation.completed_at - invalidation.created_at).total_seconds() if invalidation.completed_at else None
        rows.append({"i": invalidation, "took_seconds": took,
                     "acks": selectors.invalidation_acknowledgements(invalidation, serving)})
    return {"invalidations": rows, "any_pending": any(row["i"].status != "Completed" for row in rows),
            "form": form or {"paths": "", "tags": "", "errors": {}}}


@require_POST
@dashboard_login_required
def invalidation_create(request: HttpRequest, distribution_id: str) -> HttpResponse:
    distribution = _owned(request, distribution_id)
    paths_raw, tags_raw = request.POST.get("paths", ""), request.POST.get("tags", "")
    payload = {"paths": [line.strip() for line in paths_raw.splitlines() if line.strip()],
               "tags": [line.strip() for line in tags_raw.replace(",", "\n").splitlines() if line.strip()]}
    serializer = InvalidationSerializer(data=payload)  # the API's rules and messages
    if not serializer.is_valid():
        errors = {key: _messages(value) for key, value in serializer.errors.items()}
        context = _tab_context(request, distribution, "invalidations")
        context.update(_invalidation_context(distribution, {"paths": paths_raw, "tags": tags_raw, "errors": errors}))
        return render(request, "dashboard/distribution_invalidations.html", context, status=400)
    try:
        invalidation, _ = services.invalidation_create(distribution=distribution, user=request.user,
                                                       paths=serializer.validated_data.get("paths", []),
                                                       tags=serializer.validated_data.get("tags", []),
                                                       caller_reference=None)
    except services.Conflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Invalidation {invalidation.id} created.")
    return redirect("dashboard:distribution-tab", distribution.pk, "invalidations")


def _messages(errors: Any) -> list[str]:
    """A field's DRF errors (a list, or a list's errors by index) as plain lines."""
    if isinstance(errors, dict):
        return [f"line {int(k) + 1}: {m}" if str(k).isdigit() else m for k, v in errors.items() for m in _messages(v)]
    if isinstance(errors, list):
        return [m for e in errors for m in _messages(e)]
    return [str(errors)]


# ---- Config history ----

def _history_context(request: HttpRequest, distribution: Distribution) -> dict[str, Any]:
    entries = list(selectors.distribution_history(distribution.pk)[:200])
    serving = selectors.edges_serving()
    current = entries[0].version_id if entries else None
    versions = [{"entry": e, "deployed": bool(serving) and all(s.applied_version >= e.version_id for s in serving),
                 "current": e.version_id == current} for e in entries]

    def number(name: str) -> int | None:
        raw = request.GET.get(name, "")
        return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63 else None

    diff: dict[str, Any] | None = None
    diff_error = ""
    try:
        diff = actions.distribution_diff(distribution, number("from"), number("to"))
        diff["changes"] = [dict(c, old=_readable(c["old"]), new=_readable(c["new"])) for c in diff["changes"]]
    except serializers.ValidationError as exc:
        diff_error = "; ".join(_messages(exc.detail))
    return {"versions": versions, "diff": diff, "diff_error": diff_error}


def _readable(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True)


@require_POST
@dashboard_login_required
def distribution_rollback(request: HttpRequest, distribution_id: str) -> HttpResponse:
    """The history tab's "roll back to this version": the API's rollback, with the page's ETag
    as the precondition (a change made since the page was shown refuses it)."""
    distribution = _owned(request, distribution_id)
    raw = request.POST.get("version", "")
    etag = request.POST.get("etag", "")

    def check_current(locked: Distribution) -> None:
        if locked.etag != etag:
            raise services.Conflict("the distribution changed since this page was shown: look again, then roll back")

    if not (raw.isascii() and raw.isdigit() and ConfigVersion.objects.filter(version=int(raw)).exists()):
        messages.error(request, f"there is no config version {raw!r}")
    else:
        try:
            check_current(distribution)
            actions.distribution_rollback(distribution, user=request.user, number=int(raw),
                                          serializer_context={"request": request}, check_current=check_current)
        except services.Conflict as exc:
            messages.error(request, str(exc))
        except serializers.ValidationError as exc:
            messages.error(request, "; ".join(_messages(exc.detail)))
        else:
            messages.success(request, f"Rolled back to the settings of version {raw}: deploying.")
    return redirect("dashboard:distribution-tab", distribution.pk, "history")


# ---- Create and edit, through the API's serializer ----

def _form_page(request: HttpRequest, values: dict[str, Any], errors: dict[str, list[str]],
               distribution: Distribution | None, status: int = 200) -> HttpResponse:
    cache_policies = list(selectors.cache_policy_list(request.user).order_by("-managed", "name"))
    request_policies = list(selectors.origin_request_policy_list(request.user).order_by("-managed", "name"))
    return render(request, "dashboard/distribution_form.html", {
        "d": distribution, "values": forms.attach(values, errors), "errors": errors, "choices": forms.CHOICES,
        "cache_policies": cache_policies, "request_policies": request_policies,
        "nav": "distributions"}, status=status)


def _save(request: HttpRequest, distribution: Distribution | None) -> HttpResponse:
    context = {"request": request}
    current = DistributionSerializer(distribution, context=context).data if distribution is not None else None
    values = forms.from_post(request.POST)
    if request.POST.get("move"):  # the up/down buttons: the same form again, rows reordered, nothing saved
        return _form_page(request, forms.move(values, request.POST["move"]), {}, distribution)
    body, origin_rows, group_rows, behavior_rows = forms.payload(values, current)
    serializer = DistributionSerializer(distribution, data=body, context=context)
    if not serializer.is_valid():
        errors = forms.errors_by_field(serializer.errors, origin_rows, group_rows, behavior_rows)
        return _form_page(request, values, errors, distribution, status=400)
    try:
        if distribution is None:
            saved = services.distribution_create(user=request.user, data=serializer.validated_data)
        else:
            with transaction.atomic():
                locked = Distribution.objects.select_for_update().get(pk=distribution.pk)
                if locked.etag != request.POST.get("etag", ""):
                    raise services.Conflict("the distribution changed since this form was shown: "
                                            "open it again to see the change, then edit")
                saved = services.distribution_update(distribution=locked, user=request.user,
                                                     data=serializer.validated_data)
    except services.Conflict as exc:
        return _form_page(request, values, {"form": [str(exc)]}, distribution, status=409)
    messages.success(request, f"Distribution {saved.pk} saved: deploying to the edges.")
    return redirect("dashboard:distribution", saved.pk)


@require_http_methods(["GET", "POST"])
@dashboard_login_required
def distribution_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _save(request, None)
    return _form_page(request, forms.initial(None), {}, None)


@require_http_methods(["GET", "POST"])
@dashboard_login_required
def distribution_edit(request: HttpRequest, distribution_id: str) -> HttpResponse:
    distribution = _owned(request, distribution_id)
    if request.method == "POST":
        return _save(request, distribution)
    current = DistributionSerializer(distribution, context={"request": request}).data
    return _form_page(request, forms.initial(current), {}, distribution)


# ---- Edges and policies ----

@require_GET
@dashboard_login_required
def edge_list(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/edge_list.html", {"fleet": _fleet_rows(request), "nav": "edges"})


@require_GET
@dashboard_login_required
def edge_detail(request: HttpRequest, name: str) -> HttpResponse:
    """One edge: what it runs, its health, (staff) its last refused config, and the traffic it
    served in the last hour for the distributions the user owns."""
    edge = get_object_or_404(selectors.edge_list(), name=name)
    end = timezone.now()
    totals = selectors.traffic_counters(selectors.distribution_list(request.user), start=end - timedelta(hours=1),
                                        end=end, interval="minute", edge_id=edge.pk)["totals"]
    latest = selectors.latest_version_number()
    return render(request, "dashboard/edge_detail.html", {
        "edge": edge, "last_error": edge.last_error if request.user.is_staff else None, "totals": totals,
        "latest_version": latest, "behind": max(0, latest - edge.applied_version),
        "stats_url": f"{reverse('dashboard:stats-json')}?edge={edge.name}", "nav": "edges"})


@require_GET
@dashboard_login_required
def policy_list(request: HttpRequest) -> HttpResponse:
    used = selectors.behaviors_by_policy(request.user)

    def rows(policies: Any) -> list[dict[str, Any]]:
        return [{"policy": p, "behaviors": used.get(str(p.pk), [])} for p in policies]

    return render(request, "dashboard/policy_list.html", {
        "cache_policies": rows(selectors.cache_policy_list(request.user).order_by("-managed", "name")),
        "request_policies": rows(selectors.origin_request_policy_list(request.user).order_by("-managed", "name")),
        "nav": "policies"})


POLICY_LISTS = ("query_strings", "headers", "cookies")


@require_http_methods(["GET", "POST"])
@dashboard_login_required
def cache_policy_create(request: HttpRequest) -> HttpResponse:
    """A custom cache policy, validated by the API's CachePolicySerializer (TTL bounds and order
    included), its messages by the field, every input kept on a refusal."""
    values: dict[str, Any] = {"name": "", "comment": "", "min_ttl": "0", "default_ttl": "86400", "max_ttl": "31536000",
                              "enable_gzip": True, "enable_brotli": True,
                              **{f"{kind}_behavior": "none" for kind in POLICY_LISTS},
                              **{f"{kind}_names": "" for kind in POLICY_LISTS}}
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        values.update({name: request.POST.get(name, "") for name in values if not name.startswith("enable_")})
        values.update(enable_gzip=request.POST.get("enable_gzip") == "on",
                      enable_brotli=request.POST.get("enable_brotli") == "on")
        body = {name: values[name] for name in ("name", "comment", "min_ttl", "default_ttl", "max_ttl",
                                                "enable_gzip", "enable_brotli")}
        for kind in POLICY_LISTS:
            body[kind] = {"behavior": values[f"{kind}_behavior"],
                          "names": [n.strip() for n in values[f"{kind}_names"].replace(",", "\n").splitlines() if n.strip()]}
        serializer = CachePolicySerializer(data=body, context={"request": request})
        if serializer.is_valid():
            try:
                policy = services.policy_create(model=CachePolicy, user=request.user, data=serializer.validated_data)
            except services.Conflict as exc:
                errors, status = {"name": [str(exc)]}, 409
            else:
                messages.success(request, f"Cache policy {policy.name!r} created.")
                return redirect("dashboard:policy-list")
        else:
            errors, status = {key: _messages(value) for key, value in serializer.errors.items()}, 400
    return render(request, "dashboard/cache_policy_form.html", {
        "values": values, "errors": errors, "list_behaviors": ListBehavior.values, "nav": "policies",
        "lists": [{"kind": kind, "label": kind.replace("_", " ").capitalize(), "behavior": values[f"{kind}_behavior"],
                   "names": values[f"{kind}_names"], "errors": errors.get(kind, [])} for kind in POLICY_LISTS]},
        status=status)
