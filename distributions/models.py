"""CloudFront's vocabulary as Django models.

Per-field rules live in `rules.py` and are attached here as validators and in `clean()`,
so the admin and the API refuse the same things with the same words.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import string
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from cdncontract import addresses, headers, http, names, origin_tls, s3, signed_urls
from cdncontract.errors import ContractError
from cdncontract.stats import COUNTER_NAMES as COUNTERS  # the counter columns of TrafficStat, re-exported
from cdncontract.stats import LATENCY_BOUNDS_MS
from cdncontract.ttl import MAX_TTL, ttl_errors

from . import crypto, rules
from .crypto import EncryptedTextField

ID_ALPHABET = string.ascii_uppercase + string.digits


def new_public_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(13))


def new_distribution_id() -> str:
    return new_public_id("E")


def new_invalidation_id() -> str:
    return new_public_id("I")


def new_etag() -> str:
    return new_public_id("E")


def new_public_key_id() -> str:
    return new_public_id("K")  # cdncontract.signed_urls.PUBLIC_KEY_ID


# ---- Choices ----

class OriginKind(models.TextChoices):
    CUSTOM = "custom", "Custom (HTTP)"
    S3 = "s3", "S3 bucket"


class OriginProtocolPolicy(models.TextChoices):
    HTTP_ONLY = "http-only"
    HTTPS_ONLY = "https-only"
    MATCH_VIEWER = "match-viewer"


class SigningBehavior(models.TextChoices):
    ALWAYS = "always"
    NEVER = "never"
    NO_OVERRIDE = "no-override", "no-override (unless the viewer sent Authorization)"


class SigningProtocol(models.TextChoices):
    SIGV4 = "sigv4", "SigV4"


class AddressingStyle(models.TextChoices):
    PATH = "path", "path-style ({endpoint}/{bucket}/key)"
    VIRTUAL = "virtual", "virtual-hosted ({bucket}.{endpoint host}/key)"


class ViewerProtocolPolicy(models.TextChoices):
    ALLOW_ALL = "allow-all"
    REDIRECT_TO_HTTPS = "redirect-to-https"
    HTTPS_ONLY = "https-only"


# The method lists a behavior can name, from the contract the edge reads them with.
AllowedMethods = models.TextChoices("AllowedMethods", [(n, n) for n in http.ALLOWED_METHOD_LISTS])
CachedMethods = models.TextChoices("CachedMethods", [(n, n) for n in http.CACHED_METHOD_LISTS])


class ListBehavior(models.TextChoices):
    NONE = "none"
    ALL = "all"
    ALLOWLIST = "allowlist"
    DENYLIST = "denylist"


class Status(models.TextChoices):
    IN_PROGRESS = "InProgress"
    DEPLOYED = "Deployed"


class InvalidationStatus(models.TextChoices):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"


# ---- Policies ----

class _PolicyBase(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              help_text="Empty for managed policies.")
    name = models.CharField(max_length=128)
    comment = models.CharField(max_length=255, blank=True)
    managed = models.BooleanField(default=False, editable=False)
    query_strings_behavior = models.CharField(max_length=16, choices=ListBehavior.choices, default=ListBehavior.NONE)
    query_strings = models.JSONField(default=list, blank=True)
    headers_behavior = models.CharField(max_length=16, choices=ListBehavior.choices, default=ListBehavior.NONE)
    headers = models.JSONField(default=list, blank=True)
    cookies_behavior = models.CharField(max_length=16, choices=ListBehavior.choices, default=ListBehavior.NONE)
    cookies = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    header_behaviors: tuple[str, ...] = ("none", "all", "allowlist", "denylist")

    class Meta:
        abstract = True
        ordering = ("-managed", "name")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if self.name in MANAGED_POLICY_NAMES and not self.managed:
            errors["name"] = f"{self.name!r} is the name of a managed policy"
        if self.headers_behavior not in self.header_behaviors:
            errors["headers_behavior"] = (
                f"headers behavior {self.headers_behavior!r} is not allowed here; use one of {list(self.header_behaviors)}"
            )
        for kind in ("query_strings", "headers", "cookies"):
            try:
                setattr(self, kind, rules.validate_name_list(
                    getattr(self, f"{kind}_behavior"), getattr(self, kind) or [], kind=kind, lower=kind == "headers"))
            except ValidationError as exc:
                errors[kind] = exc.messages
        if errors:
            raise ValidationError(errors)

    def block(self, kind: str) -> dict[str, Any]:
        return {"behavior": getattr(self, f"{kind}_behavior"), "names": list(getattr(self, kind))}


class CachePolicy(_PolicyBase):
    id = models.UUIDField(primary_key=True, editable=False)
    min_ttl = models.BigIntegerField(default=0, validators=[MinValueValidator(0), MaxValueValidator(MAX_TTL)])
    default_ttl = models.BigIntegerField(default=86400, validators=[MinValueValidator(0), MaxValueValidator(MAX_TTL)])
    max_ttl = models.BigIntegerField(default=31536000, validators=[MinValueValidator(0), MaxValueValidator(MAX_TTL)])
    enable_gzip = models.BooleanField(default=True)
    enable_brotli = models.BooleanField(default=True)
    cache_control_field = models.CharField(
        max_length=64, blank=True, default="", validators=[rules.validate_cache_control_field],
        help_text="A response header of your own (e.g. Edge-Cache-Control) that the edges obey before "
                  "CDN-Cache-Control and Cache-Control, and never pass on to viewers. Empty: none.")
    heuristic_freshness = models.BooleanField(
        default=False,
        help_text="Without max-age, s-maxage or Expires, keep a response with Last-Modified for 10% of its "
                  "age (at most the default TTL), as RFC 9111 allows, instead of the default TTL.")

    header_behaviors = ("none", "allowlist")

    class Meta(_PolicyBase.Meta):
        verbose_name_plural = "cache policies"
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_cache_policy_name_per_owner")]

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        try:
            super().clean()
        except ValidationError as exc:
            errors.update(exc.message_dict)
        for field, message in ttl_errors(self.min_ttl, self.default_ttl, self.max_ttl).items():
            errors.setdefault(field, []).append(message)
        self.cache_control_field = (self.cache_control_field or "").strip()
        if errors:
            raise ValidationError(errors)


class OriginRequestPolicy(_PolicyBase):
    id = models.UUIDField(primary_key=True, editable=False)

    class Meta(_PolicyBase.Meta):
        verbose_name_plural = "origin request policies"
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_origin_request_policy_name_per_owner")]

    def clean(self) -> None:
        super().clean()
        if self.headers_behavior == ListBehavior.ALLOWLIST:
            # CloudFront answers 400 to a policy forwarding Authorization; the edge's other
            # never-forwarded and key-only headers are refused the same way.
            problems = []
            for name in self.headers:
                try:
                    headers.check_origin_request_header(name)
                except ContractError as exc:
                    problems.append(exc.problem)
            if problems:
                raise ValidationError({"headers": problems})


MANAGED_POLICY_NAMES = frozenset({"CachingOptimized", "CachingDisabled", "AllViewer", "CORS-S3Origin"})


# ---- Signed URLs and cookies: public keys and key groups ----

class PublicKey(models.Model):
    """A public key viewers' signed URLs and cookies are verified with (CloudFront's PublicKey).

    Public, not a secret; checked at upload (cdncontract.signed_urls.check_public_key) and
    immutable once stored, as CloudFront's: a new key is a new upload, so a signed URL
    names the one key that can verify it.
    """

    id = models.CharField(primary_key=True, max_length=14, default=new_public_key_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="public_keys")
    name = models.CharField(max_length=128)
    comment = models.CharField(max_length=128, blank=True)
    encoded_key = models.TextField(validators=[rules.validate_public_key],
                                   help_text="PEM public key: RSA of at least 2048 bits, or EC P-256.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name", "id")
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_public_key_name_per_owner")]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    def clean(self) -> None:
        self.encoded_key = (self.encoded_key or "").strip() + "\n"

    @property
    def algorithm(self) -> str:
        try:
            return "ECDSA P-256" if signed_urls.check_public_key(self.encoded_key) == signed_urls.KIND_ECDSA \
                else "RSA"
        except ContractError:
            return ""


class KeyGroup(models.Model):
    """Public keys a cache behavior trusts (CloudFront's KeyGroup): at most five."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="key_groups")
    name = models.CharField(max_length=128)
    comment = models.CharField(max_length=128, blank=True)
    public_keys = models.ManyToManyField(PublicKey, related_name="key_groups")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_key_group_name_per_owner")]

    def __str__(self) -> str:
        return self.name


# ---- Distribution and its parts ----

class Distribution(models.Model):
    id = models.CharField(primary_key=True, max_length=14, default=new_distribution_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="distributions")
    comment = models.CharField(max_length=128, blank=True)
    enabled = models.BooleanField(default=True)
    default_root_object = models.CharField(max_length=255, blank=True)
    custom_error_responses = models.JSONField(default=list, blank=True,
                                              validators=[rules.validate_custom_error_responses])
    etag = models.CharField(max_length=14, default=new_etag, editable=False)
    config_version = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="The first config version that includes this distribution's last change.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.id} ({self.comment})" if self.comment else self.id

    @property
    def domain_name(self) -> str:
        return f"{self.id.lower()}.{settings.CDN_DOMAIN_SUFFIX}"

    def clean(self) -> None:
        try:
            rules.validate_default_root_object(self.default_root_object)
        except ValidationError as exc:
            raise ValidationError({"default_root_object": exc.messages}) from exc
        self.custom_error_responses = rules.normalise_custom_error_responses(self.custom_error_responses or [])


class Alias(models.Model):
    """An alternate domain name (CNAME); unique across every distribution."""

    distribution = models.ForeignKey(Distribution, on_delete=models.CASCADE, related_name="alias_set")
    name = models.CharField(max_length=253, unique=True, error_messages={"unique": "this alias is already used by another distribution"})

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            self.name = rules.validate_hostname(self.name, allow_wildcard=True, what="alias")
        except ValidationError as exc:
            raise ValidationError({"name": exc.messages}) from exc
        if self.name.endswith("." + settings.CDN_DOMAIN_SUFFIX) or self.name == settings.CDN_DOMAIN_SUFFIX:
            raise ValidationError({"name": f"aliases under {settings.CDN_DOMAIN_SUFFIX} are reserved for generated domain names"})


def _default_ssl_protocols() -> list[str]:
    return list(origin_tls.DEFAULT_SSL_PROTOCOLS)


class Origin(models.Model):
    distribution = models.ForeignKey(Distribution, on_delete=models.CASCADE, related_name="origins")
    origin_id = models.CharField(max_length=128)
    kind = models.CharField(max_length=8, choices=OriginKind.choices, default=OriginKind.CUSTOM)
    domain_name = models.CharField(max_length=253, blank=True)
    origin_path = models.CharField(max_length=255, blank=True, validators=[rules.validate_origin_path])
    http_port = models.PositiveIntegerField(default=80, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    https_port = models.PositiveIntegerField(default=443, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    protocol_policy = models.CharField(max_length=16, choices=OriginProtocolPolicy.choices,
                                       default=OriginProtocolPolicy.MATCH_VIEWER)
    connect_timeout = models.PositiveSmallIntegerField(default=10, validators=[MinValueValidator(1), MaxValueValidator(10)])
    read_timeout = models.PositiveSmallIntegerField(default=30, validators=[MinValueValidator(1), MaxValueValidator(60)])
    connection_attempts = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1), MaxValueValidator(3)])
    custom_headers = models.JSONField(default=list, blank=True, validators=[rules.validate_custom_headers])
    bucket = models.CharField(max_length=63, blank=True)
    region = models.CharField(max_length=32, blank=True)
    endpoint_url = models.CharField(max_length=255, blank=True, validators=[rules.validate_http_url],
                                    help_text="S3-compatible endpoint, e.g. http://127.0.0.1:9000; empty for AWS.")
    addressing_style = models.CharField(max_length=8, choices=AddressingStyle.choices, default=AddressingStyle.PATH)
    # Origin access control (CloudFront's OAC) on the origin itself: migrations/0005_origin_access_control.py says why.
    signing_behavior = models.CharField(
        max_length=16, choices=SigningBehavior.choices, blank=True,
        help_text="Empty: 'always' when the origin has credentials, else 'never' (a public bucket).")
    signing_protocol = models.CharField(max_length=8, choices=SigningProtocol.choices, default=SigningProtocol.SIGV4)
    access_key_id = models.CharField(max_length=128, blank=True)
    # Write-only and encrypted at rest (distributions/crypto.py); the attribute is the plain text.
    secret_access_key = EncryptedTextField(blank=True)
    session_token = EncryptedTextField(blank=True, help_text="Only for temporary (STS) credentials.")
    # HTTPS to the origin (cdncontract/origin_tls.py) and the secret origin header.
    ssl_protocols = models.JSONField(default=_default_ssl_protocols, blank=True,
                                     help_text="CloudFront's OriginSslProtocols: TLSv1.2, TLSv1.3.")
    ca_bundle = models.TextField(blank=True, help_text="PEM CA certificates the origin's certificate must chain "
                                                       "to; empty: the system store.")
    client_certificate = models.TextField(blank=True, help_text="PEM chain the edge presents (origin mutual TLS).")
    client_key = EncryptedTextField(blank=True, help_text="PEM private key of the client certificate (write-only).")
    secret_header_name = models.CharField(max_length=128, blank=True,
                                          help_text="A header the edge adds with a value only the CDN knows.")
    secret_header_value = EncryptedTextField(blank=True, help_text="Write-only.")

    class Meta:
        ordering = ("origin_id",)
        constraints = [models.UniqueConstraint(fields=["distribution", "origin_id"], name="unique_origin_id_per_distribution")]

    def __str__(self) -> str:
        return self.origin_id

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key_id and self.secret_access_key)

    @property
    def effective_signing_behavior(self) -> str:
        """An empty `signing_behavior` follows the credentials: sign with them, or not at all."""
        if self.signing_behavior:
            return self.signing_behavior
        return SigningBehavior.ALWAYS if self.has_credentials else SigningBehavior.NEVER

    @property
    def effective_endpoint_url(self) -> str:
        return (self.endpoint_url or s3.default_endpoint(self.region or "us-east-1")).rstrip("/")

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        try:
            rules.validate_origin_id(self.origin_id)
        except ValidationError as exc:
            errors["origin_id"] = exc.messages
        if self.kind == OriginKind.S3:
            if not self.bucket:
                errors["bucket"] = "an s3 origin needs a bucket"
            elif not names.S3_BUCKET.fullmatch(self.bucket):
                errors["bucket"] = "bucket must be 3-63 lowercase letters, digits, '.' or '-'"
            if self.region and not names.S3_REGION.fullmatch(self.region):
                errors["region"] = f"{self.region!r} is not a region name like 'us-east-1'"
            if not self.region:
                self.region = "us-east-1"
            self._clean_access_control(errors)
            if not self.domain_name:
                self.domain_name = f"{self.bucket}.s3.{self.region}.amazonaws.com"
        else:
            for field in S3_ONLY_FIELDS:
                if getattr(self, field):
                    errors[field] = f"{field} is only for s3 origins"
            if self.signing_behavior:
                errors["signing_behavior"] = "signing_behavior is only for s3 origins"
            if not self.domain_name:
                errors["domain_name"] = "a custom origin needs a domain_name"
        if self.domain_name and "domain_name" not in errors:
            try:
                self.domain_name = rules.validate_origin_host(self.domain_name)
            except ValidationError as exc:
                errors["domain_name"] = exc.messages
        self._clean_tls(errors)
        if settings.CDN_REFUSE_INTERNAL_ORIGINS:
            self._clean_address(errors)
        if errors:
            raise ValidationError(errors)

    def _clean_tls(self, errors: dict[str, Any]) -> None:
        """TLS settings and the secret header; no message repeats the key or the header's value."""
        try:
            self.ssl_protocols = list(origin_tls.check_ssl_protocols(self.ssl_protocols))
        except ContractError as exc:
            errors["ssl_protocols"] = exc.problem
        for check, field, args in ((origin_tls.check_ca_bundle, "ca_bundle", (self.ca_bundle,)),
                                   (origin_tls.check_client_certificate, "client_certificate",
                                    (self.client_certificate, self.client_key))):
            try:
                check(*args)
            except ContractError as exc:
                errors[field] = exc.problem
        if bool(self.secret_header_name) != bool(self.secret_header_value):
            errors["secret_header_value"] = "secret_header_name and secret_header_value go together"
        elif self.secret_header_name:
            listed = self.custom_headers if isinstance(self.custom_headers, list) else []
            pairs = [(h.get("name", ""), h.get("value", "")) for h in listed if isinstance(h, dict)]
            if self.secret_header_name.lower() in {name.lower() for name, _ in pairs}:
                errors["secret_header_name"] = f"{self.secret_header_name} is also a custom header"
            else:
                try:
                    headers.check_custom_headers([*pairs, (self.secret_header_name, self.secret_header_value)])
                except ContractError as exc:
                    # The custom headers' own problems are custom_headers' errors; the value is never repeated.
                    field = "secret_header_value" if exc.where.endswith("value") else "secret_header_name"
                    if exc.where.startswith(f"[{len(pairs)}]") or not exc.where:
                        errors.setdefault(field, exc.problem.replace(self.secret_header_value, "<secret>"))
        if (self.client_key or self.secret_header_value) and not crypto.configured():
            errors.setdefault("client_key" if self.client_key else "secret_header_value",
                              "this control plane has no CDN_SECRET_KEYS to encrypt secrets with (docs/operations.md)")

    def _clean_address(self, errors: dict[str, Any]) -> None:
        """CDN_REFUSE_INTERNAL_ORIGINS: the origin's name may not resolve into the operator's network.

        A name that does not resolve now is saved: the edge checks every address it connects
        to, after resolution, so a name that changes later is refused there too.
        """
        field, host = "domain_name", self.domain_name
        if self.kind == OriginKind.S3:
            field, host = "endpoint_url", urlsplit(self.effective_endpoint_url).hostname or ""
        if not host or field in errors:
            return
        try:
            found = sorted({info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})
        except (OSError, UnicodeError):
            return
        try:
            addresses.check_public(host, found)
        except ContractError as exc:
            errors[field] = exc.problem

    def _clean_access_control(self, errors: dict[str, Any]) -> None:
        """Credentials, signing and addressing; no message repeats a credential (cdncontract.s3)."""
        if self.access_key_id or self.secret_access_key or self.session_token:
            if not self.access_key_id or not self.secret_access_key:
                errors["secret_access_key"] = "access_key_id and secret_access_key go together"
            else:
                for check, field in ((s3.check_access_key_id, "access_key_id"),
                                     (s3.check_secret_access_key, "secret_access_key"),
                                     (s3.check_session_token, "session_token")):
                    try:
                        check(getattr(self, field))
                    except ContractError as exc:
                        errors[field] = exc.problem
            if not crypto.configured():
                errors.setdefault("secret_access_key", "this control plane has no CDN_SECRET_KEYS to encrypt "
                                                       "credentials with (docs/operations.md)")
        for check, args in ((s3.check_signing, (self.effective_signing_behavior, self.signing_protocol,
                                                self.has_credentials)),
                            (s3.check_addressing, (self.addressing_style, self.effective_endpoint_url, self.bucket))):
            try:
                check(*args)
            except ContractError as exc:
                errors.setdefault(exc.where, exc.problem)


