"""The README and the documentation pages in ``docs/``: what a newcomer reads first.

The site itself is built by ``.ci/run`` (``sphinx -W``); these checks hold the
pages to the code: every reason code the library can answer with has a
symptom on the troubleshooting page, and the README stays the short entry
point whose links lead into the docs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import webtest
from flow import CALLBACK, HTML, IDP, LOGIN, SHOP, idp_app, remote_app
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sessionshare import (
    IdpAuthMiddleware,
    RedisStore,
    RemoteSessionMiddleware,
    SyncKey,
)
from sessionshare.errors import Reason

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
TROUBLESHOOTING = (REPO / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
CODES = sorted(set(get_args(Reason)))


def test_the_reason_codes_are_read_from_the_library() -> None:
    assert {"replayed", "unknown_ticket", "host_not_allowed", "store_unavailable"} <= set(CODES)


@pytest.mark.parametrize("code", CODES)
def test_every_reason_code_has_a_symptom_and_a_reference_row(code: str) -> None:
    by_symptom, _, reference = TROUBLESHOOTING.partition("## Every reason code")
    assert reference, "the troubleshooting page lost its reference table"
    assert f"`{code}`" in by_symptom, f"no symptom on docs/troubleshooting.md names {code}"
    assert f"`{code}`" in reference, f"the reference table has no row for {code}"


def test_the_two_commands_are_two() -> None:
    section = README.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| **")]
    assert len(rows) == 2, rows
    assert "pip install -e '.[demo]' && python -m sessionshare demo" in rows[0]
    assert "pip install -e '.[dev]' && python -m pytest" in rows[1]


def test_the_readme_links_lead_to_pages_that_exist() -> None:
    targets = re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", README)
    assert "docs/troubleshooting.md" in targets and "docs/options.md" in targets
    for target in targets:
        assert (REPO / target).is_file(), target
    pages = {path.stem for path in (REPO / "docs").glob("*.md")} - {"index"}
    linked = {Path(target).stem for target in targets if target.startswith("docs/")}
    assert pages <= linked, f"pages the README does not lead to: {sorted(pages - linked)}"


def test_the_asgi_quick_start_is_fastapi_in_under_15_lines() -> None:
    section = README.split("**FastAPI, Starlette, any ASGI app**", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) < 15
    for needed in ("FastAPI()", "from sessionshare.asgi import RemoteSessionMiddleware",
                   "AsyncRedisStore", "current_user", "add_middleware"):
        assert needed in code
    assert "docs/options.md" in section.split("```", 1)[0]  # the options table, shared


# -- the docs build from the docs extra alone ---------------------------------------------------
def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The imports a module runs when imported (``TYPE_CHECKING`` blocks left out)."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.Try):
            pending += [*node.body, *node.orelse, *node.finalbody]
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            pending += [*node.body, *node.orelse]
    return found


def _package_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _third_party_modules_imported_by(modules: set[str]) -> set[str]:
    """Top-level names of what importing ``modules`` imports outside the package."""
    seen: set[str] = set()
    outside: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        path = _package_file(module)
        if path is None and "." in module:  # a class or function: its module
            todo.append(module.rpartition(".")[0])
        if path is None or module in seen:
            continue
        seen.add(module)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        parents = module.split(".")
        for index in range(1, len(parents)):  # importing a module runs its packages
            todo.append(".".join(parents[:index]))
        for node in _module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                assert node.module is not None
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                if name.split(".")[0] == "sessionshare":
                    todo.append(name)
                elif name.split(".")[0] not in sys.stdlib_module_names:
                    outside.add(name.split(".")[0])
    return outside - {"_typeshed"}


def _extra(extras: dict[str, list[str]], name: str) -> set[str]:
    """The distributions an extra installs, its ``sessionshare[...]`` extras expanded."""
    found: set[str] = set()
    for text in extras[name]:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == "sessionshare":
            for inner in requirement.extras:
                found |= _extra(extras, inner)
        else:
            found.add(canonicalize_name(requirement.name))
    return found


def test_the_docs_extra_installs_whatever_the_api_reference_imports() -> None:
    """`pip install -e '.[docs]' && python -m sphinx -W ...` failed: autodoc could not
    import Starlette, prometheus_client, OpenTelemetry or Django."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pages = "".join(path.read_text(encoding="utf-8") for path in (REPO / "docs").glob("*.md"))
    targets = set(re.findall(r"^\.\. auto\w+:: (sessionshare[\w.]*)", pages, re.MULTILINE))
    assert "sessionshare.contrib.django.views.sign_in" in targets  # the reader works
    needed = _third_party_modules_imported_by({*targets, "sessionshare"})
    assert {"django", "starlette", "prometheus_client", "opentelemetry", "werkzeug"} <= needed
    installed = {canonicalize_name(r) for r in map(lambda t: Requirement(t).name,
                                                     project["dependencies"])}
    installed |= _extra(project["optional-dependencies"], "docs")
    distributions = importlib.metadata.packages_distributions()
    missing = sorted(
        module for module in needed
        if not {canonicalize_name(d) for d in distributions.get(module, [module])} & installed
    )
    assert not missing, f"autodoc imports what `.[docs]` does not install: {missing}"


