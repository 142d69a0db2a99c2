"""Configuration: one frozen `Settings`, read from the environment once.

Nothing else in the project reads `os.environ`. Each command names the variables it
needs (the README's configuration table); a missing or malformed one raises `ConfigError`, which the
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


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(name, "must not be empty")
    return raw.strip()


@dataclass(frozen=True)
class _Var:
    env: str
    parse: Callable[[str, str], Any]
    default: Any = None


# attribute name -> how to read it. Defaults are api.md's.
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
    "retry_min_backoff_ms": _Var("RETRY_MIN_BACKOFF_MS", _int(1), 1000),
    "retry_max_backoff_ms": _Var("RETRY_MAX_BACKOFF_MS", _int(1), 300000),
    "sweep_interval_s": _Var("SWEEP_INTERVAL_S", _int(1), 5),
    "stale_after_s": _Var("STALE_AFTER_S", _int(1), 30),
    "worker_processes": _Var("WORKER_PROCESSES", _int(1, 64), 2),
    "worker_threads": _Var("WORKER_THREADS", _int(1, 256), 8),
    "worker_metrics_port": _Var("WORKER_METRICS_PORT", _int(0, 65535), 9191),
    "ops_token": _Var("OPS_TOKEN", _text),
    "metrics_port": _Var("METRICS_PORT", _int(0, 65535), 9192),
    "demo_sim_url": _Var("DEMO_SIM_URL", _url(("http", "https"))),
    "log_format": _Var("LOG_FORMAT", lambda n, r: _choice(n, r, ("json", "console")), None),
    "log_level": _Var("LOG_LEVEL", lambda n, r: _choice(n, r.upper(), ("DEBUG", "INFO", "WARNING", "ERROR")), "INFO"),
}

# Which variables each command needs (api.md's "needed by" column).
NEEDS: dict[str, tuple[str, ...]] = {
    "web": ("database_url", "redis_url", "twilio_account_sid", "twilio_auth_token"),
    "worker": ("database_url", "redis_url", "twilio_account_sid", "twilio_auth_token"),
    "sweeper": ("database_url", "redis_url", "twilio_account_sid", "twilio_auth_token"),
    "migrate": ("database_url",),
    "firm": ("database_url",),
    "import": ("database_url",),
    "unblock": ("database_url",),
    "queues": ("broker_url",),
    "twilio-sim": (),
}
# Commands that give Twilio our address (StatusCallback URLs, webhook signatures).
NEEDS_PUBLIC_URL = ("web", "worker")


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
    retry_min_backoff_ms: int = 1000
    retry_max_backoff_ms: int = 300000
    sweep_interval_s: int = 5
    stale_after_s: int = 30
    worker_processes: int = 2
    worker_threads: int = 8
    worker_metrics_port: int = 9191
    ops_token: str | None = None
    metrics_port: int = 9192  # `/metrics` on its own listener; 0 = on PORT behind OPS_TOKEN
    demo_sim_url: str | None = None  # set by `leadsms demo` only: enables the page's reply control
    log_format: str | None = None
    log_level: str = "INFO"
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
            if value is not None:
                env[var.env] = str(value)
        return env
