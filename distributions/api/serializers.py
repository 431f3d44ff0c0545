"""The REST representation. Field rules come from the models (`full_clean`) and `rules.py`,
so the API and the admin refuse the same input with the same words."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cdncontract import signed_urls
from cdncontract.errors import ContractError
from cdncontract.paths import MAX_PATH, MAX_TAG

from .. import rules, selectors
from ..models import (
    CREDENTIAL_FIELDS,
    ORIGIN_SECRET_FIELDS,
    Alias,
    CacheBehavior,
    CachePolicy,
    ConfigVersion,
    ConfigVersionChange,
    Distribution,
    EdgeNode,
    Invalidation,
    KeyGroup,
    ListBehavior,
    Origin,
    OriginGroup,
    OriginRequestPolicy,
    PublicKey,
)


def clean_model(instance: models.Model, exclude: list[str], rename: dict[str, str] | None = None) -> None:
    """Run the model's own validation and re-raise it as field errors for DRF."""
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        rename = rename or {}
        errors: dict[str, list[str]] = {}
        for field, messages in exc.message_dict.items():
            errors.setdefault(rename.get(field, field), []).extend(messages)
        raise serializers.ValidationError(errors) from exc


# ---- Policies ----

@extend_schema_field(
    {"type": "object", "properties": {"behavior": {"type": "string", "enum": [c.value for c in ListBehavior]},
                                      "names": {"type": "array", "items": {"type": "string"}}},
     "required": ["behavior"]}
)
class ListBlockField(serializers.Field):
    """`{"behavior": ..., "names": [...]}`, stored flat as `<kind>_behavior` and `<kind>`."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        kwargs.setdefault("source", "*")
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> dict[str, Any]:
        return value.block(self.kind)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError('expected an object like {"behavior": "allowlist", "names": ["a"]}')
        unknown = set(data) - {"behavior", "names"}
        if unknown:
            raise serializers.ValidationError(f"unknown key(s): {', '.join(sorted(unknown))}")
        behavior = data.get("behavior")
        if behavior not in ListBehavior.values:
            raise serializers.ValidationError(f"behavior must be one of {ListBehavior.values}, not {behavior!r}")
        names = data.get("names", [])
        if not isinstance(names, list):
            raise serializers.ValidationError("names must be a list of strings")
        return {f"{self.kind}_behavior": behavior, self.kind: names}


POLICY_RENAME = {f"{kind}_behavior": kind for kind in ("query_strings", "headers", "cookies")}


class _PolicySerializer(serializers.ModelSerializer):
    query_strings = ListBlockField("query_strings")
    headers = ListBlockField("headers")
    cookies = ListBlockField("cookies")
    owner = serializers.CharField(source="owner.username", read_only=True, default=None, allow_null=True,
                                  help_text="null for managed policies")

    common_fields = ("id", "name", "comment", "managed", "owner", "query_strings", "headers", "cookies",
                     "created_at", "updated_at")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        model = self.Meta.model
        instance = model(id=uuid.uuid4()) if self.instance is None else model.objects.get(pk=self.instance.pk)
        for key, value in attrs.items():
            setattr(instance, key, value)
        clean_model(instance, exclude=["owner", "id"], rename=POLICY_RENAME)
        for kind in ("query_strings", "headers", "cookies"):
            if kind in attrs:
                attrs[kind] = getattr(instance, kind)  # normalised: sorted, unique, headers lowercased
        return attrs


class CachePolicySerializer(_PolicySerializer):
    class Meta:
        model = CachePolicy
        fields = _PolicySerializer.common_fields + ("min_ttl", "default_ttl", "max_ttl", "enable_gzip", "enable_brotli",
                                                    "cache_control_field", "heuristic_freshness")
        read_only_fields = ("id", "managed", "owner", "created_at", "updated_at")
        validators: list[Any] = []


class OriginRequestPolicySerializer(_PolicySerializer):
    class Meta:
        model = OriginRequestPolicy
        fields = _PolicySerializer.common_fields
        read_only_fields = ("id", "managed", "owner", "created_at", "updated_at")
        validators: list[Any] = []


@extend_schema_field(OpenApiTypes.STR)
class PolicyRefField(serializers.Field):
    """A policy by id, or a managed (or own) policy by name; answered with the id."""

    def __init__(self, model: type[CachePolicy] | type[OriginRequestPolicy], **kwargs: Any) -> None:
        self.model = model
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        return str(value.pk)

    def to_internal_value(self, data: Any) -> CachePolicy | OriginRequestPolicy:
        if not isinstance(data, str) or not data:
            raise serializers.ValidationError("give a policy id or the name of a managed policy")
        if "\x00" in data:  # no name holds one, and PostgreSQL cannot even compare it
            raise serializers.ValidationError("Null characters are not allowed.")
        user = self.context["request"].user
        lister = selectors.cache_policy_list if self.model is CachePolicy else selectors.origin_request_policy_list
        qs = lister(user)
        try:
            return qs.get(pk=uuid.UUID(data))
        except (ValueError, self.model.DoesNotExist):
            pass
        found = qs.filter(name=data).order_by("-managed").first()
        if found is None:
            kind = self.model._meta.verbose_name
            raise serializers.ValidationError(f"there is no {kind} with id or name {data!r} that you can use")
        return found


# ---- Signed URLs and cookies: public keys and key groups ----

class PublicKeySerializer(serializers.ModelSerializer):
    """A public key; `encoded_key` is set once, at upload (a new key is a new upload)."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    algorithm = serializers.CharField(read_only=True, help_text="RSA or ECDSA P-256")
    key_groups = serializers.SerializerMethodField()
    encoded_key = serializers.CharField(trim_whitespace=False, max_length=signed_urls.MAX_PUBLIC_KEY_PEM,
                                        help_text="PEM public key: RSA of at least 2048 bits, or EC P-256.")

    class Meta:
        model = PublicKey
        fields = ("id", "name", "comment", "encoded_key", "algorithm", "owner", "key_groups", "created_at")
        read_only_fields = ("id", "created_at")
        validators: list[Any] = []

    def get_key_groups(self, key: PublicKey) -> list[str]:
        return sorted(str(g.id) for g in key.key_groups.all())

    def validate_encoded_key(self, value: str) -> str:
        try:
            signed_urls.check_public_key(value)
        except ContractError as exc:
            raise serializers.ValidationError(f"encoded_key {exc.problem}") from exc
        return value.strip() + "\n"