# Write-only everywhere; an S3 origin written without any of them keeps the stored ones.
CREDENTIAL_FIELDS = ("access_key_id", "secret_access_key", "session_token")
# Write-only too, each kept on its own when a write leaves it out; "" removes it.
ORIGIN_SECRET_FIELDS = ("client_key", "secret_header_value")
S3_ONLY_FIELDS = ("bucket", "region", "endpoint_url", *CREDENTIAL_FIELDS)


class OriginGroup(models.Model):
    distribution = models.ForeignKey(Distribution, on_delete=models.CASCADE, related_name="origin_groups")
    group_id = models.CharField(max_length=128)
    primary_origin_id = models.CharField(max_length=128)
    secondary_origin_id = models.CharField(max_length=128)
    failover_status_codes = models.JSONField(default=list, validators=[rules.validate_failover_codes])

    class Meta:
        ordering = ("group_id",)
        constraints = [models.UniqueConstraint(fields=["distribution", "group_id"], name="unique_group_id_per_distribution")]

    def __str__(self) -> str:
        return self.group_id

    def clean(self) -> None:
        try:
            rules.validate_origin_id(self.group_id, "group_id")
        except ValidationError as exc:
            raise ValidationError({"group_id": exc.messages}) from exc
        if isinstance(self.failover_status_codes, list):
            self.failover_status_codes = sorted(self.failover_status_codes)


