"""Settings for the control plane, all from the environment.

Every value has a local default so `make run` works on a fresh machine; bad values fail
loudly with ImproperlyConfigured instead of being silently ignored. Secrets may also be
read from `<NAME>_FILE`.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from cdncontract.errors import ContractError
from cdncontract.names import hostname
from controlplane import broker

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


VAR_DIR = Path(os.environ.get("CDN_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off")
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()


def _secret_keys() -> list[str]:
    """Fernet keys for secrets at rest (S3 credentials): the first encrypts, all decrypt.

    Comma-separated in CDN_SECRET_KEYS (or CDN_SECRET_KEYS_FILE); with DEBUG and none set, one
    is generated under var/ like SECRET_KEY. Without DEBUG none may be set until a secret is
    stored: a check (`manage.py check`, `migrate`) then refuses to run, and so does saving one.
    """
    from cryptography.fernet import Fernet

    raw = env_str("CDN_SECRET_KEYS").strip()
    if not raw and DEBUG:
        key_file = VAR_DIR / "secret_keys"
        try:  # created 0600 by exactly one process: two first starts never make two keys
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(Fernet.generate_key().decode())
        raw = key_file.read_text().strip()
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured(
                f"CDN_SECRET_KEYS: key {position} is not a Fernet key (32 url-safe base64-encoded bytes; make one "
                "with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from None
    return keys


CDN_SECRET_KEYS = _secret_keys()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# ---- Behind a proxy ----
# A TLS-terminating proxy (docs/operations.md, "The control plane behind HTTPS") tells the
# viewer's scheme in a header. Trusting it is opt-in: a client that reaches Django directly
# could send the header itself, so only a proxy that always sets or strips it may be named.


def proxy_ssl_header() -> tuple[str, str] | None:
    raw = env_str("SECURE_PROXY_SSL_HEADER").strip()
    if not raw:
        return None
    header, _, value = (part.strip() for part in raw.partition(","))
    if not re.fullmatch(r"HTTP_[A-Z0-9_]+", header) or not value or "," in value:
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER={raw!r} must be HTTP_<HEADER>,<value>, e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    return header, value


SECURE_PROXY_SSL_HEADER = proxy_ssl_header()
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
# How many proxies in front of gunicorn append the address they were reached from to
# X-Forwarded-For; the client is that many entries from the right (controlplane/login.py).
# 0 (the default) uses the connecting address, so a client's own header counts for nothing.
CDN_TRUSTED_PROXY_COUNT = env_int("CDN_TRUSTED_PROXY_COUNT", 0, minimum=0)

# ---- HTTPS ----
# Off by default so that `make run` and the tests work over plain HTTP on loopback; a site
# behind TLS turns them on (docker-compose's .env.example does, docs/operations.md, "The
# control plane behind HTTPS"), and `manage.py check --deploy` then has nothing to warn about.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Paths (regular expressions without the leading slash) answered over HTTP even with the
# redirect on: e.g. `^api/v1/edge/` for edges that reach the control plane on a private network.
SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", [])
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
for _pattern in SECURE_REDIRECT_EXEMPT:
    try:
        re.compile(_pattern)
    except re.error as exc:
        raise ImproperlyConfigured(f"SECURE_REDIRECT_EXEMPT: {_pattern!r} is not a regular expression: {exc}") from None

CDN_DOMAIN_SUFFIX = env_str("CDN_DOMAIN_SUFFIX", "cdn.localhost").strip().lower().strip(".")
if not CDN_DOMAIN_SUFFIX:
    raise ImproperlyConfigured("CDN_DOMAIN_SUFFIX must not be empty")
try:  # every distribution's domain name ends with it, and edges take only valid host names
    hostname(CDN_DOMAIN_SUFFIX, what="CDN_DOMAIN_SUFFIX")
except ContractError as exc:
    raise ImproperlyConfigured(exc.problem) from None

# Refuse origins whose names resolve to loopback, link-local, private or unspecified addresses
# (cdncontract/addresses.py), when saved and, through the config document, at every edge's
# connect time. On in production; DEBUG (make run, the tests) turns the default off, as the
# local demo's origins are on loopback (docs/operations.md, "Origins and the operator's network").
CDN_REFUSE_INTERNAL_ORIGINS = env_bool("CDN_REFUSE_INTERNAL_ORIGINS", not DEBUG)

# How often edges report; an edge that misses 3 heartbeats is unhealthy.
CDN_HEARTBEAT_SECONDS = env_int("CDN_HEARTBEAT_SECONDS", 5, minimum=1)
# How long an unhealthy edge still counts as one that should run every change and apply
# every invalidation before `Deployed`/`Completed` stop waiting for it (docs/operations.md).
CDN_UNHEALTHY_GRACE_SECONDS = env_int("CDN_UNHEALTHY_GRACE_SECONDS", 60, minimum=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_htmx",
    "distributions",
    "distributions.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as axes asks: it turns a login refused for a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict[str, object]:
    """DATABASE_URL; PostgreSQL connections are kept DATABASE_CONN_MAX_AGE seconds (60), checked
    before reuse: a new connection per request (PostgreSQL forks a backend for each) was a
    fifth of the web's time under a fleet's heartbeats (docs/performance.md)."""
    url = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'controlplane.sqlite3'}")
    default_age = 0 if url.startswith("sqlite") else 60
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", default_age),
                                       conn_health_checks=True)
    except Exception as exc:  # dj_database_url raises bare ValueError/KeyError on unknown schemes
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} is not a valid database URL: {exc}") from exc
    if config.get("ENGINE") == "django.db.backends.sqlite3":
        # Several processes (web, worker, beat) share the file in `make run`.
        config.setdefault("OPTIONS", {})
        config["OPTIONS"].update({"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"})
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# ---- Login throttling ----
# django-axes in front of every password check (controlplane/login.py says how a login view
# gets it): after CDN_LOGIN_FAILURE_LIMIT failures within CDN_LOGIN_COOLOFF_SECONDS of each
# other, for one username (from any address) or from one address (for any username), logins
# for it are refused, the right password too, until the cool-off after the last failure has
# passed. Failures during a lockout are not counted, so it ends one cool-off after the
# failure that started it however long an attacker keeps trying. The count is in the
# database, shared by every process; a success clears that account's failures from that address.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("CDN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("CDN_LOGIN_COOLOFF_SECONDS", 900, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "controlplane.login.LoginAttempts"
AXES_CLIENT_IP_CALLABLE = "controlplane.login.client_address"
AXES_LOCKOUT_CALLABLE = "controlplane.login.lockout_response"
# Failures only: no table of every successful login (and its address) growing forever.
AXES_DISABLE_ACCESS_LOG = True
# The log's failure and lockout lines name the username and address (passwords are always masked).
AXES_SENSITIVE_PARAMETERS: list[str] = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "distributions.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "distributions.api.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "distributions.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CDN control plane API",
    "DESCRIPTION": "Distributions, origins, cache behaviors, policies, invalidations, edges and config versions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Bodies are JSON: the form parsers stay for DRF's browsable pages, but a form cannot carry
    # the nested objects of a distribution or a policy, so the schema does not offer them.
    "PARSER_WHITELIST": ["distributions.api.parsers.BoundedJSONParser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
LOGIN_URL = "rest_framework:login"  # any active user (the admin's login admits staff only)

# ---- Celery ----
# The default broker needs no server: controlplane/broker.py's atomic filesystem transport
# under var/broker/. Its folders are made by the first process that connects, not here, so
# importing settings (collectstatic in an image build) creates nothing for another broker.
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or f"{broker.SCHEME}://"  # set but empty: the default too
_broker_scheme = CELERY_BROKER_URL.split("://", 1)[0]
if _broker_scheme == broker.SCHEME:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "staging_folder": str(_broker_dir / "staging"),
        "bad_folder": str(_broker_dir / "bad"),
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": 0.05,
    }
elif _broker_scheme == "filesystem":
    raise ImproperlyConfigured(f"CELERY_BROKER_URL={CELERY_BROKER_URL!r}: kombu's filesystem transport can hand a "
                               f"worker a half-written message (celery/kombu#1551); use {broker.SCHEME}:// "
                               "(the default) or leave it unset")
elif _broker_scheme.split("+", 1)[0] not in ("redis", "rediss", "amqp", "pyamqp", "memory", "sqla"):
    raise ImproperlyConfigured(f"CELERY_BROKER_URL={CELERY_BROKER_URL!r}: unsupported scheme")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CDN_FLEET_TICK_SECONDS = float(env_int("CDN_FLEET_TICK_SECONDS", 2, 1))
CELERY_BEAT_SCHEDULE = {
    # A tick that waited longer than one period is dropped: the next one does the same work.
    "fleet-tick": {"task": "distributions.tasks.fleet_tick", "schedule": CDN_FLEET_TICK_SECONDS,
                   "options": {"expires": CDN_FLEET_TICK_SECONDS}},
    "stats-prune": {"task": "distributions.tasks.stats_prune", "schedule": 3600.0},
}

# ---- Logging ----
# The log is for people: state changes (edge up or down, versions, invalidations, errors)
# at INFO; what repeats every few seconds (request lines, heartbeats, fleet ticks, Celery's
# per-task and per-schedule lines) only with LOG_LEVEL=DEBUG, errors always.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
_ROUTINE_LEVEL = "DEBUG" if LOG_LEVEL == "DEBUG" else ("WARNING" if LOG_LEVEL == "INFO" else LOG_LEVEL)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": [], "propagate": True},  # Django's own console handler would print twice
        "django.server": {"handlers": ["console"], "level": _ROUTINE_LEVEL, "propagate": False},
        "celery.worker.strategy": {"level": _ROUTINE_LEVEL},
        "celery.app.trace": {"level": _ROUTINE_LEVEL},
        "celery.beat": {"level": _ROUTINE_LEVEL},
        "httpx": {"level": _ROUTINE_LEVEL},  # the worker's pushes: a line per edge per push
        "axes": {"level": _ROUTINE_LEVEL},  # a line per login; its failures and lockouts are warnings
    },
}