@extend_schema_field(OpenApiTypes.STR)
class PublicKeyRefField(serializers.Field):
    """A public key the user may use, by id."""

    def to_representation(self, value: Any) -> str:
        return str(value.pk)

    def to_internal_value(self, data: Any) -> PublicKey:
        if not isinstance(data, str) or not signed_urls.PUBLIC_KEY_ID.fullmatch(data):
            raise serializers.ValidationError("give a public key id (K followed by 13 uppercase letters or digits)")
        found = selectors.public_key_list(self.context["request"].user).filter(pk=data).first()
        if found is None:
            raise serializers.ValidationError(f"there is no public key {data} that you can use")
        return found


class PublicKeyListField(serializers.ListField):
    def get_attribute(self, instance: Any) -> list[PublicKey]:
        return sorted(instance.public_keys.all(), key=lambda k: k.pk)


class KeyGroupSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    public_keys = PublicKeyListField(child=PublicKeyRefField(), min_length=1,
                                        max_length=signed_urls.MAX_KEYS_PER_GROUP,
                                        help_text="Ids of public keys, 1 to 5.")

    class Meta:
        model = KeyGroup
        fields = ("id", "name", "comment", "public_keys", "owner", "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")
        validators: list[Any] = []

    def validate_public_keys(self, value: list[PublicKey]) -> list[PublicKey]:
        ids = [k.pk for k in value]
        if len(set(ids)) != len(ids):
            raise serializers.ValidationError("a public key is listed twice")
        return value