class CacheBehavior(models.Model):
    distribution = models.ForeignKey(Distribution, on_delete=models.CASCADE, related_name="cache_behaviors")
    position = models.PositiveIntegerField(default=0, help_text="Evaluation order; the default behavior ('*') is last.")
    path_pattern = models.CharField(max_length=255, validators=[rules.validate_path_pattern])
    target_origin_id = models.CharField(max_length=128, help_text="An origin id or origin group id of this distribution.")
    viewer_protocol_policy = models.CharField(max_length=20, choices=ViewerProtocolPolicy.choices,
                                              default=ViewerProtocolPolicy.ALLOW_ALL)
    allowed_methods = models.CharField(max_length=20, choices=AllowedMethods.choices, default=AllowedMethods.GET_HEAD)
    cached_methods = models.CharField(max_length=20, choices=CachedMethods.choices, default=CachedMethods.GET_HEAD)
    cache_policy = models.ForeignKey(CachePolicy, on_delete=models.PROTECT, related_name="behaviors")
    origin_request_policy = models.ForeignKey(OriginRequestPolicy, on_delete=models.PROTECT, null=True, blank=True,
                                              related_name="behaviors")
    compress = models.BooleanField(default=False)
    trusted_key_groups = models.ManyToManyField(
        KeyGroup, blank=True, related_name="behaviors",
        help_text="Signed URLs and cookies: when any are listed, every request needs a signature by one of "
                  "their keys.")

    class Meta:
        ordering = ("position", "id")

    def __str__(self) -> str:
        return self.path_pattern

    def clean(self) -> None:
        rules.validate_method_lists(self.allowed_methods, self.cached_methods)


