"""What the WSGI and the ASGI shell share: a middleware class built from its role's options.

A middleware class names the side it builds (``side_class``: its role, as
data) and its server interface (``shell``). From those two alone come its
checked options, ``from_env`` and its signature and ``help()`` text; a shell
adds only how it holds the store and runs a request (``_wrap`` and
``__call__``), so the options cannot drift between the two.

    class IdpAuthMiddleware(SessionMiddleware):  # a shell's SessionMiddleware
        side_class = IdpSide

        def __init__(self, app, **options):
            self._build(app, options)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, cast

from ..errors import ConfigurationError
from .configure import checked_options, read_environ
from .optiondocs import document_options
from .options import Shell
from .side import Side

__all__ = ["ShellBase"]

_M = TypeVar("_M", bound="ShellBase")


class ShellBase:
    """The base of each shell's ``SessionMiddleware``: built from one checked set of options."""

    #: The side a middleware builds from its options (its role, as data).
    side_class: ClassVar[type[Side]]
    #: The server interface, for the options whose type depends on it (the store's).
    shell: ClassVar[Shell]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "side_class" in vars(cls):
            document_options(cls, cls.side_class.role, cls.shell)

    def _build(self, app: Any, options: Mapping[str, Any]) -> None:
        """A middleware's constructor: ``options`` checked once, its side built from them."""
        checked = checked_options(self.side_class.role, options, self.shell,
                                  owner=type(self).__name__)
        self._wrap(app, checked.store, self.side_class(checked))

    def _wrap(self, app: Any, store: Any, side: Side) -> None:
        raise NotImplementedError  # each shell holds the app, the side and its store

    @classmethod
    def from_env(
        cls: type[_M],
        app: Any,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> _M:
        """Build from ``SESSIONSHARE_*`` variables (``os.environ`` unless ``environ``).

        Keyword ``overrides`` are constructor arguments that win over the
        variables. One :class:`ConfigurationError` names every variable to fix;
        docs/options.md lists the variables. ``SESSIONSHARE_STORE_URL`` becomes
        a ``RedisStore`` for a WSGI middleware, an ``AsyncRedisStore`` for an
        ASGI one (a ``MemoryStore`` for ``memory://``).
        """
        values, problems = read_environ(cls.side_class.role, environ, overrides,
                                        shell=cls.shell)
        if problems:
            raise ConfigurationError("; ".join(problems))
        # A concrete middleware takes (app, **options); this base declares no constructor.
        return cast(_M, cast(Any, cls)(app, **values, **overrides))
