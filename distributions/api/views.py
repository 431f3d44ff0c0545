"""Thin views: parse, check preconditions, call a service, answer."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import HttpResponseBase
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from cdncontract.names import EDGE_NAME
from controlplane import login

from .. import selectors, services
from . import actions
from ..models import CachePolicy, ConfigVersion, Distribution, EdgeNode, KeyGroup, OriginRequestPolicy, PublicKey
from .errors import PreconditionFailed, PreconditionRequired
from .schema import ConflictSerializer, ErrorSerializer
from .serializers import (
    CachePolicySerializer,
    DIFF_SCHEMA,
    ConfigVersionSerializer,
    DiffQuerySerializer,
    DistributionSerializer,
    DistributionVersionSerializer,
    EdgeNodeSerializer,
    EdgeRegistrationSerializer,
    EdgeUpdateSerializer,
    InvalidationSerializer,
    KeyGroupSerializer,
    OriginRequestPolicySerializer,
    PublicKeySerializer,
    RollbackSerializer,
)

IF_MATCH = OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, required=True,
                            description="The ETag from the last read; 428 without it, 412 when stale.")
ETAG_ERRORS = {
    412: OpenApiResponse(ErrorSerializer, description="If-Match does not match the current ETag"),
    428: OpenApiResponse(ErrorSerializer, description="If-Match header missing"),
}


def _etag_header(distribution: Distribution) -> str:
    return f'"{distribution.etag}"'


def check_if_match(request: Request, distribution: Distribution) -> None:
    """`*` alone matches any current version; `"*"` is an entity tag like any other, and matches none."""
    header = request.headers.get("If-Match")
    if not header:
        raise PreconditionRequired()
    if header.strip() == "*":
        return
    candidates = [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")]
    if distribution.etag not in candidates:
        raise PreconditionFailed()


STATS_PARAMETERS = [
    OpenApiParameter("start", str, description="ISO 8601 time or Unix seconds; default: end minus 1 hour (minute) or 1 day (hour)"),
    OpenApiParameter("end", str, description="ISO 8601 time or Unix seconds; default: now"),
    OpenApiParameter("interval", str, enum=["minute", "hour"], description="default: minute"),
]


TIME_FLOOR = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
TIME_CEILING = datetime(9999, 1, 1, tzinfo=dt_timezone.utc)


def _parse_time(name: str, raw: str | None, default: datetime) -> datetime:
    """A time in UTC, or a 400 naming the parameter for anything no calendar or clock holds.

    Only ASCII digits are Unix seconds (`str.isdigit` also takes `³`). The bounds keep the
    default span (end minus a day) and the database's UTC conversion within what `datetime` holds.
    """
    if not raw:
        return default
    try:
        if raw.isascii() and raw.isdigit():
            parsed: datetime | None = datetime.fromtimestamp(int(raw), tz=dt_timezone.utc)
        else:
            parsed = parse_datetime(raw)
        if parsed is not None:
            parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)).astimezone(dt_timezone.utc)
    except (ValueError, OverflowError, OSError):
        parsed = None
    if parsed is None:
        raise serializers.ValidationError({name: f"{raw!r} is not an ISO 8601 time or Unix seconds"})
    if not TIME_FLOOR <= parsed <= TIME_CEILING:
        raise serializers.ValidationError({name: f"{raw!r} is out of range: give a time from {TIME_FLOOR.year} "
                                                 f"to {TIME_CEILING.year}"})
    return parsed


def stats_answer(request: Request, distribution_ids: list[str]) -> Response:
    interval = request.query_params.get("interval", "minute")
    if interval not in ("minute", "hour"):
        raise serializers.ValidationError({"interval": "interval must be 'minute' or 'hour'"})
    end = _parse_time("end", request.query_params.get("end"), timezone.now())
    span = timedelta(hours=1) if interval == "minute" else timedelta(days=1)
    start = _parse_time("start", request.query_params.get("start"), end - span)
    if start >= end:
        raise serializers.ValidationError({"start": "start must be before end"})
    return Response(selectors.traffic_stats(distribution_ids, start=start, end=end, interval=interval))


VERSION_NUMBER_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
DIFF_PARAMETERS = [
    OpenApiParameter("from", VERSION_NUMBER_SCHEMA, description="A config version; default: the version before `to` that changed "
                                              "this distribution (so the diff is what `to` changed)"),
    OpenApiParameter("to", VERSION_NUMBER_SCHEMA, description="A config version; default: the newest that changed this distribution"),
]


@extend_schema_view(
    update=extend_schema(parameters=[IF_MATCH], responses={200: DistributionSerializer, **ETAG_ERRORS}),
    partial_update=extend_schema(parameters=[IF_MATCH], responses={200: DistributionSerializer, **ETAG_ERRORS}),
    destroy=extend_schema(parameters=[IF_MATCH], responses={
        204: None, 409: OpenApiResponse(ConflictSerializer, description="the distribution is enabled: disable it first"),
        **ETAG_ERRORS}),
)
class DistributionViewSet(viewsets.ModelViewSet):
    """CloudFront-style distributions: origins, origin groups and ordered cache behaviors inline."""

    serializer_class = DistributionSerializer
    lookup_value_regex = "E[A-Z0-9]{13}"

    def get_queryset(self) -> Any:
        return selectors.distribution_list(self.request.user)

    def _answer(self, distribution: Distribution, code: int = status.HTTP_200_OK, reload: bool = True) -> Response:
        """The distribution as the API shows it; after a write, read again with everything prefetched."""
        fresh = self.get_queryset().get(pk=distribution.pk) if reload else distribution
        response = Response(self.get_serializer(fresh).data, status=code)
        response["ETag"] = _etag_header(fresh)
        return response

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._answer(self.get_object(), reload=False)  # get_object read it with the same queryset

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        distribution = services.distribution_create(user=request.user, data=serializer.validated_data)
        response = self._answer(distribution, status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"{distribution.pk}/")
        return response

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        distribution = self.get_object()
        check_if_match(request, distribution)
        serializer = self.get_serializer(distribution, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            locked = Distribution.objects.select_for_update().get(pk=distribution.pk)
            check_if_match(request, locked)
            services.distribution_update(distribution=locked, user=request.user, data=serializer.validated_data)
        return self._answer(distribution)

    @extend_schema(parameters=STATS_PARAMETERS, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        """Requests, hit ratio, bandwidth, error rates and latency percentiles, per minute or hour."""
        return stats_answer(request, [self.get_object().pk])

    # ---- Config history: the versions that changed it, a diff between two, a rollback ----

    @extend_schema(responses={200: DistributionVersionSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        """The config versions that changed this distribution, newest first: its config history."""
        distribution = self.get_object()
        entries = selectors.distribution_history(distribution.pk)
        page = self.paginate_queryset(entries)
        context = {**self.get_serializer_context(), "serving_edges": selectors.edges_serving(),
                   "current_version": entries.values_list("version", flat=True).first()}
        return self.get_paginated_response(DistributionVersionSerializer(page, many=True, context=context).data)

    @extend_schema(parameters=DIFF_PARAMETERS, responses={200: OpenApiResponse(DIFF_SCHEMA)})
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, pk: str | None = None) -> Response:
        """What differs in this distribution between two config versions, field by field; no secret is shown."""
        distribution = self.get_object()
        query = DiffQuerySerializer(data={name: request.query_params[name] for name in ("from", "to")
                                          if request.query_params.get(name)})
        query.is_valid(raise_exception=True)
        return Response(actions.distribution_diff(distribution, query.validated_data.get("from"),
                                                  query.validated_data.get("to")))

    @extend_schema(request=RollbackSerializer, parameters=[IF_MATCH], responses={
        200: DistributionSerializer, **ETAG_ERRORS,
        409: OpenApiResponse(ConflictSerializer, description="the old settings are no longer valid (a policy they "
                                                             "use was deleted, an alias is taken), or their secrets "
                                                             "cannot be decrypted")})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        """Give the distribution the settings it had in an earlier config version, as a new version.

        The version number only grows (Fastly's activation of an old version): the edges get
        the rollback like any change, and the distribution is `InProgress` until they run it.
        """
        distribution = self.get_object()
        check_if_match(request, distribution)
        body = RollbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        actions.distribution_rollback(distribution, user=request.user, number=body.validated_data["version"],
                                      serializer_context=self.get_serializer_context(),
                                      check_current=lambda locked: check_if_match(request, locked))
        return self._answer(distribution)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        distribution = self.get_object()
        with transaction.atomic():
            locked = Distribution.objects.select_for_update().get(pk=distribution.pk)
            check_if_match(request, locked)
            services.distribution_delete(distribution=locked, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StatsViewSet(viewsets.ViewSet):
    """Traffic of every distribution the user owns (staff: all)."""

    @extend_schema(parameters=STATS_PARAMETERS, responses={200: OpenApiTypes.OBJECT})
    def list(self, request: Request) -> Response:
        ids = list(selectors.distribution_list(request.user).values_list("id", flat=True))
        return stats_answer(request, ids)


class _PolicyViewSet(viewsets.ModelViewSet):
    model: type[CachePolicy] | type[OriginRequestPolicy]

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.policy_create(model=self.model, user=self.request.user, data=serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.policy_update(policy=serializer.instance, user=self.request.user,
                                                     data=serializer.validated_data)

    def perform_destroy(self, instance: CachePolicy | OriginRequestPolicy) -> None:
        services.policy_delete(policy=instance)

    def check_object_permissions(self, request: Request, obj: Any) -> None:
        super().check_object_permissions(request, obj)
        if request.method not in permissions.SAFE_METHODS:
            services.policy_check_writable(obj)  # before the body is read: a 403, not a 400


class CachePolicyViewSet(_PolicyViewSet):
    """Reusable cache policies: TTLs and the cache key. Managed ones are read-only."""

    model = CachePolicy
    queryset = CachePolicy.objects.none()  # names the model to a schema built without a request (check --deploy)
    serializer_class = CachePolicySerializer

    def get_queryset(self) -> Any:
        return selectors.cache_policy_list(self.request.user).select_related("owner")


class OriginRequestPolicyViewSet(_PolicyViewSet):
    """Reusable origin request policies: what reaches the origin beyond the cache key."""

    model = OriginRequestPolicy
    queryset = OriginRequestPolicy.objects.none()  # names the model to a schema built without a request (check --deploy)
    serializer_class = OriginRequestPolicySerializer

    def get_queryset(self) -> Any:
        return selectors.origin_request_policy_list(self.request.user).select_related("owner")


CONFLICT = {409: OpenApiResponse(ConflictSerializer, description="in use: a key group holds the key, or a cache "
                                                                 "behavior trusts the group")}


@extend_schema_view(destroy=extend_schema(responses={204: None, **CONFLICT}),
                    update=extend_schema(responses={200: PublicKeySerializer, **CONFLICT}),
                    partial_update=extend_schema(responses={200: PublicKeySerializer, **CONFLICT}))
class PublicKeyViewSet(viewsets.ModelViewSet):
    """Public keys for signed URLs and cookies (CloudFront's PublicKey): RSA 2048+ or EC P-256, PEM.
    Only the name and comment change after upload; a key a key group holds cannot be deleted."""

    serializer_class = PublicKeySerializer
    lookup_value_regex = "K[A-Z0-9]{13}"

    def get_queryset(self) -> Any:
        return selectors.public_key_list(self.request.user)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.public_key_create(user=self.request.user, data=serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.public_key_update(key=serializer.instance, data=serializer.validated_data)

    def perform_destroy(self, instance: PublicKey) -> None:
        services.public_key_delete(key=instance)


@extend_schema_view(destroy=extend_schema(responses={204: None, **CONFLICT}))
class KeyGroupViewSet(viewsets.ModelViewSet):
    """Key groups (CloudFront's KeyGroup): 1 to 5 public keys a cache behavior trusts. A change
    republishes the distributions that trust it; a group a behavior trusts cannot be deleted."""

    serializer_class = KeyGroupSerializer
    lookup_value_regex = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

    def get_queryset(self) -> Any:
        return selectors.key_group_list(self.request.user)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.key_group_create(user=self.request.user, data=serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.key_group_update(group=serializer.instance, user=self.request.user,
                                                        data=serializer.validated_data)

    def perform_destroy(self, instance: KeyGroup) -> None:
        services.key_group_delete(group=instance)


@extend_schema(parameters=[OpenApiParameter("distribution_id", str, OpenApiParameter.PATH,
                                            pattern=f"^{DistributionViewSet.lookup_value_regex}$")])
class InvalidationViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                          viewsets.GenericViewSet):
    """Invalidations of one distribution, by path (`*` wildcards) and by tag (Surrogate-Key)."""

    serializer_class = InvalidationSerializer
    lookup_field = "id"

    def get_distribution(self) -> Distribution:
        return get_object_or_404(selectors.distribution_list(self.request.user), pk=self.kwargs["distribution_id"])

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return selectors.invalidation_list(Distribution())
        return selectors.invalidation_list(self.get_distribution())

    @extend_schema(responses={201: InvalidationSerializer, 200: InvalidationSerializer,
                              409: OpenApiResponse(ConflictSerializer,
                                                   description="caller_reference reused with another batch")})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        distribution = self.get_distribution()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        invalidation, created = services.invalidation_create(
            distribution=distribution, user=request.user, paths=data.get("paths", []), tags=data.get("tags", []),
            caller_reference=data.get("caller_reference"))
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(invalidation).data, status=code)


class IsStaffToChange(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in permissions.SAFE_METHODS or bool(request.user and request.user.is_staff)


class EdgeNodeViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """The fleet: each edge's applied config version and health. Staff register, drain and remove edges."""

    serializer_class = EdgeNodeSerializer
    lookup_field = "name"
    lookup_value_regex = EDGE_NAME.pattern.strip("^$")  # a name that cannot be an edge's is no route (404)
    permission_classes = [permissions.IsAuthenticated, IsStaffToChange]

    @extend_schema(request=EdgeUpdateSerializer, responses={200: EdgeNodeSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """`{"drained": true}` takes the edge out of what `Deployed` and `Completed` wait for."""
        serializer = EdgeUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        edge = services.edge_update(edge=self.get_object(), data=serializer.validated_data)
        return Response(EdgeNodeSerializer(edge, context=self.get_serializer_context()).data)

    def get_queryset(self) -> Any:
        return selectors.edge_list()

    @extend_schema(request=EdgeRegistrationSerializer, responses={201: EdgeRegistrationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = EdgeRegistrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        edge, token = services.edge_register(**serializer.validated_data)
        shown = EdgeNodeSerializer(edge, context=self.get_serializer_context()).data
        return Response(dict(shown, token=token), status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: EdgeNode) -> None:
        services.edge_delete(edge=instance)


class ConfigVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Immutable config versions (staff only). `document` is what an edge agent reads, but for S3
    credentials: sealed under CDN_SECRET_KEYS here, sealed for each edge in a push or a pull."""

    serializer_class = ConfigVersionSerializer
    permission_classes = [permissions.IsAdminUser]
    lookup_field = "version"
    lookup_value_regex = "[0-9]+"
    queryset = ConfigVersion.objects.select_related("created_by").order_by("-version")

    @extend_schema(responses={200: ConfigVersionSerializer,
                              404: OpenApiResponse(ErrorSerializer, description="no config version yet")})
    @action(detail=False, methods=["get"])
    def latest(self, request: Request) -> Response:
        latest = selectors.config_version_latest()
        if latest is None:
            return Response({"detail": "no config version has been published yet"}, status=status.HTTP_404_NOT_FOUND)
        return Response(self.get_serializer(latest).data)


class LoginLockedOut(exceptions.APIException):
    """429 with `Retry-After: <wait>` (DRF's handler sends the header for an exception's `wait`)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = login.LOCKED_OUT_MESSAGE
    default_code = "login_locked_out"

    def __init__(self, wait: int) -> None:
        super().__init__()
        self.wait = wait


class AuthTokenView(ObtainAuthToken):
    """Username and password in, token out: the one call that needs no credentials.

    Without authentication classes a stale `Authorization` header cannot refuse the login, and
    the schema marks the call as open (`security: [{}]`) instead of token-protected.
    Throttled like every login (controlplane/login.py): a locked-out username or address gets
    429 with Retry-After, whether the password was right or not.
    """

    authentication_classes: list[type[Any]] = []
    permission_classes = [permissions.AllowAny]
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES  # ObtainAuthToken's own list has DRF's unbounded JSON parser
    login_throttled = True  # the schema documents its 429 (schema.py)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except exceptions.ValidationError:
            # authenticate() sets the flag on the request it was given: this DRF request.
            if getattr(request, "axes_locked_out", False):
                raise LoginLockedOut(wait=login.seconds_until_unlocked(request, getattr(request, "axes_credentials", None)))
            raise
        user = serializer.validated_data["user"]
        # A password login like the admin's: the throttle forgives this client's failures for the
        # account, and last_login is kept (a token call never opens a session, so login() is not called).
        user_logged_in.send(sender=type(user), request=request, user=user)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class DocsView(SpectacularSwaggerView):
    """The interactive docs; a browser without a session is sent to log in and comes back here.

    The page's "Try it out" then runs with that session: the page sends the CSRF token on writes.
    """

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
