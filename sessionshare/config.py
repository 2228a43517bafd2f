"""Compatibility names: the options now live in :mod:`sessionshare.core.options`.

The ``SESSIONSHARE_*`` table moved into the options declaration, which also
gives the constructors' arguments, the README table and ``check``. What
callers imported from here keeps working:

    from sessionshare.config import make_store, read_settings
    store = make_store("memory://")
    kwargs = read_settings("remote")      # raises ConfigurationError naming each variable
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .core.options import DEFAULT_STORE_URL, Role, make_store, read_environ
from .errors import ConfigurationError

__all__ = ["DEFAULT_STORE_URL", "collect_settings", "make_store", "read_settings"]


def collect_settings(
    role: Role, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The keyword arguments that parsed, and one message per problem."""
    return read_environ(role, environ)


def read_settings(role: Role, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Constructor keyword arguments for the ``idp`` or ``remote`` middleware."""
    values, problems = read_environ(role, environ)
    if problems:
        raise ConfigurationError("; ".join(problems))
    return values