def test_ci_builds_the_docs_in_a_fresh_venv_with_the_docs_extra_only() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    docs = script[script.index("documentation site"):]
    assert re.search(r'python -m venv "\$(\w+)"', docs), "no fresh venv for the docs"
    venv = re.search(r'python -m venv "\$(\w+)"', docs).group(1)  # type: ignore[union-attr]
    assert f"\"${venv}/bin/python\" -m pip install -q -e '.[docs]'" in docs
    assert f'"${venv}/bin/python" -m sphinx -W' in docs


# -- what a newcomer reads first, held to what is true ------------------------------------------
def test_the_readme_counts_the_demos_sites() -> None:
    from sessionshare.demo import SITES

    words = "zero one two three four five six seven eight nine".split()
    row = README.split("## The two commands", 1)[1].split("| **run the demo**", 1)[1]
    assert f"an IdP and {words[len(SITES) - 1]} remote apps" in row.splitlines()[0]


def test_the_two_commands_start_from_a_venv() -> None:
    """Stock Debian has no `python` and refuses `pip install` outside a venv
    (externally-managed-environment)."""
    section = README.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    before_table = section.split("| what |", 1)[0]
    assert "python3 -m venv .venv && . .venv/bin/activate" in before_table
    assert "externally-managed-environment" in before_table


def test_the_docs_say_how_to_build_the_wheel_as_ci_does() -> None:
    pages = "".join(path.read_text(encoding="utf-8") for path in (REPO / "docs").glob("*.md"))
    assert "python -m pip install build && python -m build" in pages
    assert "python -m build" in (REPO / ".ci" / "package-smoke").read_text(encoding="utf-8")


def test_example_urls_are_not_rendered_as_links() -> None:
    """A bare https://shop.example in Markdown becomes a dead link on GitHub and in the site."""
    bare = re.compile(r"https?://[\w.-]+\.example\b")
    for path in [REPO / "README.md", REPO / "SECURITY.md", *(REPO / "docs").glob("*.md")]:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        text = re.sub(r"`[^`\n]*`", "", text)
        assert not bare.search(text), (path.name, bare.findall(text))


# -- the README's quick starts run as written ----------------------------------------------------
def _quick_starts() -> dict[str, list[str]]:
    """The Python blocks of the README's quick start, by the bold label before them."""
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    found: dict[str, list[str]] = {}
    label = ""
    for part in re.split(r"(\*\*[^*\n]+\*\*|```python\n.*?```)", section, flags=re.DOTALL):
        if part.startswith("**"):
            label = part.strip("*")
        elif part.startswith("```python"):
            found.setdefault(label, []).append(part[len("```python\n"):-3])
    return found


QUICK_STARTS = _quick_starts()


def _variables(monkeypatch: pytest.MonkeyPatch, **values: str) -> str:
    """A clean environment with ``SESSIONSHARE_<NAME>`` variables; the sync key it made."""
    for name in list(os.environ):
        if name.startswith("SESSIONSHARE_"):
            monkeypatch.delenv(name)
    key = SyncKey.generate()
    monkeypatch.setenv("SESSIONSHARE_SYNC_KEY", key)
    for name, value in values.items():
        monkeypatch.setenv(f"SESSIONSHARE_{name.upper()}", value)
    return key


def test_the_quick_starts_are_the_ones_tested_here() -> None:
    assert sorted(QUICK_STARTS) == sorted([
        "The IdP, in Flask", "Any WSGI app", "Flask", "Pyramid", "Django",
        "FastAPI, Starlette, any ASGI app"])
    assert [len(blocks) for blocks in QUICK_STARTS.values()].count(1) == 5


