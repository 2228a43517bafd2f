"""Settings from ``SESSIONSHARE_*`` environment variables, validated at start-up.

One table, :data:`SETTINGS`, names every variable, the constructor argument
it fills, its default and which middleware reads it. ``from_env`` on either
middleware and ``python -m sessionshare check`` both read it, so a bad value
fails the same way everywhere: at start-up, with a message naming the
variable.

    os.environ["SESSIONSHARE_SYNC_KEY"] = "..."      # python -m sessionshare keygen
    os.environ["SESSIONSHARE_APP_URL"] = "https://shop.example"
    os.environ["SESSIONSHARE_IDP_URL"] = "https://id.example/login"
    app.wsgi_app = RemoteSessionMiddleware.from_env(app.wsgi_app)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .crypto import AllowList, SyncKey
from .errors import ConfigurationError
from .store import MemoryStore, SessionStore

__all__ = ["SETTINGS", "Setting", "collect_settings", "make_store", "read_settings"]

DEFAULT_STORE_URL = "redis://127.0.0.1:6379/0"


def make_store(url: str) -> SessionStore:
    """``memory://`` for an in-process store, else a Redis URL."""
    if url.startswith("memory:"):
        return MemoryStore()
    from .store.redis import RedisStore

    return RedisStore.from_url(url)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("expected a positive whole number of seconds")
    return value


@dataclass(frozen=True)
class Setting:
    """One environment variable and the constructor argument it fills."""

    env: str
    argument: str
    default: str | None  # None: required
    parse: Callable[[str], Any]
    roles: tuple[str, ...]
    help: str


_BOTH = ("idp", "remote")
SETTINGS: tuple[Setting, ...] = (
    Setting("SESSIONSHARE_SYNC_KEY", "key", None, SyncKey.parse, _BOTH,
            "shared secret(s), newest first, from `python -m sessionshare keygen`"),
    Setting("SESSIONSHARE_STORE_URL", "store", DEFAULT_STORE_URL, make_store, _BOTH,
            "redis://host:port/db, rediss://..., or memory:// (one process only)"),
    Setting("SESSIONSHARE_APP_URL", "app_url", None, str, _BOTH,
            "this app's public origin, e.g. https://shop.example"),
    Setting("SESSIONSHARE_IDP_URL", "idp_url", None, str, ("remote",),
            "the IdP's full login URL, e.g. https://id.example/login"),
    Setting("SESSIONSHARE_KNOWN_REMOTE_HOSTS", "known_remote_hosts", None, AllowList, ("idp",),
            "allow-list: host, host:port, *.domain or origin, comma separated"),
    Setting("SESSIONSHARE_USER_KEY", "user_key", "user", str, _BOTH,
            "session key whose presence means signed in"),
    Setting("SESSIONSHARE_TOKEN_TTL", "token_ttl", "60", _positive_int, _BOTH,
            "seconds a hand-off token stays valid"),
    Setting("SESSIONSHARE_IDLE_TIMEOUT", "idle_timeout", "1800", _positive_int, _BOTH,
            "seconds of inactivity before the session ends (sliding)"),
    Setting("SESSIONSHARE_ABSOLUTE_TIMEOUT", "absolute_timeout", "28800", _positive_int, _BOTH,
            "seconds after creation when the session ends regardless"),
    Setting("SESSIONSHARE_COOKIE_NAME", "cookie_name", "sessionshare", str, _BOTH,
            "session cookie name (a __Host- name is supported)"),
    Setting("SESSIONSHARE_COOKIE_SECURE", "cookie_secure", "true", _bool, _BOTH,
            "Secure cookie flag; false only for a local http demo"),
    Setting("SESSIONSHARE_COOKIE_SAMESITE", "cookie_samesite", "Lax", str, _BOTH,
            "SameSite cookie attribute: Lax, Strict or None"),
    Setting("SESSIONSHARE_KEY_PREFIX", "key_prefix", "sessionshare:", str, _BOTH,
            "prefix of every store key"),
    Setting("SESSIONSHARE_LOGIN_PATH", "login_path", "/login", str, ("idp",),
            "the IdP path remotes send browsers to"),
    Setting("SESSIONSHARE_CALLBACK_PATH", "callback_path", "/_sessionshare/callback", str,
            _BOTH, "the remote path that receives the token"),
    Setting("SESSIONSHARE_LOGOUT_PATH", "logout_path", "/_sessionshare/logout", str, _BOTH,
            "POST here to sign out everywhere"),
)


def read_settings(role: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Constructor keyword arguments for the ``idp`` or ``remote`` middleware.

    Raises one :class:`ConfigurationError` listing every problem found.
    """
    kwargs, problems = collect_settings(role, environ)
    if problems:
        raise ConfigurationError("; ".join(problems))
    return kwargs


def collect_settings(
    role: str, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The keyword arguments that parsed, and one message per problem."""
    env = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        if role not in setting.roles:
            continue
        text = env.get(setting.env, setting.default)
        if text is None or not text.strip():
            if setting.default is None:
                problems.append(f"{setting.env} is not set: {setting.help}")
            continue
        try:
            kwargs[setting.argument] = setting.parse(text)
        except (ConfigurationError, ValueError) as exc:
            # Messages from SyncKey never echo key material, so they can be shown.
            problems.append(f"{setting.env} is invalid ({exc}): {setting.help}")
    return kwargs, problems
