"""Login throttling: django-axes, configured for this site (settings.py, "Login throttling").

Every password check goes through `django.contrib.auth.authenticate(request=...)`, and axes
sits in front of it as the first authentication backend: the admin's login, DRF's browsable
login (`/api/v1/auth/login/`), `POST /api/v1/auth/token/` and any later login view (the
dashboard's LoginView) are throttled alike, with one count kept in the database that every
gunicorn worker shares. A login view needs nothing of its own beyond passing the request to
`authenticate()` (Django's LoginView and AuthenticationForm do); axes refuses a call without
one, so a view that forgot it fails loudly instead of going unthrottled.

This module holds what axes leaves to the site: which address a request comes from (behind
the proxies the operator names, not whatever a client writes in X-Forwarded-For), which
failures a success forgives, and what a locked-out client is told.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

LOCKED_OUT_MESSAGE = "Too many failed login attempts. Try again later."
LOCKED_OUT_TEMPLATE = "login_locked_out.html"


def client_address(request: HttpRequest) -> str | None:
    """The viewer's address: REMOTE_ADDR, or the entry the nearest trusted proxy added.

    With `CDN_TRUSTED_PROXY_COUNT=N` (N proxies in front of gunicorn, each appending the address
    it was reached from to X-Forwarded-For, as nginx's `$proxy_add_x_forwarded_for` and Caddy
    do), the client is the N-th entry from the right; entries further left were written by the
    client and would let it pick a new address for every guess. Anything that is not an
    address falls back to the connecting one.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.CDN_TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            candidate = hops[-count] if len(hops) >= count else hops[0]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return remote


class LoginAttempts(AxesDatabaseHandler):
    """Axes' database handler; a success forgives only that account's failures from that address.

    Axes' own reset deletes every failure of the username *or* of the address, so an attacker
    with one valid account could log into it between guesses at others and start their
    address's count afresh. Here the guesses at other accounts stay counted.
    """

    def reset_user_attempts(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(username=username, ip_address=request.axes_ip_address).delete()
        return count


def seconds_until_unlocked(request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
    """When the lockout that refused this request ends, in whole seconds (at least 1).

    A lockout lasts the cool-off from the last failure it counted (failures during a lockout
    are not counted: AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT is off).
    """
    AxesProxyHandler.update_request(request)
    cool_off = get_cool_off(request) or timedelta(0)
    limit = get_failure_limit(request, credentials)
    ends = []
    for attempts in AxesProxyHandler.get_implementation().get_user_attempts(request, credentials):
        totals = attempts.aggregate(failures=Sum("failures_since_start"), latest=Max("attempt_time"))
        if (totals["failures"] or 0) >= limit and totals["latest"] is not None:
            ends.append(totals["latest"] + cool_off)
    if not ends:
        return max(1, math.ceil(cool_off.total_seconds()))
    return max(1, math.ceil((max(ends) - timezone.now()).total_seconds()))


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict[str, Any] | None = None) -> HttpResponse:
    """The page a locked-out browser login gets (admin, DRF's login, the dashboard): 429, Retry-After.

    It says neither which limit was hit (the account's or the address's) nor whether the
    account exists: an attacker learns only to wait. The API's token call answers its own
    JSON 429 (distributions/api/views.py), which is kept as it is.
    """
    if original_response is not None and original_response.status_code == 429:
        return original_response
    wait = seconds_until_unlocked(request, credentials)
    context = {"minutes": max(1, math.ceil(wait / 60))}
    response = render(request, LOCKED_OUT_TEMPLATE, context, status=429)
    response["Retry-After"] = str(wait)
    return response
