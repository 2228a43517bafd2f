"""The options declaration (``sessionshare/core/options.py``) and what comes from it.

The constructors' signatures and docstrings, the docs' options table, ``from_env``
and ``python -m sessionshare check`` are each held to the one declaration,
so none of them can drift; wrong values fail at construction naming the
option.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import webtest
from test_cli import run

from sessionshare import (
    ConfigurationError,
    IdpAuthMiddleware,
    MemoryStore,
    RedisStore,
    RemoteSessionMiddleware,
    SyncKey,
    asgi,
)
from sessionshare.cli import main
from sessionshare.core.configure import check_options, read_environ
from sessionshare.core.idp import IdpSide
from sessionshare.core.optiondocs import options_docstring, options_markdown
from sessionshare.core.options import OPTIONS, REQUIRED, Role, Shell, options_for
from sessionshare.core.remote import RemoteSide

DOCS = Path(__file__).parent.parent / "docs"
OPTIONS_PAGE = DOCS / "options.md"
MIDDLEWARES: dict[tuple[Role, Shell], type[Any]] = {
    ("idp", "wsgi"): IdpAuthMiddleware,
    ("remote", "wsgi"): RemoteSessionMiddleware,
    ("idp", "asgi"): asgi.IdpAuthMiddleware,
    ("remote", "asgi"): asgi.RemoteSessionMiddleware,
}
SHELLS = pytest.mark.parametrize("shell", ["wsgi", "asgi"])


def app(environ: dict[str, object], start_response: object) -> list[bytes]:
    return [b""]


# -- one declaration: signature, docstring, options page -------------------------------------
@SHELLS
@pytest.mark.parametrize("role", ["idp", "remote"])
def test_signature_is_the_declaration(role: Role, shell: Shell) -> None:
    parameters = list(inspect.signature(MIDDLEWARES[role, shell]).parameters.values())
    assert parameters[0].name == "app"
    assert not [p for p in parameters if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    declared = options_for(role, shell)
    assert [p.name for p in parameters[1:]] == [o.name for o in declared]
    for parameter, option in zip(parameters[1:], declared, strict=True):
        assert parameter.kind is parameter.KEYWORD_ONLY, option.name
        assert parameter.annotation == option.annotation, option.name
        if option.default is REQUIRED:
            assert parameter.default is parameter.empty, option.name
        else:
            assert parameter.default == option.default, option.name
            assert type(parameter.default) is type(option.default), option.name


def _param_docs(doc: str) -> dict[str, str]:
    found = re.findall(r":param (\w+):(.*?)(?=\n\s*:param |\n\s*\n|\Z)", doc, re.DOTALL)
    return {name: " ".join(text.split()) for name, text in found}


@SHELLS
@pytest.mark.parametrize("role", ["idp", "remote"])
def test_docstring_is_the_declaration(role: Role, shell: Shell) -> None:
    cls = MIDDLEWARES[role, shell]
    doc = cls.__doc__ or ""
    documented = _param_docs(doc)
    assert list(documented) == list(inspect.signature(cls).parameters)
    for option in options_for(role, shell):
        assert documented[option.name] == option.doc(), option.name
    # Byte for byte what `options --docstring` prints, and added at import, not pasted.
    assert options_docstring(role, shell=shell) in doc
    assert ":param store:" not in inspect.getsource(cls)
    assert ":param" in (help_text := pydoc_text(cls)) and "idle_timeout" in help_text


def pydoc_text(cls: type) -> str:
    import pydoc

    return pydoc.render_doc(cls, renderer=pydoc.plaintext)


def _options_table() -> ModuleType:
    """docs/options_table.py, the Sphinx extension docs/conf.py loads."""
    spec = importlib.util.spec_from_file_location("options_table", DOCS / "options_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_options_page_holds_markers_not_a_pasted_table() -> None:
    text = OPTIONS_PAGE.read_text(encoding="utf-8")
    extension = _options_table()
    assert extension.BEGIN in text and extension.END in text, "docs/options.md lost its markers"
    assert "| `SESSIONSHARE_" not in text and "| argument |" not in text, (
        "docs/options.md holds a table: the site generates it, leave only the markers"
    )
    # What Sphinx reads: the page with the declaration's tables between the markers.
    read = extension.expand(text)
    assert f"{extension.BEGIN}\n\n{options_markdown()}\n{extension.END}" in read
    assert read.split(extension.BEGIN)[0] == text.split(extension.BEGIN)[0]
    assert "options_table" in (DOCS / "conf.py").read_text(encoding="utf-8")


# MyST reaches for Sphinx APIs that Sphinx deprecates: their warning, not ours.
@pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications")
def test_sphinx_builds_the_options_page_with_a_row_for_every_option(tmp_path: Path) -> None:
    # The real page through MyST and the real extension: two tables, a row per option.
    from docutils import nodes
    from sphinx.application import Sphinx

    source = tmp_path / "source"
    source.mkdir()
    (source / "index.md").write_text(OPTIONS_PAGE.read_text(encoding="utf-8"), encoding="utf-8")
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(DOCS)!r})\n"
        "extensions = ['myst_parser', 'options_table']\n"
        # The page links to its siblings, which this build leaves out.
        "suppress_warnings = ['myst.xref_missing', 'myst.header']\n",
        encoding="utf-8",
    )
    warnings = io.StringIO()
    app = Sphinx(str(source), str(source), str(tmp_path / "out"), str(tmp_path / "doctrees"),
                 "dummy", status=None, warning=warnings, freshenv=True)
    app.build()
    assert warnings.getvalue() == ""
    doctree = app.env.get_doctree("index")
    tables = list(doctree.findall(nodes.table))
    assert len(tables) == 2
    cells = [{literal.astext() for literal in table.findall(nodes.literal)} for table in tables]
    for option in OPTIONS:
        assert option.name in cells[option.env is None], option.name
        if option.env is not None:
            assert option.env in cells[0], option.env


def test_options_command_prints_the_generated_texts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["options", "--markdown"]) == 0
    assert capsys.readouterr().out == options_markdown()
    assert main(["options", "--docstring", "remote"]) == 0
    assert capsys.readouterr().out == options_docstring("remote")
    assert main(["options", "--docstring", "idp", "--shell", "asgi"]) == 0
    assert capsys.readouterr().out == options_docstring("idp", shell="asgi")


def test_every_option_is_documented_with_its_variable_and_default() -> None:
    names = [option.name for option in OPTIONS]
    assert len(names) == len(set(names))
    for option in OPTIONS:
        assert option.help and not option.help.endswith("."), option.name
        assert option.roles, option.name
        doc = option.doc()
        assert ("Required." in doc) == (option.default is REQUIRED), option.name
        if option.env is not None:
            assert option.env.startswith("SESSIONSHARE_") and option.env in doc
    # The absolute lifetime counts from the latest sign-in (manager._started).
    (absolute,) = [o for o in OPTIONS if o.name == "absolute_timeout"]
    assert "after creation" not in absolute.help and "latest sign-in" in absolute.help


def test_the_variables_are_the_ones_deployments_already_set() -> None:
    names = {option.env for option in OPTIONS if option.env}
    assert names == {f"SESSIONSHARE_{name}" for name in (
        "SYNC_KEY", "STORE_URL", "APP_URL", "IDP_URL", "KNOWN_REMOTE_HOSTS", "USER_KEY",
        "TOKEN_TTL", "IDLE_TIMEOUT", "ABSOLUTE_TIMEOUT", "COOKIE_NAME", "COOKIE_SECURE",
        "COOKIE_SAMESITE", "KEY_PREFIX", "LOGIN_PATH", "CALLBACK_PATH", "LOGOUT_PATH",
        # Added by issue 16 (new settings; the names above stay as deployments set them).
        "ALLOW_INSECURE", "MAX_SESSION_BYTES",
        # Added by issue 13: the start-up notice, which servers' default logging shows.
        "QUIET_STARTUP",
        # Added by issue 12: how long a passive check's "not signed in" is remembered.
        "PASSIVE_TTL",
        # Added by issue 17: the cap on a user's live sessions.
        "MAX_SESSIONS_PER_USER",
        # Added by issue 22: the other origins whose pages may open websockets.
        "WEBSOCKET_ORIGINS",
        # Added by issue 23: how long a remembered sign-in this app honours.
        "MAX_REMEMBER",
        # Added by issue 25: the session cookie's attributes, per app.
        "COOKIE_PATH", "COOKIE_HTTPONLY", "COOKIE_PARTITIONED", "COOKIE_MAX_AGE",
        "COOKIE_REFRESH",
    )}


# -- wrong values fail at construction, naming the option -----------------------------------
def _base(role: Role) -> dict[str, Any]:
    common: dict[str, Any] = {"store": MemoryStore(), "key": SyncKey.generate()}
    if role == "idp":
        return {**common, "app_url": "https://id.example", "known_remote_hosts": ["shop.example"]}
    return {**common, "app_url": "https://shop.example", "idp_url": "https://id.example/login"}


WRONG: list[tuple[Role, str, Any]] = [
    (role, name, value)
    for role in ("idp", "remote")
    for name, value in [
        ("idle_timeout", "1800"),
        ("absolute_timeout", 0),
        ("token_ttl", True),
        ("key", None),
        ("key", 12345),
        ("store", None),
        ("store", "redis://127.0.0.1:6379/0"),
        ("app_url", None),
        ("app_url", "localhost:5000"),
        ("cookie_secure", "no"),
        ("cookie_samesite", "bogus"),
        ("cookie_samesite", None),
        ("cookie_name", ""),
        ("cookie_domain", 3),
        # Written into every Set-Cookie line: a ";" would add an attribute of its own (a
        # SameSite=None, a Path), a CR/LF a header.
        ("cookie_domain", "shop.example; SameSite=None"),
        ("cookie_domain", "shop.example\r\nSet-Cookie: x=1"),
        ("cookie_domain", "shop.example,evil.example"),
        ("cookie_domain", "shop example"),
        ("cookie_spelling", "lowercase"),
        ("cookie_spelling", {"Path": "Domain"}),
        ("user_key", ""),
        ("key_prefix", None),
        ("logout_path", "logout"),
        ("logout_path", "/out?x=1"),
        ("callback_path", "cb"),
        # The state cookies' Path: a ";" would add an attribute of its own choosing.
        ("callback_path", "/cb;Domain=evil.example"),
        ("callback_path", "/a,b"),
        ("logout_redirect", None),
        ("clock", 1.0),
        ("cookie_path", "shop"),
        ("cookie_path", "/shop; Domain=evil.example"),
        ("cookie_path", "/a,b"),
        ("cookie_httponly", "no"),
        ("cookie_partitioned", 1),
        ("cookie_max_age", "60"),
        ("cookie_max_age", True),
        ("cookie_max_age", 1.5),
        ("cookie_refresh", None),
    ]
] + [
    ("idp", "login_path", "login"),
    ("idp", "login_path", "/_sessionshare/logout"),
    ("idp", "known_remote_hosts", None),
    ("idp", "known_remote_hosts", [b"shop.example"]),
    ("idp", "authorize", "yes"),
    ("idp", "strict", "no"),
    ("remote", "idp_url", 5),
    ("remote", "idp_url", "id.example/login"),
    ("remote", "state_ttl", "600"),
    ("remote", "state_cookie_name", None),
    ("remote", "token_leeway", -1),
    ("remote", "callback_path", "/_sessionshare/logout"),
]


@pytest.mark.parametrize(
    ("role", "name", "value"), WRONG, ids=[f"{r}-{n}={v!r}" for r, n, v in WRONG]
)
def test_a_wrong_value_is_a_configuration_error_naming_the_option(
    role: Role, name: str, value: Any
) -> None:
    # Where the decision is made: the declaration's one check, for each shell's options.
    for shell in ("wsgi", "asgi"):
        with pytest.raises(ConfigurationError, match=name) as caught:
            check_options(role, {**_base(role), name: value}, shell=shell)
        assert type(caught.value) is ConfigurationError
    check_options(role, _base(role))  # the control: the base values pass


@SHELLS
@pytest.mark.parametrize("role", ["idp", "remote"])
def test_each_constructor_refuses_what_the_check_refuses(role: Role, shell: Shell) -> None:
    # The wiring: each shell's constructor runs that check on its arguments, first.
    for name, value in [("idle_timeout", "1800"), ("cookie_samesite", "bogus"),
                        ("app_url", "localhost:5000"), ("store", None), ("key", 12345),
                        ("clock", 1.0)]:
        with pytest.raises(ConfigurationError) as checked:
            check_options(role, {**_base(role), name: value}, shell=shell)
        with pytest.raises(ConfigurationError) as built:
            MIDDLEWARES[role, shell](app, **{**_base(role), name: value})
        assert str(built.value) == str(checked.value) and name in str(built.value)


def test_the_key_is_never_echoed() -> None:
    secret = SyncKey.generate()
    with pytest.raises(ConfigurationError, match="key") as caught:
        RemoteSessionMiddleware(app, **{**_base("remote"), "key": secret.encode()})
    assert secret not in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    wrong = {"idle_timeout": "1800", "cookie_secure": "no", "logout_path": "logout",
             "cookie_samesite": "bogus", "state_ttl": -1}
    with pytest.raises(ConfigurationError) as caught:
        RemoteSessionMiddleware(app, **{**_base("remote"), **wrong})
    for name in wrong:
        assert name in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("cookie_samesite", "strict"), ("cookie_samesite", "None"), ("token_leeway", 0),
     ("idle_timeout", 90.0), ("logout_redirect", "https://www.example/bye"),
     ("known_remote_hosts", "shop.example, blog.example"),
     ("known_remote_hosts", (host for host in ["shop.example"])), ("cookie_domain", "")],
)
def test_values_accepted_before_are_still_accepted(name: str, value: Any) -> None:
    role: Role = "idp" if name == "known_remote_hosts" else "remote"
    middleware = MIDDLEWARES[role, "wsgi"](app, **{**_base(role), name: value})
    if name == "known_remote_hosts":
        assert isinstance(middleware, IdpAuthMiddleware)
        assert middleware.side.allow_list.is_allowed_callback("https://shop.example/_sessionshare/callback")


# -- one round of checks, in the core: a side built directly refuses what a middleware does ----
#: Refused only once a side was built (the side or the lifecycle checked again, in its own
#: words): now each is a rule of the declaration, so `check` and from_env report it with the
#: rest, and the one message is the same whoever builds the side.
ONCE_REFUSED_BY_THE_SIDE: list[tuple[Role, str, Any, str]] = [
    ("remote", "websocket_origins", ["http://app.shop.example"], "lists plain http origins"),
    ("idp", "websocket_origins", ["http://app.shop.example"], "lists plain http origins"),
    ("remote", "logout_redirect", "javascript:alert(1)", "logout_redirect='javascript:"),
    ("remote", "state_ttl", 24 * 60 * 60 + 1, "state_ttl must be at most 86400 seconds"),
    ("idp", "known_remote_hosts", [], "known_remote_hosts is empty"),
    ("idp", "known_remote_hosts", "shop.example, *", "known remote host"),
    ("remote", "protect", ["/caf%C3%A9"], "protect: the path prefix '/caf%C3%A9' is percent"),
    ("remote", "protect", "/account", "protect takes a list of path prefixes"),
    ("remote", "passive", ["/news%2Fx"], "passive: the path prefix '/news%2Fx' is percent"),
    ("remote", "max_auth_age", {"/admin%2f": 60}, "max_auth_age: the path prefix"),
]


@pytest.mark.parametrize(("role", "name", "value", "message"), ONCE_REFUSED_BY_THE_SIDE,
                         ids=[f"{r}-{n}={v!r}" for r, n, v, _ in ONCE_REFUSED_BY_THE_SIDE])
def test_what_a_side_refused_is_a_rule_of_the_declaration(
    role: Role, name: str, value: Any, message: str
) -> None:
    wrong = {**_base(role), name: value, "idle_timeout": "1800"}
    with pytest.raises(ConfigurationError) as checked:
        check_options(role, wrong)
    # In the same round as every other problem: one error names both.
    assert message in str(checked.value) and "idle_timeout must be" in str(checked.value)
    with pytest.raises(ConfigurationError) as built:
        MIDDLEWARES[role, "wsgi"](app, **wrong)
    assert str(built.value) == str(checked.value)
    side = (IdpSide if role == "idp" else RemoteSide)
    direct = {key: value for key, value in wrong.items() if key != "store"}
    with pytest.raises(ConfigurationError) as refused:
        side(**direct)
    assert str(refused.value) == str(checked.value)


# -- the session cookie's attributes ----------------------------------------------------------
@pytest.mark.parametrize("role", ["idp", "remote"])
def test_a_partitioned_cookie_needs_secure_and_the_message_says_what_to_set(role: Role) -> None:
    plain = {**_base(role), "app_url": "http://localhost:8000", "cookie_secure": False}
    with pytest.raises(ConfigurationError) as caught:
        check_options(role, {**plain, "cookie_partitioned": True})
    message = str(caught.value)
    assert "cookie_partitioned=True needs a Secure cookie" in message
    assert "cookie_secure=True" in message
    check_options(role, {**_base(role), "cookie_partitioned": True})  # https, Secure: fine
    check_options(role, {**plain, "cookie_partitioned": False})


def test_a_host_cookie_name_is_refused_at_another_path() -> None:
    with pytest.raises(ConfigurationError, match="cookie_path '/shop' with cookie_name "
                                                 "'__Host-shop'"):
        check_options("remote", {**_base("remote"), "cookie_name": "__Host-shop",
                                 "cookie_path": "/shop"})
    check_options("remote", {**_base("remote"), "cookie_name": "__Secure-shop",
                             "cookie_path": "/shop"})


@pytest.mark.parametrize(
    ("options", "name"),
    [({}, "__Host-sessionshare"), ({"cookie_path": "/"}, "__Host-sessionshare"),
     ({"cookie_path": "/shop"}, "__Secure-sessionshare"),
     ({"cookie_path": "/shop", "cookie_domain": "shop.example"}, "sessionshare"),
     ({"app_url": "http://localhost", "cookie_secure": False, "cookie_path": "/shop"},
      "sessionshare")],
)
def test_the_default_cookie_name_needs_path_slash_for_host(
    options: dict[str, Any], name: str
) -> None:
    middleware = RemoteSessionMiddleware(app, **{**_base("remote"), **options})
    assert middleware.side.lifecycle.cookie.name == name


def test_the_cookie_options_reach_the_cookie_and_the_lifecycle() -> None:
    middleware = RemoteSessionMiddleware(app, **_base("remote"), cookie_path="/shop",
                                         cookie_httponly=False, cookie_partitioned=True,
                                         cookie_max_age=-1, cookie_refresh=False)
    lifecycle = middleware.side.lifecycle
    cookie = lifecycle.cookie
    assert (cookie.path, cookie.httponly, cookie.partitioned) == ("/shop", False, True)
    assert (lifecycle.cookie_max_age, lifecycle.cookie_refresh) == (-1, False)
    assert lifecycle.ids.cookie_max_age == -1


def test_the_cookie_options_read_from_the_environment() -> None:
    values, problems = read_environ("remote", {
        "SESSIONSHARE_SYNC_KEY": SyncKey.generate(), "SESSIONSHARE_STORE_URL": "memory://",
        "SESSIONSHARE_APP_URL": "https://shop.example",
        "SESSIONSHARE_IDP_URL": "https://id.example/login", "SESSIONSHARE_COOKIE_PATH": "/shop",
        "SESSIONSHARE_COOKIE_HTTPONLY": "false", "SESSIONSHARE_COOKIE_PARTITIONED": "true",
        "SESSIONSHARE_COOKIE_MAX_AGE": "3600", "SESSIONSHARE_COOKIE_REFRESH": "false",
    })
    assert problems == []
    assert {name: values[name] for name in ("cookie_path", "cookie_httponly",
                                            "cookie_partitioned", "cookie_max_age",
                                            "cookie_refresh")} == {
        "cookie_path": "/shop", "cookie_httponly": False, "cookie_partitioned": True,
        "cookie_max_age": 3600, "cookie_refresh": False}


def test_a_followed_cookie_takes_the_asked_attributes_under_the_same_rules() -> None:
    from sessionshare.core.configure import followed_cookie

    options = RemoteSide(**{k: v for k, v in _base("remote").items() if k != "store"}).options
    cookie = followed_cookie(options, {"path": "/shop", "httponly": False, "domain": "x.example",
                                       "partitioned": True, "samesite": "Strict"})
    assert (cookie.path, cookie.httponly, cookie.domain, cookie.partitioned, cookie.samesite,
            cookie.name) == ("/shop", False, "x.example", True, "Strict", "sessionshare")
    assert followed_cookie(options, {"path": "/shop"}).name == "__Secure-sessionshare"
    assert followed_cookie(options, {}).name == "__Host-sessionshare"
    for asked, says in [
        ({"secure": False}, "without Secure on https app_url"),
        ({"samesite": "sometimes"}, "samesite (cookie_samesite) must be"),
        ({"name": "__Host-x", "path": "/shop"}, "__Host- cookie only at Path=/"),
        ({"path": "/a;b"}, "path (cookie_path) must be an absolute URL path"),
        ({"domain": "x.example; Path=/"}, "domain (cookie_domain) must be a host name"),
    ]:
        with pytest.raises(ConfigurationError, match=re.escape(says)):
            followed_cookie(options, asked)
    plain = RemoteSide(key=SyncKey.generate(), app_url="http://localhost",
                       idp_url="http://id.example/login", cookie_secure=False).options
    with pytest.raises(ConfigurationError, match="needs a Secure cookie"):
        followed_cookie(plain, {"partitioned": True})
    # Secure on an http app is the app's to ask (only its plain-http answers miss it).
    assert followed_cookie(plain, {"secure": True, "partitioned": True}).partitioned


def test_check_reports_an_insecure_websocket_origin_with_its_variable() -> None:
    env = {"SESSIONSHARE_SYNC_KEY": SyncKey.generate(), "SESSIONSHARE_STORE_URL": "memory://",
           "SESSIONSHARE_APP_URL": "https://shop.example",
           "SESSIONSHARE_IDP_URL": "https://id.example/login",
           "SESSIONSHARE_WEBSOCKET_ORIGINS": "https://app.shop.example, http://old.shop.example"}
    _, problems = read_environ("remote", env)
    assert problems == [
        "SESSIONSHARE_WEBSOCKET_ORIGINS: websocket_origins lists plain http origins "
        "(http://old.shop.example) on https app_url 'https://shop.example': a page served over "
        "http can be altered in transit; list them as https, or pass allow_insecure=True "
        "(SESSIONSHARE_ALLOW_INSECURE=true) if this is only a test bed"
    ]
    _, problems = read_environ("remote", {**env, "SESSIONSHARE_ALLOW_INSECURE": "true"})
    assert problems == []  # the control: said out loud, it is allowed


@pytest.mark.parametrize("role", ["idp", "remote"])
def test_a_side_is_built_from_its_checked_options_with_the_declared_defaults(role: Role) -> None:
    direct = {key: value for key, value in _base(role).items() if key != "store"}
    direct["quiet_startup"] = True
    side = (IdpSide if role == "idp" else RemoteSide)(**direct)
    declared = {option.name: option.default for option in options_for(role, None)}
    assert "store" not in declared and set(side.options) == set(declared)
    for name, default in declared.items():
        assert side.options[name] == direct.get(name, default), name
    assert side.options.idle_timeout == side.lifecycle.idle_timeout == 30 * 60
    with pytest.raises(AttributeError, match="frozen"):
        side.options.idle_timeout = 5  # type: ignore[misc]
    assert direct["key"] not in repr(side.options)  # never the key, even in a traceback
    # A middleware's side is built from the options the middleware checked: the same object.
    middleware = MIDDLEWARES[role, "asgi"](app, **_base(role), quiet_startup=True)
    assert middleware.side.options.shell == "asgi" and middleware.side.options.store is not None


@pytest.mark.parametrize("shell", ["wsgi", "asgi"])
def test_a_wrong_name_is_a_type_error_that_says_what_was_meant(shell: Shell) -> None:
    with pytest.raises(TypeError, match=r"'idle_timout' \(did you mean 'idle_timeout'\?\)"):
        MIDDLEWARES["remote", shell](app, **_base("remote"), idle_timout=60)
    with pytest.raises(TypeError, match=r"'login_path' \(an option of the IdP only\)"):
        MIDDLEWARES["remote", shell](app, **_base("remote"), login_path="/login")
    without_store = {key: value for key, value in _base("idp").items() if key != "store"}
    with pytest.raises(TypeError, match="missing required keyword argument.*'store'"):
        MIDDLEWARES["idp", shell](app, **without_store)
    with pytest.raises(TypeError, match=r"IdpSide\(\) got an unexpected keyword argument 'store'"):
        IdpSide(**_base("idp"))


def test_idp_needs_an_allow_list() -> None:
    with pytest.raises(ConfigurationError, match="known_remote_hosts"):
        IdpAuthMiddleware(
            app,
            store=MemoryStore(),
            key=SyncKey.generate(),
            app_url="https://id.example",
            known_remote_hosts=[],
        )


# -- from_env ------------------------------------------------------------------------------
def test_from_env_builds_both_middlewares(redis_url: str) -> None:
    key = SyncKey.generate()
    env = {
        "SESSIONSHARE_SYNC_KEY": key,
        "SESSIONSHARE_STORE_URL": redis_url,
        "SESSIONSHARE_APP_URL": "https://shop.example",
        "SESSIONSHARE_IDP_URL": "https://id.example/login",
        "SESSIONSHARE_IDLE_TIMEOUT": "600",
        "SESSIONSHARE_COOKIE_NAME": "__Host-shared",
    }
    remote = RemoteSessionMiddleware.from_env(app, env)
    assert isinstance(remote.store, RedisStore)
    assert remote.side.origin == "https://shop.example" and remote.side.issuer == "https://id.example"
    assert remote.lifecycle.idle_timeout == 600 and remote.lifecycle.cookie.name == "__Host-shared"
    idp = IdpAuthMiddleware.from_env(
        app,
        {
            **env,
            "SESSIONSHARE_APP_URL": "https://id.example",
            "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "shop.example",
            "SESSIONSHARE_STORE_URL": "memory://",
        },
    )
    assert isinstance(idp.store, MemoryStore)
    assert idp.side.allow_list.is_allowed_callback("https://shop.example/_sessionshare/callback")
    remote.store.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SESSIONSHARE_APP_URL": "http://shop.example"}, "cookie_secure=False"),
        ({"SESSIONSHARE_APP_URL": "shop.example"}, "app_url"),
        ({"SESSIONSHARE_IDP_URL": "https://id.example/login?x=1"}, "idp_url"),
        ({"SESSIONSHARE_COOKIE_SECURE": "maybe"}, "SESSIONSHARE_COOKIE_SECURE"),
        ({"SESSIONSHARE_STORE_URL": "mysql://db"}, "SESSIONSHARE_STORE_URL"),
        ({"SESSIONSHARE_IDLE_TIMEOUT": "-5"}, "SESSIONSHARE_IDLE_TIMEOUT"),
        ({"SESSIONSHARE_COOKIE_SAMESITE": "sometimes"}, "samesite"),
        ({"SESSIONSHARE_CALLBACK_PATH": "cb"}, "SESSIONSHARE_CALLBACK_PATH"),
        ({"SESSIONSHARE_LOGOUT_PATH": "logout"}, "SESSIONSHARE_LOGOUT_PATH"),
    ],
)
def test_bad_configuration_fails_at_construction(overrides: dict[str, str], message: str) -> None:
    env = {
        "SESSIONSHARE_SYNC_KEY": SyncKey.generate(),
        "SESSIONSHARE_STORE_URL": "memory://",
        "SESSIONSHARE_APP_URL": "https://shop.example",
        "SESSIONSHARE_IDP_URL": "https://id.example/login",
        **overrides,
    }
    with pytest.raises(ConfigurationError, match=message):
        RemoteSessionMiddleware.from_env(app, env)


def test_from_env_overrides_stand_in_for_unset_variables() -> None:
    env = {"SESSIONSHARE_SYNC_KEY": SyncKey.generate(), "SESSIONSHARE_IDP_URL": "https://id.example/login"}
    store = MemoryStore()
    remote = RemoteSessionMiddleware.from_env(
        app, env, app_url="http://127.0.0.1:8001", cookie_secure=False, store=store,
        protect=["/orders"],
    )
    assert remote.side.origin == "http://127.0.0.1:8001" and remote.store is store


def test_idp_from_env_allows_callbacks_at_the_configured_callback_path() -> None:
    idp = IdpAuthMiddleware.from_env(app, {
        "SESSIONSHARE_SYNC_KEY": SyncKey.generate(),
        "SESSIONSHARE_STORE_URL": "memory://",
        "SESSIONSHARE_APP_URL": "https://id.example",
        "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "shop.example",
        "SESSIONSHARE_CALLBACK_PATH": "/sso/callback",
    })
    assert idp.side.allow_list.is_allowed_callback("https://shop.example/sso/callback")
    assert not idp.side.allow_list.is_allowed_callback("https://shop.example/_sessionshare/callback")


def test_problems_from_variables_name_the_variable_and_the_option() -> None:
    _, problems = read_environ("remote", {"SESSIONSHARE_IDLE_TIMEOUT": "-5"})
    assert any(p.startswith("SESSIONSHARE_IDLE_TIMEOUT: idle_timeout ") for p in problems)


# -- python -m sessionshare check ------------------------------------------------------------
def test_check_names_every_missing_setting() -> None:
    result = run("check", "remote")
    assert result.returncode == 1
    for name in ("SESSIONSHARE_SYNC_KEY", "SESSIONSHARE_APP_URL", "SESSIONSHARE_IDP_URL"):
        assert name in result.stdout


def test_check_reports_bad_values_and_an_unreachable_store(redis_url: str) -> None:
    base = {
        "SESSIONSHARE_SYNC_KEY": SyncKey.generate(),
        "SESSIONSHARE_APP_URL": "https://id.example",
        "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "shop.example, *.blog.example",
    }
    ok = run("check", "idp", env={**base, "SESSIONSHARE_STORE_URL": redis_url})
    assert ok.returncode == 0, ok.stdout
    assert (
        "configuration ok" in ok.stdout
        and SyncKey.parse(base["SESSIONSHARE_SYNC_KEY"]).fingerprint in ok.stdout
    )
    bad = run(
        "check",
        "idp",
        env={**base, "SESSIONSHARE_TOKEN_TTL": "soon", "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "*.com"},
    )
    assert bad.returncode == 1
    assert (
        "SESSIONSHARE_TOKEN_TTL" in bad.stdout and "SESSIONSHARE_KNOWN_REMOTE_HOSTS" in bad.stdout
    )
    down = run("check", "idp", env={**base, "SESSIONSHARE_STORE_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 1 and "does not answer" in down.stdout
    assert base["SESSIONSHARE_SYNC_KEY"] not in bad.stdout + down.stdout


def test_check_warns_when_redis_may_evict_sessions(redis_url: str) -> None:
    env = {
        "SESSIONSHARE_SYNC_KEY": SyncKey.generate(),
        "SESSIONSHARE_APP_URL": "https://id.example",
        "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "shop.example",
        "SESSIONSHARE_STORE_URL": redis_url,
    }
    admin = RedisStore.from_url(redis_url).client
    try:
        admin.config_set("maxmemory-policy", "volatile-lru")
        evicting = run("check", "idp", env=env)
        admin.config_set("maxmemory-policy", "noeviction")
        safe = run("check", "idp", env=env)
    finally:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.close()
    # A warning, not a failure: the settings are right, the server is the operator's.
    assert evicting.returncode == 0 and "configuration ok" in evicting.stdout
    assert "warning: maxmemory-policy is volatile-lru" in evicting.stdout
    assert "noeviction" in evicting.stdout
    assert safe.returncode == 0 and "warning" not in safe.stdout


def _check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], role: Role,
    env: dict[str, str],
) -> tuple[int, str]:
    for name in list(os.environ):
        if name.startswith("SESSIONSHARE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    status = main(["check", role])
    return status, capsys.readouterr().out


def _good(role: Role) -> dict[str, str]:
    env = {"SESSIONSHARE_SYNC_KEY": SyncKey.generate(), "SESSIONSHARE_STORE_URL": "memory://"}
    if role == "idp":
        return {**env, "SESSIONSHARE_APP_URL": "https://id.example",
                "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "shop.example"}
    return {**env, "SESSIONSHARE_APP_URL": "https://shop.example",
            "SESSIONSHARE_IDP_URL": "https://id.example/login"}


# What a new user tried, each once printed "configuration ok" and then failed at start-up
# or silently broke the app (issue 15).
NEW_USER_MISTAKES = [
    ({"SESSIONSHARE_APP_URL": "http://localhost:5000"}, "SESSIONSHARE_COOKIE_SECURE=false"),
    ({"SESSIONSHARE_APP_URL": "localhost:5000"}, "SESSIONSHARE_APP_URL"),
    ({"SESSIONSHARE_CALLBACK_PATH": "cb"}, "SESSIONSHARE_CALLBACK_PATH"),
    ({"SESSIONSHARE_COOKIE_SAMESITE": "bogus"}, "SESSIONSHARE_COOKIE_SAMESITE"),
    ({"SESSIONSHARE_LOGOUT_PATH": "logout"}, "SESSIONSHARE_LOGOUT_PATH"),
]


@pytest.mark.parametrize("role", ["idp", "remote"])
@pytest.mark.parametrize(
    ("mistake", "named"), NEW_USER_MISTAKES,
    ids=[next(iter(m.values())) for m, _ in NEW_USER_MISTAKES],
)
def test_check_reports_what_the_constructor_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], role: Role,
    mistake: dict[str, str], named: str,
) -> None:
    status, out = _check(monkeypatch, capsys, role, _good(role))
    assert status == 0 and "configuration ok" in out  # the control
    env = {**_good(role), **mistake}
    status, out = _check(monkeypatch, capsys, role, env)
    assert status == 1 and named in out and "configuration ok" not in out
    with pytest.raises(ConfigurationError):
        MIDDLEWARES[role, "wsgi"].from_env(app, env)


def test_check_lists_every_problem_on_its_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**_good("remote")}
    for mistake, _ in NEW_USER_MISTAKES[2:]:
        env.update(mistake)
    env["SESSIONSHARE_APP_URL"] = "http://localhost:5000"
    status, out = _check(monkeypatch, capsys, "remote", env)
    lines = out.splitlines()
    assert status == 1 and len(lines) == 4, out
    for variable in ("CALLBACK_PATH", "COOKIE_SAMESITE", "LOGOUT_PATH", "APP_URL"):
        assert sum(f"SESSIONSHARE_{variable}" in line for line in lines) >= 1, variable


def test_check_reports_what_only_the_constructor_knows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not a rule of the declaration: the cookie itself refuses SameSite=None without Secure.
    env = {**_good("remote"), "SESSIONSHARE_APP_URL": "http://localhost:5000",
           "SESSIONSHARE_COOKIE_SECURE": "false", "SESSIONSHARE_COOKIE_SAMESITE": "None"}
    status, out = _check(monkeypatch, capsys, "remote", env)
    assert status == 1 and "secure" in out and "configuration ok" not in out


def test_shell_without_docstring_is_refused_not_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`options --shell asgi` printed the markdown table as if --shell meant nothing."""
    with pytest.raises(SystemExit) as exit_info:
        main(["options", "--shell", "asgi"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--shell" in err and "--docstring" in err


def test_example_urls_in_the_generated_texts_are_literals_not_links() -> None:
    """GitHub (and docutils) turn a bare https://shop.example into a dead link."""
    bare = re.compile(r"https?://[\w.-]+\.example\b")
    table = re.sub(r"`[^`]*`", "", options_markdown())
    assert not bare.search(table), bare.findall(table)
    for role in ("idp", "remote"):
        lines = re.sub(r"``[^`]*``", "", options_docstring(role))
        assert not bare.search(lines), bare.findall(lines)


@SHELLS
def test_an_unset_key_gets_the_keygen_message(shell: Shell) -> None:
    """`key=os.environ.get("SESSIONSHARE_SYNC_KEY")` with the variable unset said only
    "not NoneType"."""
    cls = MIDDLEWARES["remote", shell]
    with pytest.raises(ConfigurationError) as empty:
        cls(app, store=MemoryStore(), key="", app_url="https://shop.example",
            idp_url="https://id.example/login")
    with pytest.raises(ConfigurationError) as unset:
        cls(app, store=MemoryStore(), key=None, app_url="https://shop.example",
            idp_url="https://id.example/login")
    for message in (str(empty.value), str(unset.value)):
        assert "python -m sessionshare keygen" in message and "SESSIONSHARE_SYNC_KEY" in message
    assert "NoneType" not in str(unset.value) and "key=None" in str(unset.value)


# -- check: setups that cannot work, and only its result (the first-hour trial) ------------------
def test_check_refuses_an_idp_url_on_the_apps_own_origin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "configuration ok"; every sign-in then redirected to itself, endlessly."""
    env = {**_good("remote"), "SESSIONSHARE_APP_URL": "https://shop.example",
           "SESSIONSHARE_IDP_URL": "https://SHOP.example:443/login"}
    status, out = _check(monkeypatch, capsys, "remote", env)
    assert status == 1 and "configuration ok" not in out
    assert "SESSIONSHARE_IDP_URL" in out and "own origin" in out and "loop" in out
    with pytest.raises(ConfigurationError, match="own origin"):
        RemoteSessionMiddleware(app, store=MemoryStore(), key=SyncKey.generate(),
                                app_url="https://shop.example",
                                idp_url="https://shop.example/login")


def test_check_warns_of_an_idp_url_without_a_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**_good("remote"), "SESSIONSHARE_IDP_URL": "https://id.example"}
    status, out = _check(monkeypatch, capsys, "remote", env)
    assert status == 0 and "configuration ok" in out  # the IdP may answer at "/"
    (line,) = [line for line in out.splitlines() if "idp_url" in line]
    assert line.startswith("remote: warning:") and "no path" in line
    assert "https://id.example/login" in line and "login_path" in line
    status, out = _check(monkeypatch, capsys, "remote", _good("remote"))  # with /login
    assert status == 0 and "idp_url" not in out


def test_check_warns_that_a_memory_store_is_one_process_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    status, out = _check(monkeypatch, capsys, "idp", _good("idp"))
    assert status == 0 and "configuration ok" in out
    (line,) = [line for line in out.splitlines() if "warning" in line]
    assert "memory://" in line and "each process" in line and "redis://" in line
    status, out = _check(monkeypatch, capsys, "idp",
                         {**_good("idp"), "SESSIONSHARE_STORE_URL": redis_url})
    assert status == 0 and "warning" not in out


def test_check_names_a_mistyped_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SESSIONSHARE_COOKIE_SECUR=false was silently ignored (the Django dict says
    "did you mean")."""
    env = {**_good("remote"), "SESSIONSHARE_APP_URL": "http://localhost:5000",
           "SESSIONSHARE_COOKIE_SECUR": "false"}
    status, out = _check(monkeypatch, capsys, "remote", env)
    assert status == 1  # the Secure cookie on http: the variable meant to turn it off
    (line,) = [line for line in out.splitlines() if "SESSIONSHARE_COOKIE_SECUR " in line]
    assert "warning" in line and "did you mean SESSIONSHARE_COOKIE_SECURE?" in line
    assert "ignored" in line


def test_check_prints_its_result_only() -> None:
    """The start-up notice (a logged WARNING) came out on stderr in the middle of it."""
    env = {**_good("idp"), "SESSIONSHARE_APP_URL": "http://id.localhost:8000",
           "SESSIONSHARE_COOKIE_SECURE": "false"}
    result = run("check", "idp", env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "started origin=" not in result.stdout and "configuration ok" in result.stdout
    # A warning the middleware logs while it is built is part of the result, on stdout.
    assert "idp: warning: allow_list_https_only" in result.stdout


def test_a_one_shot_iterator_is_read_once_so_the_side_gets_every_entry() -> None:
    """``protect``, ``passive`` or ``known_remote_hosts`` given as a generator: the checks
    read it, and the side gets the same entries -- not the emptied iterator, which for
    ``protect`` would protect no path at all."""
    remote = RemoteSessionMiddleware(app, **_base("remote"), protect=iter(["/account/"]),
                                     passive=(prefix for prefix in ["/blog/"]))
    options = remote.side.options
    assert tuple(options["protect"]) == ("/account/",)
    assert tuple(options["passive"]) == ("/blog/",)
    shop = webtest.TestApp(remote)
    answer = shop.get("/account/x", headers={"Accept": "text/html"}, status=302)
    assert answer.location.startswith("https://id.example/login")
    idp = IdpAuthMiddleware(app, **{**_base("idp"),
                                    "known_remote_hosts": iter(["shop.example"])})
    assert tuple(idp.side.options["known_remote_hosts"]) == ("shop.example",)
    assert idp.side.allow_list.entries
