"""sessionshare.core.request: the facts of a request, classified without any server interface."""

from __future__ import annotations

import pytest

from sessionshare.core.request import MAX_QUERY_LENGTH, Request, safe_return_path


@pytest.mark.parametrize(
    ("request_", "navigation", "json"),
    [
        (Request("GET", "/", fetch_mode="navigate"), True, False),
        (Request("GET", "/", fetch_mode="cors", accept="text/html"), False, False),
        (Request("GET", "/", accept="text/html,application/xhtml+xml"), True, False),
        (Request("HEAD", "/", accept="text/html"), True, False),
        (Request("POST", "/", accept="text/html"), False, False),
        (Request("GET", "/", accept="application/json, text/html;q=0"), False, True),
        (Request("GET", "/", accept="*/*"), False, True),
        (Request("GET", "/"), False, True),
    ],
    ids=["sec-fetch navigate", "fetch() asking for html", "page load", "HEAD page", "form POST",
         "html refused with q=0", "wildcard client", "no Accept"],
)
def test_navigation_and_json(request_: Request, navigation: bool, json: bool) -> None:
    assert request_.is_navigation is navigation
    assert request_.wants_json is json


def test_params_are_parsed_once_and_refused_when_hostile() -> None:
    request = Request("GET", "/login", query="callback=a&state=b&state=c")
    assert request.params == {"callback": ["a"], "state": ["b", "c"]}
    assert request.params is request.params  # parsed once
    assert Request("GET", "/", query="x=" + "a" * MAX_QUERY_LENGTH).params is None
    assert Request("GET", "/", query="x=%ff").params is None  # not UTF-8
    assert Request("GET", "/", query="&".join(f"k{i}=v" for i in range(65))).params is None


def test_full_path_keeps_the_mount_point_and_query() -> None:
    request = Request("GET", "/orders", query="page=2", root="/shop")
    assert request.full_path == "/shop/orders?page=2"
    # A non-ASCII byte (PEP 3333 hands it over as latin-1) becomes U+FFFD, which the
    # return-path check then refuses: such a page is never a place to come back to.
    odd = Request("GET", "/caf\xe9").full_path
    assert odd == "/caf\ufffd" and safe_return_path(odd) == "/"


def test_the_repr_shows_no_cookie() -> None:
    request = Request("GET", "/orders", cookies="sessionshare=" + "s" * 43)
    assert "s" * 43 not in repr(request) and "/orders" in repr(request)
