"""The options declaration as people read it: ``help()``, ``inspect.signature`` and the docs.

Nothing here is pasted anywhere. :func:`document_options` runs when a shell
module is imported and gives each middleware class what ``help()``, IDEs and
the API reference show -- a signature listing every option with its type and
default, and a ``:param:`` line for each (STYLE 14: every option documented
where ``help()`` shows it) -- from :data:`sessionshare.core.options.OPTIONS`.
:func:`options_markdown` is the options page's table: the documentation's
Sphinx hook (``docs/options_table.py``) puts it into docs/options.md when the
site is built, and ``python -m sessionshare options --markdown`` prints it.

    document_options(RemoteSessionMiddleware, "remote", "wsgi")
    inspect.signature(RemoteSessionMiddleware)   # (app, *, store, key, app_url, ...)
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from .options import OPTIONS, ROLES, Option, Role, Shell, options_for

__all__ = ["document_options", "options_docstring", "options_markdown"]


def options_docstring(role: Role, *, shell: Shell = "wsgi", indent: int = 4) -> str:
    """The ``:param:`` lines of a middleware's class docstring (92 columns wide)."""
    lines = [textwrap.fill(
        f":param {option.name}: {option.doc()}", width=92,
        initial_indent=" " * indent, subsequent_indent=" " * (indent + 4),
        break_on_hyphens=False, break_long_words=False,
    ) for option in options_for(role, shell)]
    return "\n".join(lines) + "\n"


def _indent_of(doc: str) -> int:
    """The indentation of a docstring's body (its lines after the first), as
    :func:`inspect.cleandoc` measures it: 4 in a class's source, 0 once Python
    strips it at compile time (3.13)."""
    body = [line for line in doc.splitlines()[1:] if line.strip()]
    return min((len(line) - len(line.lstrip()) for line in body), default=0)


def document_options(cls: type[Any], role: Role, shell: Shell) -> None:
    """Give a middleware class, whose ``__init__`` takes ``(self, app, **options)``, the
    signature and ``:param:`` lines of the options it takes."""
    init = cls.__init__
    written = inspect.signature(init)
    kept = [p for p in written.parameters.values() if p.kind is not p.VAR_KEYWORD]
    options = [
        inspect.Parameter(
            option.name, inspect.Parameter.KEYWORD_ONLY, annotation=option.annotation,
            default=inspect.Parameter.empty if option.required else option.default,
        )
        for option in options_for(role, shell)
    ]
    # Read by inspect.signature() -- so by help(), IDEs and Sphinx -- in place of the
    # catch-all **options the function is written with.
    init.__signature__ = written.replace(parameters=[*kept, *options])
    doc = cls.__doc__ or ""
    indent = _indent_of(doc)
    summary, _, params = doc.partition("\n\n")  # the first paragraph, then ":param app:"
    about = textwrap.indent(_ABOUT, " " * indent)
    cls.__doc__ = (f"{summary}\n\n{about}\n{params.rstrip()}\n"
                   f"{options_docstring(role, shell=shell, indent=indent)}{' ' * indent}")


#: What every middleware's docstring says of its options, before the list of them.
_ABOUT = """\
Every argument after ``app`` is keyword-only and checked at construction, all
in one round: a bad one raises :class:`~sessionshare.ConfigurationError`
naming it, and one error names every mistake. The list below is built from the
options' declaration (:mod:`sessionshare.core.options`) when the class is
created, as is the signature ``help()`` shows.
"""


def options_markdown() -> str:
    """The options tables of docs/options.md, generated from the declaration."""
    def used_by(option: Option) -> str:
        roles = option.roles
        text = "both" if set(roles) == set(ROLES) else " ".join(
            "IdP" if role == "idp" else role for role in sorted(roles)
        )
        # An option of one shell's middlewares only says which.
        return text if len(option.shells) > 1 else f"{text} ({'/'.join(option.shells).upper()})"

    lines = ["| variable | argument | default | used by | meaning |", "|---|---|---|---|---|"]
    for option in OPTIONS:
        if option.env is not None:
            text = option.env_text()
            default = "**required**" if text is None else f"`{text}`" if text else "unset"
            lines.append(f"| `{option.env}` | `{option.name}` | {default} | "
                         f"{used_by(option)} | {option.help} |")
    lines += [
        "",
        "Arguments without a variable (pass them to the constructor, or as keyword",
        "overrides to `from_env(app, **overrides)`):",
        "",
        "| argument | default | used by | meaning |",
        "|---|---|---|---|",
    ]
    for option in OPTIONS:
        if option.env is None:
            lines.append(f"| `{option.name}` | `{option.default_text()}` | "
                         f"{used_by(option)} | {option.help} |")
    return "\n".join(lines) + "\n"
