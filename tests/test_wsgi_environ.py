"""sessionshare.wsgi.environ: the environ as a request (classification, query, path); replies."""

from __future__ import annotations

from typing import Any

import pytest

from sessionshare.core.reply import Reply
from sessionshare.core.request import accepts, safe_return_path
from sessionshare.wsgi.environ import reply_body, request_of, send_reply, wants_json


@pytest.mark.parametrize(
    ("environ", "navigation"),
    [
        ({"REQUEST_METHOD": "GET", "HTTP_SEC_FETCH_MODE": "navigate"}, True),
        ({"REQUEST_METHOD": "HEAD", "HTTP_ACCEPT": "text/html,*/*"}, True),
        ({"REQUEST_METHOD": "GET", "HTTP_SEC_FETCH_MODE": "cors", "HTTP_ACCEPT": "text/html"},
         False),
        ({"REQUEST_METHOD": "GET", "HTTP_ACCEPT": "application/json"}, False),
        ({"REQUEST_METHOD": "GET"}, False),
        ({"REQUEST_METHOD": "POST", "HTTP_SEC_FETCH_MODE": "navigate"}, False),
    ],
    ids=["sec-fetch navigate", "html head", "fetch asking html", "json", "no accept", "post"],
)
def test_is_navigation(environ: dict[str, Any], navigation: bool) -> None:
    assert request_of(environ).is_navigation is navigation


def test_query_params_limits() -> None:
    assert request_of({"QUERY_STRING": "a=1&a=2&b="}).params == {"a": ["1", "2"], "b": [""]}
    assert request_of({"QUERY_STRING": "a=" + "x" * 5000}).params is None
    many = "&".join(f"k{i}=v" for i in range(100))
    assert request_of({"QUERY_STRING": many}).params is None
    assert request_of({"QUERY_STRING": "a=%ff"}).params is None
    assert request_of({}).params == {}


def test_request_path_keeps_query_and_script_name() -> None:
    environ = {"SCRIPT_NAME": "/app", "PATH_INFO": "/orders", "QUERY_STRING": "page=2"}
    assert request_of(environ).full_path == "/app/orders?page=2"
    # PEP 3333 paths are latin-1 decoded bytes; anything non-ASCII becomes U+FFFD,
    # which the return-path check then refuses.
    odd = request_of({"PATH_INFO": "/caf\xc3\xa9"}).full_path
    assert odd == "/caf\ufffd\ufffd"
    assert safe_return_path(odd) == "/"


def _capture() -> tuple[list[Any], Any]:
    seen: list[Any] = []
    return seen, lambda status, headers, exc_info=None: seen.append((status, dict(headers)))


def _send_error(environ: dict[str, Any], start: Any, message: str) -> list[bytes]:
    reply = Reply.error(403, "bad_state", message, as_json=wants_json(environ))
    return send_reply(environ, start, reply)


def test_error_reply_html_escapes_and_json_for_api() -> None:
    seen, start = _capture()
    body = _send_error({"REQUEST_METHOD": "GET", "HTTP_ACCEPT": "text/html"}, start,
                       "<script>x</script>")
    assert b"<script>x" not in body[0] and b"&lt;script&gt;" in body[0]
    assert seen[0][1]["X-Content-Type-Options"] == "nosniff"
    seen, start = _capture()
    body = _send_error({"REQUEST_METHOD": "GET"}, start, "m")
    assert body[0] == b'{"error": "bad_state", "message": "m"}'
    assert wants_json({"REQUEST_METHOD": "POST", "HTTP_ACCEPT": "application/json"})
    seen, start = _capture()
    assert _send_error({"REQUEST_METHOD": "HEAD"}, start, "m") == [b""]
    assert seen[0][0] == "403 Forbidden"


def test_head_keeps_every_header_and_drops_only_the_body() -> None:
    reply = Reply.logout_form("/_sessionshare/logout")
    seen, start = _capture()
    assert send_reply({"REQUEST_METHOD": "HEAD"}, start, reply) == [b""]
    assert seen[0] == ("200 OK", dict(reply.headers))
    assert dict(reply.headers)["Content-Length"] == str(len(reply.body)) != "0"
    assert reply_body({"REQUEST_METHOD": "GET"}, reply) == [reply.body]


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html", True),
        ("TEXT/HTML;q=0.5", True),
        ("text/html;level=1;q=0.5", True),
        ("application/json, text/html;q=0", False),
        ("application/json, text/html ; q=0.0", False),
        ("text/html;q=bogus", False),
        ("*/*", False),
        ("text/*", False),
        ("application/xhtml+xml", False),
        ("", False),
        (",,;;=q", False),
    ],
    ids=["html", "upper case", "parameters", "q=0", "q=0.0 spaced", "bad q", "any",
         "any text", "xhtml", "empty", "garbage"],
)
def test_accepts_reads_quality_values(accept: str, html: bool) -> None:
    assert accepts(accept, "text/html") is html


def test_html_refused_with_q0_is_not_a_navigation_and_gets_json() -> None:
    # A script that sends `Accept: application/json, text/html;q=0` says it cannot
    # use a page: it must get the 401 JSON, never a cross-origin redirect.
    environ = {"REQUEST_METHOD": "GET", "HTTP_ACCEPT": "application/json, text/html;q=0"}
    assert not request_of(environ).is_navigation
    assert wants_json(environ)
    both = {"REQUEST_METHOD": "GET", "HTTP_ACCEPT": "application/json, text/html"}
    assert request_of(both).is_navigation



#: Each field of a Request, and the distinct text its header or key carries in the test below.
_FIELDS = {"method": "PATCH", "path": "/p", "query": "q=1", "cookies": "c=1", "accept": "a/b",
           "fetch_mode": "cors", "root": "/r", "origin": "https://o.example",
           "fetch_site": "same-site", "purpose": "prefetch", "user_agent": "UA/1",
           "host": "h.example"}


def test_every_header_lands_in_its_own_field() -> None:
    # request_of passes its values by position (the cheaper call on every request): a
    # value in the wrong place -- an Origin read as Sec-Fetch-Site, say -- fails here.
    environ = {"REQUEST_METHOD": "PATCH", "PATH_INFO": "/p", "QUERY_STRING": "q=1",
               "HTTP_COOKIE": "c=1", "HTTP_ACCEPT": "a/b", "HTTP_SEC_FETCH_MODE": "cors",
               "SCRIPT_NAME": "/r", "HTTP_ORIGIN": "https://o.example",
               "HTTP_SEC_FETCH_SITE": "same-site", "HTTP_SEC_PURPOSE": "prefetch",
               "HTTP_USER_AGENT": "UA/1", "HTTP_HOST": "h.example"}
    request = request_of(environ)
    assert {name: getattr(request, name) for name in _FIELDS} == _FIELDS
    assert request.native is environ
