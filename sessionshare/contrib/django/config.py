"""The ``SESSIONSHARE`` setting read into the middlewares' constructor arguments.

The dict takes the middlewares' own option names (declared once in
:mod:`sessionshare.core.options`; an unknown name is an error that says so,
with a guess); ``store`` and the numbers may also be written as their
``SESSIONSHARE_*`` variables' text (``"redis://..."``, ``"1800"``), and an
option the dict leaves out is read from its variable.

    role, values = middleware_options({"app_url": "https://forum.example",
                                       "idp_url": "https://id.example/login"})
    role  # "remote"
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

from ...core.options import OPTIONS, Role
from ...errors import ConfigurationError

__all__ = ["middleware_options"]

# The WSGI shell's options: a Django project is served through it.
_BY_NAME = {option.name: option for option in OPTIONS if "wsgi" in option.shells}


def middleware_options(
    config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[Role, dict[str, Any]]:
    """The role and the constructor arguments a ``SESSIONSHARE`` dict asks for.

    Text values of options that are not text (``store``, numbers, flags) are
    parsed as their variables are. The role is ``remote`` when ``idp_url`` is
    set (in the dict or ``SESSIONSHARE_IDP_URL``), ``idp`` when
    ``known_remote_hosts`` is; both or neither is an error.
    """
    unknown = sorted(set(config) - set(_BY_NAME))
    if unknown:
        guesses = [difflib.get_close_matches(name, _BY_NAME, n=1) for name in unknown]
        named = ", ".join(f"{name!r}" + (f" (did you mean {guess[0]!r}?)" if guess else "")
                          for name, guess in zip(unknown, guesses, strict=True))
        raise ConfigurationError(
            f"SESSIONSHARE has unknown option(s) {named}: it takes the middlewares' option "
            "names (see docs/options.md)"
        )
    env = os.environ if environ is None else environ
    has = {name: name in config or bool(env.get(_BY_NAME[name].env or "")) for name in
           ("idp_url", "known_remote_hosts")}
    if has["idp_url"] == has["known_remote_hosts"]:
        raise ConfigurationError(
            "SESSIONSHARE must name either idp_url (this site is a remote) or "
            "known_remote_hosts (this site is the IdP), not "
            + ("both" if has["idp_url"] else "neither")
        )
    role: Role = "remote" if has["idp_url"] else "idp"
    misplaced = sorted(name for name in config if role not in _BY_NAME[name].roles)
    if misplaced:
        raise ConfigurationError(
            f"SESSIONSHARE has {', '.join(map(repr, misplaced))}, for "
            f"{'the IdP' if role == 'remote' else 'remotes'} only: this site is "
            + ("a remote (idp_url is set)" if role == "remote"
               else "the IdP (known_remote_hosts is set)")
        )
    values: dict[str, Any] = {}
    for name, value in config.items():
        option = _BY_NAME[name]
        if isinstance(value, str) and "str" not in option.annotation and option.env:
            try:
                value = option.parse(value)
            except (ConfigurationError, ValueError) as exc:
                raise ConfigurationError(f"SESSIONSHARE[{name!r}] is invalid ({exc}): "
                                         f"{option.help}") from None
        values[name] = value
    return role, values
