"""The Django admin: every model, distributions with their parts inline.

Validation is the models' own (`full_clean` through the model forms) plus, for the rules
that span a distribution's parts, `rules.check_distribution_structure`: the same rules
the API applies. Writes go through the services, as the API's do: the admin builds the
service's input from its forms, and what a service refuses is shown as a form error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse

from . import rules, selectors, services
from .models import (
    Alias,
    CacheBehavior,
    CachePolicy,
    ConfigVersion,
    Distribution,
    EdgeNode,
    Invalidation,
    KeyGroup,
    Origin,
    OriginGroup,
    OriginRequestPolicy,
    PublicKey,
)

T = TypeVar("T")


def _inline_rows(data: Any, prefix: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of another inline formset of the same POST, skipping deleted and empty ones."""
    try:
        total = int(data.get(f"{prefix}-TOTAL_FORMS", 0))
    except (TypeError, ValueError):
        return []
    rows = []
    for i in range(total):
        if data.get(f"{prefix}-{i}-DELETE"):
            continue
        row = {field: (data.get(f"{prefix}-{i}-{field}") or "").strip() for field in fields}
        if any(row.values()):
            rows.append(row)
    return rows


class _Refused(Exception):
    """A service refused what the forms accepted; `errors` are its words by form field."""

    def __init__(self, errors: dict[str | None, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _become(obj: models.Model, stored: models.Model) -> None:
    """The admin goes on with its own `obj` (log entry, message, redirect): make it the stored row."""
    obj.__dict__.update(stored.__dict__)


class ServiceAdmin(admin.ModelAdmin):
    """An admin whose saves are service calls (`self.call`).

    A service runs after the forms validated, inside the view's transaction. When it refuses
    (a `Conflict`, a `ValidationError`), the transaction rolls back and the view runs once more
    on the same POST with the refusal added to the form: the page shows what was typed and
    why it was refused, as for any other form error. A `PermissionError` is a 403.
    """

    def call(self, form: forms.BaseForm, service: Callable[..., T], **kwargs: Any) -> T:
        try:
            return service(**kwargs)
        except PermissionError as exc:
            raise PermissionDenied(str(exc)) from exc
        except services.Conflict as exc:
            field = next((key for key in exc.conflict if key in form.fields), None)
            raise _Refused({field: [exc.detail]}) from exc
        except ValidationError as exc:
            found = exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
            errors: dict[str | None, list[str]] = {}
            for name, words in found.items():
                errors.setdefault(name if name in form.fields else None, []).extend(words)
            raise _Refused(errors) from exc

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Refused as refused:
            request.refused_by_service = refused.errors
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change, **kwargs)
        refused: dict[str | None, list[str]] | None = getattr(request, "refused_by_service", None)
        if not refused:
            return form_class

        def clean(form: forms.ModelForm) -> Any:
            data = form_class.clean(form)
            for field, words in refused.items():
                form.add_error(field, words)
            return data

        return type(form_class.__name__, (form_class,), {"clean": clean})


class CacheBehaviorFormSet(BaseInlineFormSet):
    """Checks the whole distribution: origins, groups and behaviors together."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        forms_in_order = sorted(
            (f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")),
            key=lambda f: (f.cleaned_data.get("position") or 0),
        )
        behaviors = [{"path_pattern": f.cleaned_data.get("path_pattern"),
                      "target_origin_id": f.cleaned_data.get("target_origin_id")} for f in forms_in_order]
        origins = _inline_rows(self.data, "origins", ("origin_id",))
        groups = _inline_rows(self.data, "origin_groups", ("group_id", "primary_origin_id", "secondary_origin_id"))
        errors = rules.check_distribution_structure(origins, groups, behaviors)
        problems: list[str] = []
        for section, found in errors.items():
            if isinstance(found, str):
                problems.append(found)
                continue
            for index, fields in found.items():
                for field, message in fields.items():
                    if section == "cache_behaviors":
                        forms_in_order[index].add_error(field, message)
                    else:
                        problems.append(f"{section.replace('_', ' ')}: {message}")
        if problems:
            raise forms.ValidationError(problems)


class AliasForm(forms.ModelForm):
    def validate_unique(self) -> None:
        """An alias taken by another distribution is the service's refusal, with its words
        (which distribution, for staff); duplicates within the form are still the formset's."""


class AliasInline(admin.TabularInline):
    model = Alias
    form = AliasForm
    extra = 0


class OriginForm(forms.ModelForm):
    """S3 credentials are write-only, as in the API: the secret and the session token are never
    rendered back, and left blank with the access key id unchanged they keep the stored ones.
    Clear the access key id to remove the credentials. The access key id is shown: it names
    the key (as AWS's console and every signed request do) and is not the secret."""

    secret_access_key = forms.CharField(
        max_length=256, required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: leave blank to keep the stored secret.")
    session_token = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only, for temporary (STS) credentials: leave blank to keep the stored one.")

    client_key = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only PEM private key of the client certificate: leave blank to keep the stored one, "
                  "or clear the client certificate to remove both.")
    secret_header_value = forms.CharField(
        max_length=1783, required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: leave blank to keep the stored value, or clear the header name to remove both.")

    DEFAULTED = ("addressing_style", "signing_protocol", "ssl_protocols")  # a form without them takes the default

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.DEFAULTED:
            self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in self.DEFAULTED:
            data[name] = data.get(name) or Origin._meta.get_field(name).get_default()
        stored = self.instance  # the stored row until _post_clean copies the form onto it
        if (stored.pk and stored.has_credentials and not data.get("secret_access_key")
                and data.get("access_key_id") == stored.access_key_id):
            data["secret_access_key"] = stored.secret_access_key
            data["session_token"] = data.get("session_token") or stored.session_token
        if stored.pk and not data.get("client_key") and data.get("client_certificate"):
            data["client_key"] = stored.client_key
        if stored.pk and not data.get("secret_header_value") and data.get("secret_header_name"):
            data["secret_header_value"] = stored.secret_header_value
        return data


class OriginInline(admin.StackedInline):
    model = Origin
    form = OriginForm
    extra = 0
    fieldsets = (
        (None, {"fields": ("origin_id", "kind", "domain_name", "origin_path", "protocol_policy",
                           ("http_port", "https_port"), ("connect_timeout", "read_timeout", "connection_attempts"),
                           "custom_headers")}),
        ("S3", {"fields": ("bucket", "region", "endpoint_url", "addressing_style"), "classes": ("collapse",)}),
        ("S3 origin access control", {"fields": ("signing_behavior", "signing_protocol", "access_key_id",
                                                 "secret_access_key", "session_token"),
                                      "classes": ("collapse",)}),
        ("HTTPS to the origin", {"fields": ("ssl_protocols", "ca_bundle", "client_certificate", "client_key"),
                                 "classes": ("collapse",)}),
        ("Secret origin header", {"fields": ("secret_header_name", "secret_header_value"), "classes": ("collapse",)}),
    )


class OriginGroupInline(admin.TabularInline):
    model = OriginGroup
    extra = 0


class CacheBehaviorInline(admin.TabularInline):
    model = CacheBehavior
    formset = CacheBehaviorFormSet
    extra = 0
    ordering = ("position",)
    fields = ("position", "path_pattern", "target_origin_id", "viewer_protocol_policy", "allowed_methods",
              "cached_methods", "cache_policy", "origin_request_policy", "compress", "trusted_key_groups")


def _kept_forms(formset: Any) -> list[forms.ModelForm]:
    return [f for f in formset.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]


def _values(form: forms.ModelForm, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The form's fields as the service takes them: the instance's values, as its `clean()` left them."""
    return {name: getattr(form.instance, name) for name in form.cleaned_data if name not in skip}


PART_SKIP = ("id", "DELETE", "distribution")


def _distribution_input(form: Any, formsets: Any) -> dict[str, Any]:
    """What the API's serializer would hand the service for the same distribution."""
    data = _values(form, skip=("owner",))
    by_model = {formset.model: formset for formset in formsets}
    data["aliases"] = sorted(f.instance.name for f in _kept_forms(by_model[Alias]))
    data["origins"] = [_values(f, PART_SKIP) for f in _kept_forms(by_model[Origin])]
    data["origin_groups"] = [_values(f, PART_SKIP) for f in _kept_forms(by_model[OriginGroup])]
    behaviors = sorted(_kept_forms(by_model[CacheBehavior]), key=lambda f: f.cleaned_data.get("position") or 0)
    data["cache_behaviors"] = [
        _values(f, (*PART_SKIP, "position", "trusted_key_groups"))
        | {"trusted_key_groups": list(f.cleaned_data.get("trusted_key_groups") or [])}
        for f in behaviors
    ]
    return data


@admin.register(Distribution)
class DistributionAdmin(ServiceAdmin):
    list_display = ("id", "domain_name", "comment", "owner", "enabled", "status", "updated_at")
    list_filter = ("enabled", "owner")
    search_fields = ("id", "comment", "alias_set__name", "origins__domain_name")
    readonly_fields = ("id", "domain_name", "status", "etag", "config_version", "created_at", "updated_at")
    fields = ("id", "domain_name", "status", "owner", "comment", "enabled", "default_root_object",
              "custom_error_responses", "etag", "config_version", "created_at", "updated_at")
    inlines = (AliasInline, OriginInline, OriginGroupInline, CacheBehaviorInline)

    @admin.display(description="status")
    def status(self, obj: Distribution) -> str:
        return selectors.distribution_status(obj, selectors.edges_serving()) if obj.pk else "-"

    def has_delete_permission(self, request: HttpRequest, obj: Distribution | None = None) -> bool:
        # Like the API: an enabled distribution must be disabled before it can be deleted.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.enabled)

    def save_model(self, request: HttpRequest, obj: Distribution, form: Any, change: bool) -> None:
        """Nothing yet: the service writes the distribution and its parts together (`save_related`)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        data = _distribution_input(form, formsets)
        owner = form.cleaned_data.get("owner")
        if change:
            stored = self.call(form, services.distribution_update, distribution=form.instance, user=request.user,
                               data=data, owner=owner)
        else:
            stored = self.call(form, services.distribution_create, user=request.user, data=data, owner=owner)
        _become(form.instance, stored)
        for formset in formsets:
            formset.save(commit=False)  # writes nothing; lists what changed, for the admin's history

    def delete_model(self, request: HttpRequest, obj: Distribution) -> None:
        services.distribution_delete(distribution=obj, user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Distribution]) -> None:
        enabled = list(queryset.filter(enabled=True).values_list("id", flat=True))
        if enabled:
            self.message_user(request, f"not deleted (enabled: disable first): {', '.join(enabled)}", messages.WARNING)
        for obj in queryset.filter(enabled=False):
            services.distribution_delete(distribution=obj, user=request.user)


class _PolicyAdmin(ServiceAdmin):
    list_display = ("name", "managed", "owner", "updated_at")
    list_filter = ("managed",)
    search_fields = ("name", "comment")
    readonly_fields = ("managed", "created_at", "updated_at")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or services.policy_is_writable(obj))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or services.policy_is_writable(obj))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = _values(form)
        if change:
            stored = self.call(form, services.policy_update, policy=obj, user=request.user, data=data)
        else:
            data["owner"] = data.get("owner") or request.user
            stored = self.call(form, services.policy_create, model=type(obj), user=request.user, data=data)
        _become(obj, stored)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.policy_delete(policy=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            services.policy_delete(policy=obj)


@admin.register(CachePolicy)
class CachePolicyAdmin(_PolicyAdmin):
    list_display = ("name", "managed", "owner", "min_ttl", "default_ttl", "max_ttl", "heuristic_freshness",
                    "updated_at")


@admin.register(OriginRequestPolicy)
class OriginRequestPolicyAdmin(_PolicyAdmin):
    pass


# ---- Signed URLs and cookies ----

@admin.register(PublicKey)
class PublicKeyAdmin(ServiceAdmin):
    """Upload once; afterwards only the name and comment change. A key a group holds is not deletable."""

    list_display = ("name", "id", "algorithm", "owner", "created_at")
    search_fields = ("id", "name", "comment")
    fields = ("id", "name", "comment", "owner", "encoded_key", "algorithm", "created_at")
    readonly_fields = ("id", "algorithm", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*self.readonly_fields, "encoded_key") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or not obj.key_groups.exists())

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = _values(form)
        if change:
            stored = self.call(form, services.public_key_update, key=obj, data=data)
        else:
            data["owner"] = data.get("owner") or request.user
            stored = self.call(form, services.public_key_create, user=request.user, data=data)
        _become(obj, stored)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.public_key_delete(key=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            try:
                services.public_key_delete(key=obj)
            except services.Conflict as exc:
                self.message_user(request, exc.detail, messages.WARNING)


@admin.register(KeyGroup)
class KeyGroupAdmin(ServiceAdmin):
    """1 to 5 public keys; a group a cache behavior trusts is not deletable."""

    list_display = ("name", "id", "owner", "updated_at")
    search_fields = ("id", "name", "comment")
    fields = ("id", "name", "comment", "owner", "public_keys", "created_at", "updated_at")
    readonly_fields = ("id", "created_at", "updated_at")
    filter_horizontal = ("public_keys",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or not obj.behaviors.exists())

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Nothing yet: the service writes the group and its keys together (`save_related`)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        data = _values(form, skip=("public_keys",))
        keys = list(form.cleaned_data.get("public_keys") or [])
        if not 1 <= len(keys) <= 5:
            raise _Refused({"public_keys": ["a key group holds 1 to 5 public keys"]})
        data["public_keys"] = keys
        if change:
            stored = self.call(form, services.key_group_update, group=form.instance, user=request.user, data=data)
        else:
            data["owner"] = data.get("owner") or request.user
            stored = self.call(form, services.key_group_create, user=request.user, data=data)
        _become(form.instance, stored)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.key_group_delete(group=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            try:
                services.key_group_delete(group=obj)
            except services.Conflict as exc:
                self.message_user(request, exc.detail, messages.WARNING)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class InvalidationAddForm(forms.ModelForm):
    """Paths and tags one per line instead of raw JSON.

    The lists are then checked by the model's `clean()`, that is by `rules.py`, the rules the
    API applies, and a reused caller_reference by the service's own rule, so a refusal shows
    by its field before anything is stored. The reference is a plain form field: the model's
    unique constraint would refuse every reuse, where the API returns the earlier invalidation.
    """

    paths = forms.CharField(widget=forms.Textarea(attrs={"rows": 8, "cols": 80}), required=False,
                            help_text="One path per line, each starting with '/'; '*' is a wildcard, as in the API.")
    tags = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), required=False,
                           help_text="Surrogate-Key tags, one per line.")
    caller_reference = forms.CharField(max_length=128, required=False,
                                       help_text="Optional: generated when blank. Reusing one with the same paths and "
                                                 "tags returns the invalidation made with it.")

    class Meta:
        model = Invalidation
        fields = ("distribution", "paths", "tags")

    def clean_paths(self) -> list[str]:
        return _lines(self.cleaned_data["paths"])

    def clean_tags(self) -> list[str]:
        return _lines(self.cleaned_data["tags"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        reference, distribution = data.get("caller_reference"), data.get("distribution")
        if not reference or distribution is None:
            return data
        existing = Invalidation.objects.filter(distribution=distribution, caller_reference=reference).first()
        if existing is not None:
            try:
                services.invalidation_check_reuse(existing=existing, paths=data.get("paths", []),
                                                  tags=data.get("tags", []))
            except services.Conflict as exc:
                self.add_error("caller_reference", exc.detail)
        return data


@admin.register(Invalidation)
class InvalidationAdmin(ServiceAdmin):
    """Created through the service, like the API's; immutable afterwards, like CloudFront's.

    Never deleted either: they are a history, and the ordered sequence (`seq`) the edges
    acknowledge and catch up from.
    """

    list_display = ("id", "distribution", "status", "created_at", "completed_at")
    list_filter = ("status",)
    search_fields = ("id", "distribution__id", "caller_reference")
    readonly_fields = ("id", "status", "created_by", "created_at", "completed_at")
    fields = ("id", "distribution", "paths", "tags", "caller_reference", "status", "created_by", "created_at",
              "completed_at")
    add_fields = ("distribution", "paths", "tags", "caller_reference")

    def get_fields(self, request: HttpRequest, obj: Invalidation | None = None) -> Any:
        return self.add_fields if obj is None else self.fields

    def get_form(self, request: HttpRequest, obj: Invalidation | None = None, change: bool = False,
                 **kwargs: Any) -> Any:
        if obj is None:
            kwargs.update(form=InvalidationAddForm, fields=InvalidationAddForm.Meta.fields)
        return super().get_form(request, obj, change, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Invalidation, form: Any, change: bool) -> None:
        created, new = self.call(
            form, services.invalidation_create, distribution=obj.distribution, user=request.user, paths=obj.paths, tags=obj.tags,
            caller_reference=form.cleaned_data["caller_reference"])
        if not new:
            self.message_user(request, f"caller_reference {created.caller_reference!r} was used before: this is "
                                       f"invalidation {created.id}, made then; nothing new was sent to the edges",
                              messages.WARNING)
        _become(obj, created)


@admin.register(EdgeNode)
class EdgeNodeAdmin(ServiceAdmin):
    """Edges are listed and edited here, never added: registration hands out the edge's token,
    shown once by `manage.py edge_register` or `POST /api/v1/edges/`, and no page of this admin
    shows a secret. The list page says so (templates/admin/distributions/edgenode/change_list.html).
    """

    list_display = ("name", "pop", "url", "applied_version", "applied_at", "healthy", "drained", "last_seen", "last_error")
    list_filter = ("healthy", "drained", "pop")
    search_fields = ("name", "pop", "url")
    # The fleet protocol (heartbeats, pushes, acks) owns these; an edit here would only lie about the edge.
    readonly_fields = ("token_hash", "applied_version", "applied_at", "last_error", "invalidation_seq", "last_seen",
                       "healthy", "unhealthy_since", "push_failures", "push_retry_at", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: EdgeNode, form: Any, change: bool) -> None:
        _become(obj, self.call(form, services.edge_update, edge=obj, data=_values(form)))

    def delete_model(self, request: HttpRequest, obj: EdgeNode) -> None:
        services.edge_delete(edge=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[EdgeNode]) -> None:
        for obj in queryset:
            services.edge_delete(edge=obj)


@admin.register(ConfigVersion)
class ConfigVersionAdmin(admin.ModelAdmin):
    list_display = ("version", "reason", "created_by", "created_at")
    search_fields = ("reason",)
    readonly_fields = ("version", "document", "reason", "created_by", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
