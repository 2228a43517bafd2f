"""The shared session: what an app sees at ``environ["sessionshare.session"]``.

:class:`Session` is a ``MutableMapping`` of JSON values. It is lazy -- the
store is touched only when the app (or the middleware) first looks inside --
and it tracks what changed, including nested changes such as
``session["cart"].append(x)``, so that only changed top-level keys are written
back, in one round trip, and an unchanged session is never written. Loading
and persisting are the job of :class:`~sessionshare.manager.SessionManager`.

A session id is 256 random bits, lives only in a cookie, and is never taken
from a URL or logged; neither ``repr()`` nor any error shows it.

    session = environ["sessionshare.session"]
    session["cart"] = session.get("cart", []) + [item_id]
    session.invalidate()        # sign out everywhere
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .manager import SessionManager

__all__ = ["ENVIRON_KEY", "SESSION_ID_PATTERN", "Session", "new_session_id"]

ENVIRON_KEY = "sessionshare.session"
SESSION_ID_PATTERN = "[A-Za-z0-9_-]{43}"
_IMMUTABLE = (str, int, float, bool, type(None))
# ASCII-only JSON text: a lone surrogate (valid in a Python str, not in UTF-8)
# is stored as its \uXXXX escape instead of failing later on the way to the store.
_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode
_loads = json.loads


def new_session_id() -> str:
    """256 random bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def _encode(key: str, value: Any) -> str:
    try:
        return _dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"session[{key!r}]: only JSON values can be stored (str, int, float, bool, None, "
            f"list, dict with str keys); got {type(value).__name__}: {exc}"
        ) from None


class Session(MutableMapping[str, Any]):
    """One shared session: a lazy, change-tracking mapping of JSON values.

    Keys are strings; values anything ``json.dumps`` accepts (a non-JSON
    value raises ``TypeError`` at assignment). Metadata -- when the session
    was created and authenticated -- lives apart from app keys and is read
    through :attr:`created` and :attr:`authenticated_at`.
    """

    __slots__ = (
        "_deleted",
        "_exists",
        "_had_cookie",
        "_invalidate",
        "_loaded",
        "_manager",
        "_meta",
        "_meta_changed",
        "_regenerate",
        "_set",
        "_sid",
        "_stored",
        "_values",
    )

    def __init__(self, manager: SessionManager | None = None, sid: str | None = None) -> None:
        self._manager = manager
        self._sid = sid
        self._had_cookie = sid is not None
        self._loaded = manager is None or sid is None
        self._exists = False
        self._stored: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._set: set[str] = set()
        self._deleted: set[str] = set()
        self._meta: dict[str, int] = {}
        self._meta_changed = False
        self._regenerate = False
        self._invalidate = False

    # -- loading -----------------------------------------------------------
    def _ensure(self) -> None:
        if not self._loaded:
            assert self._manager is not None
            self._manager.load(self)

    def _adopt(self, sid: str | None, fields: dict[str, str], meta: dict[str, int]) -> None:
        """Take over a stored record (called by the manager)."""
        self._sid = sid
        self._exists = sid is not None
        self._stored = fields
        self._meta = meta
        self._values = {}
        self._set = set()
        self._deleted = set()
        self._loaded = True

    # -- the mapping -------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            pass
        self._ensure()
        if key in self._deleted or key not in self._stored:
            raise KeyError(key)
        value = self._values[key] = _loads(self._stored[key])
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys are strings, not {type(key).__name__}")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise TypeError(
                "session keys must be valid Unicode text (no lone surrogates)"
            ) from None
        _encode(key, value)
        self._ensure()
        self._values[key] = value
        self._set.add(key)
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._values.pop(key, None)
        self._set.discard(key)
        if key in self._stored:
            self._deleted.add(key)

    def __contains__(self, key: object) -> bool:
        if key in self._values:
            return True
        self._ensure()
        return key in self._stored and key not in self._deleted

    def __iter__(self) -> Iterator[str]:
        self._ensure()
        yield from (k for k in self._stored if k not in self._deleted and k not in self._values)
        yield from list(self._values)

    def __len__(self) -> int:
        self._ensure()
        extra = sum(1 for k in self._values if k not in self._stored)
        return len(self._stored) - len(self._deleted) + extra

    def __repr__(self) -> str:
        # No id here (reprs end up in logs and tracebacks), and no store access.
        if not self._loaded:
            return "<Session unloaded>"
        return f"<Session {len(self)} keys{'' if self._exists else ' new'}>"

    # -- state -------------------------------------------------------------
    @property
    def new(self) -> bool:
        """True until the session exists in the store."""
        self._ensure()
        return not self._exists

    @property
    def modified(self) -> bool:
        """True when persisting would write something."""
        if not self._loaded:
            return False
        changed, deleted = self._changes()
        return bool(
            changed or deleted or self._meta_changed or self._regenerate or self._invalidate
        )

    @property
    def created(self) -> float | None:
        """When the session was first stored (seconds since the epoch), or None if new."""
        self._ensure()
        return self._meta.get("c")

    @property
    def authenticated_at(self) -> float | None:
        """When the IdP last signed a user into this session, or None."""
        self._ensure()
        return self._meta.get("a")

    def mark_authenticated(self, now: float) -> None:
        """Record the time of a sign-in (the IdP middleware calls this)."""
        self._ensure()
        self._meta["a"] = int(now)
        self._meta_changed = True

    def regenerate(self) -> None:
        """Move the data to a fresh id when the response is persisted; the old id dies."""
        self._ensure()
        self._regenerate = True

    def invalidate(self) -> None:
        """Delete the session from the store (everywhere) and empty it."""
        self._ensure()
        self._invalidate = True
        self._values = {}
        self._set = set()
        self._deleted = set(self._stored)
        self._meta = {}
        self._meta_changed = False

    @property
    def invalidated(self) -> bool:
        """True after :meth:`invalidate` until the response is persisted."""
        return self._invalidate

    def _changes(self) -> tuple[dict[str, str], list[str]]:
        changed: dict[str, str] = {}
        for key, value in self._values.items():
            # An immutable value that was only read cannot have changed; a list
            # or dict may have been mutated in place, so compare its encoding.
            if key not in self._set and isinstance(value, _IMMUTABLE):
                continue
            text = _encode(key, value)
            if self._stored.get(key) != text:
                changed[key] = text
        deleted = [key for key in self._deleted if key in self._stored]
        return changed, deleted

    def _mark_persisted(self, changed: dict[str, str], deleted: list[str]) -> None:
        self._stored.update(changed)
        for key in deleted:
            self._stored.pop(key, None)
        self._set = set()
        self._deleted = set()
        self._meta_changed = False
        self._regenerate = False