@extend_schema_field(OpenApiTypes.STR)
class KeyGroupRefField(serializers.Field):
    """A key group the user may use, by id."""

    def to_representation(self, value: Any) -> str:
        return str(value.pk)

    def to_internal_value(self, data: Any) -> KeyGroup:
        try:
            group_id = uuid.UUID(data) if isinstance(data, str) else None
        except ValueError:
            group_id = None
        if group_id is None:
            raise serializers.ValidationError("give a key group id (a UUID)")
        found = selectors.key_group_list(self.context["request"].user).filter(pk=group_id).first()
        if found is None:
            raise serializers.ValidationError(f"there is no key group {data} that you can use")
        return found


class KeyGroupListField(serializers.ListField):
    """A behavior's trusted key groups: ids in, ids out (sorted)."""

    def get_attribute(self, instance: Any) -> list[KeyGroup]:
        return sorted(instance.trusted_key_groups.all(), key=lambda g: str(g.pk))


# ---- Distribution and its inline parts ----

def _model_fields_from(attrs: dict[str, Any], instance: models.Model) -> dict[str, Any]:
    return {key: getattr(instance, key) for key in attrs}


class OriginSerializer(serializers.ModelSerializer):
    """Credentials are write-only: reads show `has_credentials`, and an S3 origin written
    without any of them keeps the stored ones (services.distributions), so they count here too.
    The client key and the secret header's value are write-only the same way, each on its own:
    reads show `has_client_key` and `has_secret_header_value`; "" removes one."""

    has_credentials = serializers.BooleanField(read_only=True)
    has_client_key = serializers.SerializerMethodField()
    has_secret_header_value = serializers.SerializerMethodField()
    ssl_protocols = serializers.ListField(child=serializers.CharField(), required=False,
                                         help_text="CloudFront's OriginSslProtocols: TLSv1.2, TLSv1.3.")

    class Meta:
        model = Origin
        fields = ("origin_id", "kind", "domain_name", "origin_path", "http_port", "https_port", "protocol_policy",
                  "connect_timeout", "read_timeout", "connection_attempts", "custom_headers",
                  "bucket", "region", "endpoint_url", "addressing_style", "signing_behavior", "signing_protocol",
                  *CREDENTIAL_FIELDS, "has_credentials",
                  "ssl_protocols", "ca_bundle", "client_certificate", "secret_header_name",
                  *ORIGIN_SECRET_FIELDS, "has_client_key", "has_secret_header_value")
        extra_kwargs = {**{name: {"write_only": True, "trim_whitespace": False}
                           for name in (*CREDENTIAL_FIELDS, *ORIGIN_SECRET_FIELDS)},
                        "ca_bundle": {"trim_whitespace": False}, "client_certificate": {"trim_whitespace": False}}
        validators: list[Any] = []

    def get_has_client_key(self, origin: Origin) -> bool:
        return bool(origin.client_key)

    def get_has_secret_header_value(self, origin: Origin) -> bool:
        return bool(origin.secret_header_value)

    def _stored_credentials(self, origin_id: Any) -> dict[str, str]:
        distribution = getattr(getattr(self.parent, "parent", None), "instance", None)
        if not isinstance(distribution, Distribution):
            return {}
        stored = next((o for o in distribution.origins.all() if o.origin_id == origin_id and o.has_credentials), None)
        return {name: getattr(stored, name) for name in CREDENTIAL_FIELDS} if stored is not None else {}

    def _stored_secrets(self, origin_id: Any) -> dict[str, str]:
        distribution = getattr(getattr(self.parent, "parent", None), "instance", None)
        if not isinstance(distribution, Distribution):
            return {}
        stored = next((o for o in distribution.origins.all() if o.origin_id == origin_id), None)
        return {name: getattr(stored, name) for name in ORIGIN_SECRET_FIELDS} if stored is not None else {}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        probe = dict(attrs)
        if attrs.get("kind") == "s3" and not set(CREDENTIAL_FIELDS) & set(attrs):
            probe.update(self._stored_credentials(attrs.get("origin_id")))
        for name, value in self._stored_secrets(attrs.get("origin_id")).items():
            probe.setdefault(name, value)
        instance = Origin(**probe)
        clean_model(instance, exclude=["distribution"])
        cleaned = _model_fields_from(attrs, instance)
        cleaned["domain_name"] = instance.domain_name
        if instance.kind == "s3":
            cleaned["region"] = instance.region
        return cleaned


