"""The apps the reliability suite serves with gunicorn, configured like production.

gunicorn imports ``reliability.site_app:make('idp')`` or ``make('remote')``;
each is tests/bare_apps.py's bare WSGI app (light imports: every worker imports
it) wrapped by its middleware through ``from_env``, so the settings come from
``SESSIONSHARE_*`` variables exactly as in a deployment
(:class:`reliability.served.ServedDeployment` sets them).
The remote protects ``/orders``, ``/read`` and ``/write``.

The library's log lines go to stderr -- which gunicorn's
``--capture-output`` puts in its log file -- as ``sessionshare-log LEVEL
message``, so the test can read them back (and check them for secrets).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from bare_apps import idp_app, remote_app

from sessionshare import IdpAuthMiddleware, RemoteSessionMiddleware

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PROTECTED = ["/orders", "/read", "/write"]
LOG_PREFIX = "sessionshare-log "


def _log_to_stderr() -> None:
    logger = logging.getLogger("sessionshare")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_PREFIX + "%(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


#: The header naming the worker that answered (the soak warms every worker before it
#: measures their memory).
WORKER_HEADER = "X-Worker-Pid"


def _naming_the_worker(app: WSGIApplication) -> WSGIApplication:
    def served(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (WORKER_HEADER, str(os.getpid()))],
                                  exc_info)

        return app(environ, start)

    return served


def make(role: str) -> WSGIApplication:
    """The IdP (``idp``) or the shop (``remote``), built from the environment."""
    _log_to_stderr()
    if role == "idp":
        return _naming_the_worker(IdpAuthMiddleware.from_env(idp_app))
    if role == "remote":
        return _naming_the_worker(
            RemoteSessionMiddleware.from_env(remote_app, protect=PROTECTED))
    raise ValueError(f"unknown role {role!r}")