# ---- Invalidations ----

class Invalidation(models.Model):
    """`seq` (the primary key) orders invalidations for the edges; `id` is the public id."""

    seq = models.BigAutoField(primary_key=True)
    id = models.CharField(max_length=14, unique=True, default=new_invalidation_id, editable=False)
    distribution = models.ForeignKey(Distribution, on_delete=models.CASCADE, related_name="invalidations")
    paths = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    caller_reference = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=InvalidationStatus.choices, default=InvalidationStatus.IN_PROGRESS)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-seq",)
        constraints = [models.UniqueConstraint(fields=["distribution", "caller_reference"], name="unique_caller_reference_per_distribution")]

    def __str__(self) -> str:
        return self.id

    def clean(self) -> None:
        rules.validate_invalidation(self.paths, self.tags)


# ---- Edges and config versions ----

def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class EdgeNode(models.Model):
    name = models.CharField(max_length=64, unique=True,
                            validators=[rules.validate_edge_name])
    pop = models.CharField("PoP", max_length=16, help_text="Short location code, e.g. fra, iad, sin.")
    url = models.CharField(max_length=255, validators=[rules.validate_http_url],
                           help_text="Base URL of the edge's admin endpoint, e.g. http://127.0.0.1:9081.")
    token_hash = models.CharField(max_length=64, editable=False, unique=True)
    applied_version = models.PositiveBigIntegerField(default=0)
    applied_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="Why the edge refused the last push, if it did.")
    invalidation_seq = models.PositiveBigIntegerField(default=0, help_text="Highest invalidation id the edge applied.")
    push_failures = models.PositiveIntegerField(default=0, help_text="Pushes to the edge that failed in a row.")
    push_retry_at = models.DateTimeField(null=True, blank=True,
                                         help_text="After push failures: no push is sent to the edge before this.")
    last_seen = models.DateTimeField(null=True, blank=True, db_index=True)
    healthy = models.BooleanField(default=False)
    unhealthy_since = models.DateTimeField(null=True, blank=True,
                                           help_text="When the heartbeat rule last declared the edge unhealthy.")
    drained = models.BooleanField(default=False, help_text="Taken out of the fleet by an operator: it still gets "
                                  "pushes, but no change or invalidation waits for it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return f"{self.name} ({self.pop})"

    def set_token(self, token: str) -> None:
        self.token_hash = hash_token(token)

    def check_token(self, token: str) -> bool:
        return secrets.compare_digest(self.token_hash, hash_token(token))


class ConfigVersion(models.Model):
    """An immutable snapshot of the edge config document; newer versions supersede, nothing edits."""

    version = models.PositiveBigIntegerField(primary_key=True)
    document = models.JSONField()
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-version",)

    def __str__(self) -> str:
        return f"v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("config versions are immutable")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("config versions are immutable")


class ConfigVersionChange(models.Model):
    """A distribution a config version changed, and how: a distribution's config history.

    Recorded when the version is published, by comparing its document with the previous one
    (`history.changed_distributions`), so a policy change or a re-publish that alters what a
    distribution's edges serve is in its history too. `distribution_id` is not a foreign key:
    the history of what the edges were told outlives the row.
    """

    class Change(models.TextChoices):
        ADDED = "added", "added (created or enabled)"
        CHANGED = "changed"
        REMOVED = "removed", "removed (disabled or deleted)"

    version = models.ForeignKey(ConfigVersion, on_delete=models.CASCADE, related_name="changes")
    distribution_id = models.CharField(max_length=14)
    change = models.CharField(max_length=8, choices=Change.choices)

    class Meta:
        ordering = ("-version_id",)
        constraints = [models.UniqueConstraint(fields=["distribution_id", "version"],
                                               name="one_change_per_distribution_per_version")]

    def __str__(self) -> str:
        return f"v{self.version_id} {self.change} {self.distribution_id}"


class ConfigState(models.Model):
    """A single row locked while a version number is taken, so versions never collide."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_version = models.PositiveBigIntegerField(default=0)


class FleetState(models.Model):
    """A single row: when the health check last ran, and the control plane's own last outage.

    Silence inside the outage (from `outage_start` to `outage_end`) is not held against an
    edge: the control plane was not there to hear it.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    checked_at = models.DateTimeField(null=True, blank=True)
    outage_start = models.DateTimeField(null=True, blank=True)
    outage_end = models.DateTimeField(null=True, blank=True)


class InvalidationAck(models.Model):
    """One edge has applied one invalidation."""

    invalidation = models.ForeignKey(Invalidation, on_delete=models.CASCADE, related_name="acks")
    edge = models.ForeignKey(EdgeNode, on_delete=models.CASCADE, related_name="invalidation_acks")
    acknowledged_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["invalidation", "edge"], name="one_ack_per_edge")]