class OriginGroupSerializer(serializers.ModelSerializer):
    failover_status_codes = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)

    class Meta:
        model = OriginGroup
        fields = ("group_id", "primary_origin_id", "secondary_origin_id", "failover_status_codes")
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = OriginGroup(**attrs)
        clean_model(instance, exclude=["distribution"])
        return _model_fields_from(attrs, instance)


class CacheBehaviorSerializer(serializers.ModelSerializer):
    """A policy given by id or by name is answered with both: the id to write back, the name to read.

    The id stays the value of `cache_policy` because a name is unique only per owner, so a
    read-modify-write by staff on another user's distribution would not round-trip a name.
    """

    cache_policy = PolicyRefField(CachePolicy)
    cache_policy_name = serializers.CharField(source="cache_policy.name", read_only=True)
    origin_request_policy = PolicyRefField(OriginRequestPolicy, required=False, allow_null=True, default=None)
    origin_request_policy_name = serializers.CharField(source="origin_request_policy.name", read_only=True,
                                                       allow_null=True)
    trusted_key_groups = KeyGroupListField(
        child=KeyGroupRefField(), required=False, default=list, max_length=signed_urls.MAX_GROUPS_PER_BEHAVIOR,
        help_text="Signed URLs and cookies: key group ids (at most 4); when any are listed, every request on the "
                  "behavior needs a signature by one of their keys.")

    class Meta:
        model = CacheBehavior
        fields = ("path_pattern", "target_origin_id", "viewer_protocol_policy", "allowed_methods", "cached_methods",
                  "cache_policy", "cache_policy_name", "origin_request_policy", "origin_request_policy_name",
                  "compress", "trusted_key_groups")
        validators: list[Any] = []

    def validate_trusted_key_groups(self, value: list[KeyGroup]) -> list[KeyGroup]:
        ids = [g.pk for g in value]
        if len(set(ids)) != len(ids):
            raise serializers.ValidationError("a key group is listed twice")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = CacheBehavior(**{k: v for k, v in attrs.items() if k != "trusted_key_groups"})
        clean_model(instance, exclude=["distribution", "position"])
        return attrs


def _edge_count_schema(done: str, description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": {
        "edges_total": {"type": "integer", "description": "Edges that must have it (drained edges and edges "
                                                          "unhealthy past the grace period excluded)."},
        done: {"type": "integer"},
        "edges_pending": {"type": "array", "items": {"type": "string"}, "description": "Names of those that do not yet."},
        "detail": {"type": "string", "description": "Present when there is no edge to count."}},
        "required": ["edges_total", done, "edges_pending"]}


DEPLOYMENT_SCHEMA = _edge_count_schema("edges_current", "How many edges run the distribution's last change.")
ACKNOWLEDGEMENTS_SCHEMA = _edge_count_schema("edges_acknowledged", "How many edges applied the invalidation.")


