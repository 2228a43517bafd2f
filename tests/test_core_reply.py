"""sessionshare.core.reply: the one reply type and the library's own answers."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

import sessionshare.core.reply as reply_module
from sessionshare.core.reply import NO_STORE, RETRY_AFTER, Reply

LOGIN_URL = "https://id.example/login"


def test_redirect_is_303_with_no_body_and_never_cached() -> None:
    reply = Reply.redirect("/orders?page=2", headers=[("Set-Cookie", "a=1")])
    assert (reply.status, reply.status_line, reply.body) == (303, "303 See Other", b"")
    assert reply.headers == (
        ("Location", "/orders?page=2"),
        ("Content-Length", "0"),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
        ("Set-Cookie", "a=1"),
    )
    assert Reply.redirect("https://id.example/login?x", status=302).status_line == "302 Found"


def test_error_as_json_carries_the_reason_and_extra() -> None:
    reply = Reply.error(401, "not_authenticated", "Sign in first.", as_json=True,
                        extra={"login_url": LOGIN_URL})
    assert reply.status_line == "401 Unauthorized"
    assert json.loads(reply.body) == {
        "error": "not_authenticated", "message": "Sign in first.", "login_url": LOGIN_URL,
    }
    headers = dict(reply.headers)
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(reply.body))
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"


def test_error_page_escapes_everything_it_shows() -> None:
    reply = Reply.error(403, "bad_state", "<script>alert(1)</script>", as_json=False,
                        extra={"login_url": 'https://id.example/login?a="><b>'})
    page = reply.body.decode()
    assert reply.status_line == "403 Forbidden"
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert '"><b>' not in page and "&quot;&gt;&lt;b&gt;" in page
    assert "<title>Sign-in refused</title>" in page
    assert "Reason: <code>bad_state</code>" in page
    assert dict(reply.headers)["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    ("status", "title"),
    [(400, "Bad request"), (401, "Sign-in required"), (403, "Sign-in refused"),
     (405, "Method not allowed"), (503, "Service unavailable"), (409, "Error")],
)
def test_error_page_titles(status: int, title: str) -> None:
    page = Reply.error(status, "malformed", "m", as_json=False).body.decode()
    assert f"<h1>{title}</h1>" in page


def test_extra_headers_come_last_and_never_replace_the_safety_ones() -> None:
    reply = Reply.error(405, "bad_method", "m", as_json=True, headers=[("Allow", "POST")])
    names = [name for name, _ in reply.headers]
    assert names == ["Content-Type", "Content-Length", "X-Content-Type-Options",
                     *(name for name, _ in NO_STORE), "Allow"]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "page"])
def test_store_unavailable_is_503_retry_after(as_json: bool) -> None:
    reply = Reply.store_unavailable(as_json=as_json)
    assert reply.status_line == "503 Service Unavailable"
    assert dict(reply.headers)["Retry-After"] == str(RETRY_AFTER) == "2"
    assert b"store_unavailable" in reply.body
    assert (dict(reply.headers)["Content-Type"] == "application/json") is as_json


def test_logout_form_posts_to_the_escaped_action() -> None:
    reply = Reply.logout_form('/out"x')
    assert reply.status_line == "200 OK"
    assert b'<form method="post" action="/out&quot;x">' in reply.body
    assert dict(reply.headers)["Content-Length"] == str(len(reply.body))
    assert dict(reply.headers)["Cache-Control"] == "no-store"
    # Not no-referrer: a browser would send "Origin: null" on the form's POST, which the
    # sign-out's same-origin check refuses (tests/test_browser.py shows it in Chromium).
    assert dict(reply.headers)["Referrer-Policy"] == "same-origin"


def test_a_notice_is_200_escaped_never_cached_and_no_redirect() -> None:
    page = Reply.notice("<b>Hi</b>", "a & b", link='/"><script>', as_json=False)
    headers = dict(page.headers)
    assert page.status == 200 and "Location" not in headers
    assert b"<script>" not in page.body
    assert b"&lt;b&gt;Hi" in page.body and b"a &amp; b" in page.body
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert all(header in page.headers for header in NO_STORE)
    assert headers["Content-Length"] == str(len(page.body))
    as_json = Reply.notice("t", "m", link="/", as_json=True)
    assert json.loads(as_json.body) == {"message": "m", "next": "/"}


def test_a_reply_is_frozen() -> None:
    reply = Reply.redirect("/")
    with pytest.raises(dataclasses.FrozenInstanceError):
        reply.status = 200  # type: ignore[misc]
    assert hash(reply) == hash(Reply.redirect("/"))


def test_the_module_knows_no_server_interface() -> None:
    # The core builds replies for the WSGI shell today and an ASGI one tomorrow: it
    # imports the standard library and the errors module, nothing else.
    tree = ast.parse(Path(reply_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported == {"__future__", "html", "json", "collections.abc", "dataclasses", "http",
                        "..errors"}