def test_the_idp_quick_start_signs_in_and_hands_off(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    """The README pointed at a 120-line example; this is the IdP in a dozen lines."""
    (code,) = QUICK_STARTS["The IdP, in Flask"]
    assert len(code.strip().splitlines()) <= 16
    key = _variables(monkeypatch, app_url=IDP, known_remote_hosts=SHOP,
                     cookie_secure="false", store_url=redis_url)
    idp: dict[str, Any] = {"__name__": "idp_quick_start",
                           "check_password": lambda user, password: password == "secret"}
    exec(code, idp)  # noqa: S102 - the README's own code
    store = RedisStore.from_url(redis_url)
    shop = RemoteSessionMiddleware(remote_app, store=store, key=key, app_url=SHOP,
                                   idp_url=LOGIN, cookie_secure=False)
    try:
        at_idp = webtest.TestApp(idp["app"], extra_environ={"HTTP_HOST": "id.test"})
        at_shop = webtest.TestApp(shop, extra_environ={"HTTP_HOST": "shop.test"})
        sent = at_shop.get("/orders", headers=HTML, status=302)
        login = sent.location.removeprefix(IDP)
        assert "<form method=post>" in at_idp.get(login, headers=HTML).text
        wrong = at_idp.post(login, {"user": "alice", "password": "nope"}, headers=HTML)
        assert wrong.status_int == 200 and "<form" in wrong.text  # the control
        back = at_idp.post(login, {"user": "alice", "password": "secret"}, headers=HTML)
        assert back.status_int == 303 and back.location.startswith(SHOP + CALLBACK)
        landed = at_shop.get(back.location.removeprefix(SHOP), headers=HTML, status=303)
        assert at_shop.get(landed.location, headers=HTML).json["user"] == "alice"
    finally:
        store.close()
        idp["app"].wsgi_app.store.close()


def test_the_wsgi_flask_and_pyramid_quick_starts_build_their_middlewares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flask import Flask
    from pyramid.config import Configurator

    _variables(monkeypatch, app_url="https://shop.example",
               idp_url="https://id.example/login", store_url="memory://")
    (wsgi,) = QUICK_STARTS["Any WSGI app"]
    plain: dict[str, Any] = {"idp_app": idp_app, "shop_app": remote_app}
    exec(wsgi, plain)  # noqa: S102
    assert isinstance(plain["idp"], IdpAuthMiddleware)
    assert isinstance(plain["shop"], RemoteSessionMiddleware)
    plain["store"].close()
    (flask,) = QUICK_STARTS["Flask"]
    with_flask: dict[str, Any] = {"app": Flask("flask_quick_start")}
    exec(flask, with_flask)  # noqa: S102
    assert isinstance(with_flask["app"].wsgi_app, RemoteSessionMiddleware)
    (pyramid,) = QUICK_STARTS["Pyramid"]
    with_pyramid: dict[str, Any] = {"config": Configurator()}
    exec(pyramid, with_pyramid)  # noqa: S102
    assert isinstance(with_pyramid["app"], RemoteSessionMiddleware)


def test_the_django_quick_start_passes_its_checks_and_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.test import override_settings

    from sessionshare.contrib.django.checks import middleware_messages
    from sessionshare.contrib.django.views import sign_in

    settings_py, urls_py, wsgi_py = QUICK_STARTS["Django"]
    _variables(monkeypatch, store_url="memory://")
    ours: dict[str, Any] = {}
    exec(settings_py, ours)  # noqa: S102
    assert "sessionshare.contrib.django" in ours["INSTALLED_APPS"]
    written = {name: [entry for entry in ours[name] if entry is not ...]
               for name in ("MIDDLEWARE", "AUTHENTICATION_BACKENDS")}
    urls: dict[str, Any] = {}
    exec(urls_py, urls)  # noqa: S102 - the imports it needs are in it
    assert urls["urlpatterns"][0].callback is sign_in
    with override_settings(SESSIONSHARE=ours["SESSIONSHARE"],
                           SESSION_ENGINE=ours["SESSION_ENGINE"], **written):
        assert middleware_messages("remote", ours["SESSIONSHARE"]) == []
        served: dict[str, Any] = {}
        exec(wsgi_py, served)  # noqa: S102
    assert isinstance(served["application"], RemoteSessionMiddleware)


def test_the_fastapi_quick_start_starts_and_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """It used a `KEY` it never defined."""
    import httpx
    from asgibridge import await_on_loop

    (code,) = QUICK_STARTS["FastAPI, Starlette, any ASGI app"]
    _variables(monkeypatch)
    news: dict[str, Any] = {}
    exec(code, news)  # noqa: S102

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=news["app"])
        async with httpx.AsyncClient(transport=transport, base_url="https://news.example") as c:
            return await c.get("/me", headers={"Accept": "application/json"})

    answer = await_on_loop(main())  # no cookie: refused before any store call
    assert answer.status_code == 401
    assert answer.json()["login_url"] == "https://id.example/login"


def test_the_run_it_locally_recipe_passes_check(redis_url: str) -> None:
    """Local http development had no recipe: http origins, cookie_secure=False, allow-list
    entries with their scheme. Its commands, run as written (the store: the suite's)."""
    import subprocess

    page = (REPO / "docs" / "getting-started.md").read_text(encoding="utf-8")
    section = page.split("## Run it locally (plain http)", 1)[1].split("\n## ", 1)[0]
    for needed in ("cookie_secure=False", "SESSIONSHARE_COOKIE_SECURE=false",
                   "http://shop.localhost:8001", "127.0.0.1:8001", "bad_state"):
        assert needed in section, needed
    commands = section.split("```sh\n", 1)[1].split("```", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSHARE_")}
    env.update(SESSIONSHARE_STORE_URL=redis_url, PYTHONPATH=str(REPO),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("configuration ok") == 2 and "warning" not in done.stdout
    assert "docs/getting-started.md#run-it-locally-plain-http" in README