class DistributionSerializer(serializers.ModelSerializer):
    domain_name = serializers.CharField(read_only=True)
    status = serializers.SerializerMethodField()
    deployment = serializers.SerializerMethodField()
    owner = serializers.CharField(source="owner.username", read_only=True)
    aliases = serializers.ListField(child=serializers.CharField(max_length=253), required=False, max_length=100)
    origins = OriginSerializer(many=True)
    origin_groups = OriginGroupSerializer(many=True, required=False)
    cache_behaviors = CacheBehaviorSerializer(many=True)
    custom_error_responses = serializers.JSONField(required=False)

    class Meta:
        model = Distribution
        fields = ("id", "domain_name", "status", "deployment", "etag", "owner", "comment", "enabled", "aliases",
                  "default_root_object", "origins", "origin_groups", "cache_behaviors", "custom_error_responses",
                  "config_version", "created_at", "updated_at")
        read_only_fields = ("id", "etag", "config_version", "created_at", "updated_at")

    def _serving(self) -> list[selectors.ServingEdge]:
        if "serving_edges" not in self.context:
            self.context["serving_edges"] = selectors.edges_serving()
        return self.context["serving_edges"]

    def get_status(self, obj: Distribution) -> str:
        return selectors.distribution_status(obj, self._serving())

    @extend_schema_field(DEPLOYMENT_SCHEMA)
    def get_deployment(self, obj: Distribution) -> dict[str, Any]:
        return selectors.distribution_deployment(obj, self._serving())

    def to_representation(self, instance: Distribution) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["aliases"] = sorted(alias.name for alias in instance.alias_set.all())
        data["cache_behaviors"] = CacheBehaviorSerializer(
            sorted(instance.cache_behaviors.all(), key=lambda b: (b.path_pattern == "*", b.position)),
            many=True, context=self.context).data
        return data

    def validate_aliases(self, value: list[str]) -> list[str]:
        cleaned: list[str] = []
        for name in value:
            alias = Alias(name=name)
            try:
                alias.clean()
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.message_dict["name"]) from exc
            if alias.name in cleaned:
                raise serializers.ValidationError(f"alias {alias.name!r} is listed twice")
            cleaned.append(alias.name)
        return sorted(cleaned)

    def validate_custom_error_responses(self, value: Any) -> list[dict[str, Any]]:
        try:
            rules.validate_custom_error_responses(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return rules.normalise_custom_error_responses(value)

    def validate_default_root_object(self, value: str) -> str:
        probe = Distribution(default_root_object=value)
        try:
            probe.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["default_root_object"]) from exc
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current = self.instance
        origins = attrs.get("origins")
        if origins is None and current is not None:
            origins = list(current.origins.values("origin_id"))
        groups = attrs.get("origin_groups")
        if groups is None:
            groups = list(current.origin_groups.values()) if current is not None else []
        behaviors = attrs.get("cache_behaviors")
        if behaviors is None and current is not None:
            behaviors = list(current.cache_behaviors.order_by("position").values("path_pattern", "target_origin_id"))
        errors = rules.check_distribution_structure(origins or [], groups, behaviors or [])
        if errors:
            lengths = {"origins": len(origins or []), "origin_groups": len(groups), "cache_behaviors": len(behaviors or [])}
            detail: dict[str, Any] = {}
            for section, found in errors.items():
                if isinstance(found, str):
                    detail[section] = [found]
                else:
                    detail[section] = [
                        {field: [message] for field, message in found.get(i, {}).items()} for i in range(lengths[section])
                    ]
            raise serializers.ValidationError(detail)
        return attrs


# ---- Invalidations, edges, versions ----

class InvalidationSerializer(serializers.ModelSerializer):
    paths = serializers.ListField(child=serializers.CharField(max_length=MAX_PATH, trim_whitespace=False), required=False,
                                  default=list)
    tags = serializers.ListField(child=serializers.CharField(max_length=MAX_TAG), required=False, default=list)
    caller_reference = serializers.CharField(max_length=128, required=False)
    distribution_id = serializers.CharField(read_only=True)
    acknowledgements = serializers.SerializerMethodField()

    class Meta:
        model = Invalidation
        fields = ("id", "distribution_id", "paths", "tags", "caller_reference", "status", "acknowledgements",
                  "created_at", "completed_at")
        read_only_fields = ("id", "status", "created_at", "completed_at")
        validators: list[Any] = []

    @extend_schema_field(ACKNOWLEDGEMENTS_SCHEMA)
    def get_acknowledgements(self, obj: Invalidation) -> dict[str, Any]:
        if "serving_edges" not in self.context:
            self.context["serving_edges"] = selectors.edges_serving()
        return selectors.invalidation_acknowledgements(obj, self.context["serving_edges"])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            rules.validate_invalidation(attrs.get("paths", []), attrs.get("tags", []))
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


EDGE_STAFF_ONLY = ("url", "last_error")