# ---- Traffic statistics ----

LATENCY_BUCKETS_MS = (*LATENCY_BOUNDS_MS, None)  # None: +inf


class StatsReceipt(models.Model):
    """The idempotency key of a stats report: a retry of the same interval counts nothing."""

    edge = models.ForeignKey(EdgeNode, on_delete=models.CASCADE)
    interval_start = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["edge", "interval_start"], name="one_report_per_interval")]


class Resolution(models.TextChoices):
    MINUTE = "minute"
    HOUR = "hour"


class TrafficStat(models.Model):
    distribution = models.ForeignKey(Distribution, on_delete=models.CASCADE, related_name="traffic")
    edge = models.ForeignKey(EdgeNode, on_delete=models.CASCADE, related_name="traffic")
    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    period_start = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    hits = models.BigIntegerField(default=0)
    misses = models.BigIntegerField(default=0)
    bytes_out = models.BigIntegerField(default=0)
    bytes_in = models.BigIntegerField(default=0)
    status_2xx = models.BigIntegerField(default=0)
    status_3xx = models.BigIntegerField(default=0)
    status_4xx = models.BigIntegerField(default=0)
    status_5xx = models.BigIntegerField(default=0)
    blocked = models.BigIntegerField(default=0)
    client_aborts = models.BigIntegerField(default=0)  # viewer left before the last byte: in no status class
    lost_estimate = models.BigIntegerField(default=0)  # the edge's own estimate after a stop without saving
    latency_ms_buckets = models.JSONField(default=list)
    # Requests admitted by a signed URL or cookie, per public key id (cdncontract.stats.SIGNED_REQUESTS).
    signed_requests = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("period_start",)
        constraints = [models.UniqueConstraint(fields=["distribution", "edge", "resolution", "period_start"],
                                               name="one_stat_row_per_period")]
        indexes = [models.Index(fields=["resolution", "period_start"])]
