"""Configuration: one frozen `Settings`, read from the environment once.

Nothing else in the project reads `os.environ`. Each command names the variables it
needs (NEEDS below; the README's configuration section); a missing or malformed one raises `ConfigError`, which the
CLI prints as one line naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from shared.errors import ConfigError


def _url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.netloc and parts.scheme not in ("unix",):
            raise ConfigError(name, f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return raw

    return parse


def _int(minimum: int, maximum: int | None = None) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(name, f"must be {bound}, got {value}")
        return value

    return parse


HOURS_HINT = "HH:MM-HH:MM on one day, like 08:00-21:00 (24:00 allowed as the end; 00:00-24:00 means always)"


def parse_hours_window(text: str) -> tuple[int, int]:
    """A texting window 'HH:MM-HH:MM' as (start, end) minutes after local midnight.

    Same day only (start before end); '24:00' is allowed as the end. Raises ValueError.
    The one parser of the format: QUIET_HOURS, the firm CLI and the database rows.
    """
    parts = text.strip().split("-")
    if len(parts) != 2:
        raise ValueError(f"must be {HOURS_HINT}")
    minutes = []
    for part in parts:
        hh, sep, mm = part.strip().partition(":")
        if not (sep and len(hh) == 2 and len(mm) == 2 and hh.isdigit() and mm.isdigit()):
            raise ValueError(f"must be {HOURS_HINT}")
        h, m = int(hh), int(mm)
        if m > 59 or h > 24 or (h == 24 and m != 0):
            raise ValueError(f"must be {HOURS_HINT}")
        minutes.append(h * 60 + m)
    start, end = minutes
    if start == 24 * 60 or start >= end:
        raise ValueError(f"must start before it ends, on one day ({HOURS_HINT})")
    return start, end


def format_hours_window(start: int, end: int) -> str:
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def _hours(name: str, raw: str) -> str:
    try:
        return format_hours_window(*parse_hours_window(raw))
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(name, "must not be empty")
    return raw.strip()


def _schedule(name: str, raw: str) -> tuple[int, ...]:
    """Comma-separated whole seconds, each at least 1: `5,300,1800`."""
    try:
        delays = tuple(int(part.strip()) for part in raw.split(","))
    except ValueError:
        raise ConfigError(name, f"must be comma-separated whole seconds like 5,300,1800, got {raw!r}") from None
    if not delays or any(d < 1 for d in delays):
        raise ConfigError(name, "must list at least one delay, each at least 1 second")
    return delays


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("0", "1", "true", "false"):
        raise ConfigError(name, f"must be 0 or 1, got {raw!r}")
    return value in ("1", "true")


def _erasure_key(name: str, raw: str) -> str:
    key = raw.strip()
    if len(key) < 32:
        raise ConfigError(name, "must be at least 32 characters (a random secret; it never rotates)")
    return key


@dataclass(frozen=True)
class _Var:
    env: str
    parse: Callable[[str, str], Any]
    default: Any = None


# attribute name -> how to read it. Defaults as in the README's configuration table.
_VARS: dict[str, _Var] = {
    "database_url": _Var("DATABASE_URL", _url(("postgresql", "postgres"))),
    "redis_url": _Var("REDIS_URL", _url(("redis", "rediss", "unix"))),
    "broker_url": _Var("BROKER_URL", _url(("redis", "rediss", "amqp", "amqps", "unix"))),
    "twilio_account_sid": _Var("TWILIO_ACCOUNT_SID", _text),
    "twilio_auth_token": _Var("TWILIO_AUTH_TOKEN", _text),
    "twilio_base_url": _Var("TWILIO_BASE_URL", _url(("http", "https"))),
    "public_base_url": _Var("PUBLIC_BASE_URL", _url(("http", "https"))),
    "port": _Var("PORT", _int(1, 65535), 8080),
    "send_rate_limit": _Var("SEND_RATE_LIMIT", _int(1), 10),
    "dedupe_window_ms": _Var("DEDUPE_WINDOW_MS", _int(1), 2000),
    "block_after_filter_failures": _Var("BLOCK_AFTER_FILTER_FAILURES", _int(1), 3),
    "lookup_ttl_days": _Var("LOOKUP_TTL_DAYS", _int(1), 180),
    "lazy_lookup_wait_ms": _Var("LAZY_LOOKUP_WAIT_MS", _int(0), 3000),
    "lookup_concurrency": _Var("LOOKUP_CONCURRENCY", _int(1, 256), 16),
    "retry_min_backoff_ms": _Var("RETRY_MIN_BACKOFF_MS", _int(1), 1000),
    "retry_max_backoff_ms": _Var("RETRY_MAX_BACKOFF_MS", _int(1), 300000),
    "sweep_interval_s": _Var("SWEEP_INTERVAL_S", _int(1), 5),
    "stale_after_s": _Var("STALE_AFTER_S", _int(1), 30),
    "worker_processes": _Var("WORKER_PROCESSES", _int(1, 64), 2),
    "worker_threads": _Var("WORKER_THREADS", _int(1, 256), 8),
    "worker_metrics_port": _Var("WORKER_METRICS_PORT", _int(0, 65535), 9191),
    "ops_token": _Var("OPS_TOKEN", _text),
    "quiet_hours": _Var("QUIET_HOURS", _hours, "08:00-21:00"),
    "quiet_hours_reply_grace_min": _Var("QUIET_HOURS_REPLY_GRACE_MIN", _int(0, 24 * 60), 60),
    "twilio_auth_token_secondary": _Var("TWILIO_AUTH_TOKEN_SECONDARY", _text),
    "credentials_key": _Var("CREDENTIALS_KEY", lambda n, r: _fernet_key(n, r)),
    "metrics_port": _Var("METRICS_PORT", _int(0, 65535), 9192),
    "demo_sim_url": _Var("DEMO_SIM_URL", _url(("http", "https"))),
    "log_format": _Var("LOG_FORMAT", lambda n, r: _choice(n, r, ("json", "console")), None),
    "stream_token_ttl_s": _Var("STREAM_TOKEN_TTL_S", _int(1, 86400), 60),
    "streams_per_firm": _Var("STREAMS_PER_FIRM", _int(1), 200),
    "stream_heartbeat_s": _Var("STREAM_HEARTBEAT_S", _int(1, 3600), 15),
    "events_retention_days": _Var("EVENTS_RETENTION_DAYS", _int(1), 7),
    "log_level": _Var("LOG_LEVEL", lambda n, r: _choice(n, r.upper(), ("DEBUG", "INFO", "WARNING", "ERROR")), "INFO"),
    "inbox_retention_days": _Var("INBOX_RETENTION_DAYS", _int(1), 30),
    "erasure_key": _Var("ERASURE_KEY", _erasure_key),
    "webhook_retry_schedule_s": _Var("WEBHOOK_RETRY_SCHEDULE_S", _schedule,
                                     (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)),
    "webhook_timeout_s": _Var("WEBHOOK_TIMEOUT_S", _int(1, 60), 15),
    "twilio_timeout_s": _Var("TWILIO_TIMEOUT_S", _int(1, 60), 10),
    "webhook_log_retention_days": _Var("WEBHOOK_LOG_RETENTION_DAYS", _int(1), 30),
    "webhooks_allow_private": _Var("WEBHOOKS_ALLOW_PRIVATE", _flag, False),
}

# Which variables each command needs (the README's configuration section lists them).
NEEDS: dict[str, tuple[str, ...]] = {
    "web": ("database_url", "redis_url", "twilio_account_sid", "twilio_auth_token"),
    "worker": ("database_url", "redis_url", "twilio_account_sid", "twilio_auth_token"),
    "sweeper": ("database_url", "redis_url", "twilio_account_sid", "twilio_auth_token"),
    "migrate": ("database_url",),
    "firm": ("database_url",),
    "firm-delete": ("database_url", "redis_url", "twilio_account_sid", "twilio_auth_token", "erasure_key"),
    "import": ("database_url",),
    "optouts": ("database_url",),
    "unblock": ("database_url",),
    "webhooks": ("database_url",),
    "queues": ("broker_url",),
    "twilio-sim": (),
}
# Commands that give Twilio our address (StatusCallback URLs, webhook signatures).
NEEDS_PUBLIC_URL = ("web", "worker")


def _fernet_key(name: str, raw: str) -> str:
    """A Fernet key: 32 bytes, URL-safe base64 (what `Fernet.generate_key()` prints)."""
    import base64
    import binascii

    try:
        ok = len(base64.urlsafe_b64decode(raw.strip().encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        ok = False
    if not ok:
        raise ConfigError(name, "must be a Fernet key (32 bytes, URL-safe base64)")
    return raw.strip()


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_base_url: str | None = None
    public_base_url: str | None = None
    port: int = 8080
    send_rate_limit: int = 10
    dedupe_window_ms: int = 2000
    block_after_filter_failures: int = 3
    lookup_ttl_days: int = 180
    lazy_lookup_wait_ms: int = 3000
    lookup_concurrency: int = 16  # Twilio Lookups one batch job runs at once
    retry_min_backoff_ms: int = 1000
    retry_max_backoff_ms: int = 300000
    sweep_interval_s: int = 5
    stale_after_s: int = 30
    worker_processes: int = 2
    worker_threads: int = 8
    worker_metrics_port: int = 9191
    ops_token: str | None = None
    quiet_hours: str = "08:00-21:00"  # texting hours new firms get (local to the lead)
    quiet_hours_reply_grace_min: int = 60
    twilio_auth_token_secondary: str | None = field(default=None, repr=False)
    credentials_key: str | None = field(default=None, repr=False)
    metrics_port: int = 9192  # `/metrics` on its own listener; 0 = on PORT behind OPS_TOKEN
    demo_sim_url: str | None = None  # set by `leadsms demo` only: enables the page's reply control
    log_format: str | None = None
    log_level: str = "INFO"
    inbox_retention_days: int = 30
    stream_token_ttl_s: int = 60
    streams_per_firm: int = 200
    stream_heartbeat_s: int = 15
    events_retention_days: int = 7
    erasure_key: str | None = field(default=None, repr=False)  # HMAC key for erased phones; never rotated
    # outbound webhooks: retry delays (seconds, after each failed attempt), log retention,
    # and whether loopback/private addresses may be reached (tests, the demo)
    webhook_retry_schedule_s: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    webhook_log_retention_days: int = 30
    webhook_timeout_s: int = 15  # one delivery attempt, connect to last byte read
    twilio_timeout_s: int = 10  # one Twilio API call; the sweeper's in-flight window follows it
    webhooks_allow_private: bool = False
    extra: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, require: Iterable[str] = ()) -> "Settings":
        """Read every known variable; raise `ConfigError` for the first bad or missing one.

        `require` names attributes (e.g. "database_url") that must be set.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for attr, var in _VARS.items():
            raw = env.get(var.env)
            if raw is None or raw == "":
                values[attr] = var.default
            else:
                values[attr] = var.parse(var.env, raw)
        if values["broker_url"] is None:
            values["broker_url"] = values["redis_url"]
        if values["public_base_url"] is None and values["twilio_base_url"] is not None:
            # The simulator calls back on this machine; real Twilio needs the real address.
            values["public_base_url"] = f"http://127.0.0.1:{values['port']}"
        if values["public_base_url"] is not None:
            values["public_base_url"] = values["public_base_url"].rstrip("/")
        if values["retry_max_backoff_ms"] < values["retry_min_backoff_ms"]:
            raise ConfigError("RETRY_MAX_BACKOFF_MS", "must not be smaller than RETRY_MIN_BACKOFF_MS")
        settings = cls(**values, extra=dict(env))
        settings.require(*require)
        return settings

    @classmethod
    def for_command(cls, command: str, environ: Mapping[str, str] | None = None) -> "Settings":
        settings = cls.from_env(environ, require=NEEDS.get(command, ()))
        if command in NEEDS_PUBLIC_URL and settings.twilio_base_url is None and settings.public_base_url is None:
            raise ConfigError("PUBLIC_BASE_URL", "is not set (required with real Twilio, i.e. when TWILIO_BASE_URL "
                                                 "is unset: it is where Twilio sends status callbacks)")
        return settings

    def require(self, *attrs: str) -> None:
        for attr in attrs:
            if getattr(self, attr) in (None, ""):
                raise ConfigError(_VARS[attr].env, "is not set")

    def replace(self, **changes: Any) -> "Settings":
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(changes)
        return Settings(**current)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env: dict[str, str] = {}
        for attr, var in _VARS.items():
            value = getattr(self, attr)
            if isinstance(value, bool):
                env[var.env] = "1" if value else "0"
            elif isinstance(value, tuple):
                env[var.env] = ",".join(str(v) for v in value)
            elif value is not None:
                env[var.env] = str(value)
        return env