class EdgeNodeSerializer(serializers.ModelSerializer):
    """An edge as any user sees it; its admin URL and last error are for staff only.

    Those two are output-only like the rest but declared optional rather than read-only, so
    the schema does not promise them in every answer (a read-only field is listed as required).
    """

    class Meta:
        model = EdgeNode
        fields = ("name", "pop", "url", "applied_version", "applied_at", "last_error", "invalidation_seq", "last_seen",
                  "healthy", "unhealthy_since", "push_retry_at", "drained", "created_at")
        read_only_fields = tuple(name for name in fields if name not in EDGE_STAFF_ONLY)
        extra_kwargs = {"url": {"required": False, "help_text": "Staff only: the edge's admin API."},
                        "last_error": {"required": False, "help_text": "Staff only: why the edge refused a config."}}

    def to_representation(self, instance: EdgeNode) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not request.user.is_staff:
            for name in EDGE_STAFF_ONLY:
                data.pop(name, None)
        return data


class EdgeUpdateSerializer(serializers.ModelSerializer):
    """What staff change on a registered edge through the API: whether it is drained."""

    class Meta:
        model = EdgeNode
        fields = ("drained",)


class EdgeRegistrationSerializer(serializers.ModelSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once: only its hash is stored.")

    class Meta:
        model = EdgeNode
        fields = ("name", "pop", "url", "token")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        clean_model(EdgeNode(token_hash="0" * 64, **attrs), exclude=["token_hash"])
        return attrs


class ConfigVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = ConfigVersion
        fields = ("version", "created_at", "created_by", "reason", "document")
        read_only_fields = fields



# ---- A distribution's config history ----

VERSION_NUMBER = {"min_value": 1, "max_value": 2**63 - 1}


class DistributionVersionSerializer(serializers.ModelSerializer):
    """One version in a distribution's config history: what made it, and whether the edges run it."""

    version = serializers.IntegerField(source="version_id", read_only=True)
    change = serializers.CharField(read_only=True, help_text="added (created or enabled), changed, or removed "
                                                             "(disabled or deleted)")
    created_at = serializers.DateTimeField(source="version.created_at", read_only=True)
    created_by = serializers.CharField(source="version.created_by.username", read_only=True, default=None,
                                       allow_null=True, help_text="null for a change no user made (a policy of "
                                                                  "another user's, a re-publish)")
    reason = serializers.CharField(source="version.reason", read_only=True)
    deployed = serializers.SerializerMethodField(help_text="Every edge that serves distributions runs this "
                                                           "version or a later one.")
    current = serializers.SerializerMethodField(help_text="The newest version in this history: what the "
                                                          "distribution is now.")

    class Meta:
        model = ConfigVersionChange
        fields = ("version", "change", "created_at", "created_by", "reason", "deployed", "current")
        read_only_fields = fields

    def get_deployed(self, obj: ConfigVersionChange) -> bool:
        serving = self.context["serving_edges"]
        return bool(serving) and all(edge.applied_version >= obj.version_id for edge in serving)

    def get_current(self, obj: ConfigVersionChange) -> bool:
        return obj.version_id == self.context["current_version"]


class RollbackSerializer(serializers.Serializer):
    version = serializers.IntegerField(**VERSION_NUMBER, help_text="The config version whose settings of this "
                                                                   "distribution to restore.")


class DiffQuerySerializer(serializers.Serializer):
    """`from` and `to` are Python keywords, hence the fields dict."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {"from": serializers.IntegerField(required=False, **VERSION_NUMBER),
                "to": serializers.IntegerField(required=False, **VERSION_NUMBER)}


DIFF_SCHEMA = {
    "type": "object",
    "properties": {
        "distribution_id": {"type": "string"},
        "from": {"type": "integer", "nullable": True},
        "to": {"type": "integer", "nullable": True},
        "from_served": {"type": "boolean", "description": "`from` holds the distribution (else it was not "
                                                          "created yet, or disabled, and its side is empty)"},
        "to_served": {"type": "boolean"},
        "changes": {"type": "array", "items": {
            "type": "object", "required": ["path", "old", "new"],
            "properties": {"path": {"type": "string", "description": "e.g. origins[web].http_port, "
                                                                     "cache_behaviors[/api/*].compress"},
                           "old": {"description": "null: not set in `from`; secrets are \"<secret>\""},
                           "new": {"description": "null: not set in `to`"}}}},
    },
    "required": ["distribution_id", "from", "to", "from_served", "to_served", "changes"],
}
