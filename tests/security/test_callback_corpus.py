"""Every hostile callback of the corpus, driven through the real IdP middleware.

Two situations per URL, as DESIGN section 1 step 3 has them:

- **signed in**: the user already has an IdP session, so an accepted
  callback would be answered at once with ``303 callback?token=T``;
- **pending**: the user is signed out; an accepted callback would be kept as
  a pending hand-off and redirected to, token attached, right after the
  login form is posted.

A rejected callback must never be redirected to on either path: the request
goes on to the IdP's own login page (200, no ``Location``), no ticket is
minted, the sign-in itself still works (and ends on the IdP app's own page),
and ``callback_rejected`` is logged. In strict mode the answer is a 400.
The positive controls (``ACCEPTED``) run through the very same steps and
must end at the canonical callback with a token: the checks can fail.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from flow import IDP, LOGIN, PASSWORDS, Browser, Deployment

from .corpus import ACCEPTED, CALLBACK_ATTACKS, QUERY_ATTACKS, Attack
from .deploy import STATE, Events, assert_idp_own_answer, sign_in_at_idp


def _login_url(callback: str, state: str = STATE) -> str:
    return f"{LOGIN}?callback={quote(callback, safe='')}&state={state}"


def _assert_login_page_without_redirect(response: object) -> None:
    assert response.status_int == 200, response  # type: ignore[attr-defined]
    assert "login form" in response.text  # type: ignore[attr-defined]
    assert "Location" not in response.headers  # type: ignore[attr-defined]


def _assert_rejected_signed_in(dep: Deployment, events: Events, login_url: str) -> None:
    browser = Browser(dep)
    sign_in_at_idp(browser)
    events.clear()
    _assert_login_page_without_redirect(browser.get(login_url))
    assert events.count("callback_rejected") == 1, events.messages
    assert events.count("ticket_issued") == 0, events.messages
    # The IdP session is untouched: still signed in, nothing else happened.
    assert browser.get(IDP + "/").text == "idp home user=alice"


def _assert_rejected_pending(dep: Deployment, events: Events, login_url: str) -> None:
    browser = Browser(dep)
    _assert_login_page_without_redirect(browser.get(login_url))
    done = browser.post(login_url, {"username": "bob", "password": PASSWORDS["bob"]})
    # The IdP app's own answer to a login, never a hand-off.
    assert_idp_own_answer(done, "bob")
    assert events.count("ticket_issued") == 0, events.messages
    assert events.count("callback_rejected") >= 1, events.messages
    assert browser.get(IDP + "/").text == "idp home user=bob"
    # No hand-off was left pending for a later request either.
    _assert_login_page_without_redirect(browser.get(LOGIN))
    assert events.count("ticket_issued") == 0, events.messages


def _assert_strict_400(dep: Deployment, events: Events, login_url: str) -> None:
    anonymous = Browser(dep)
    refused = anonymous.get(login_url)
    assert refused.status_int == 400 and "Location" not in refused.headers, refused
    signed_in = Browser(dep)
    sign_in_at_idp(signed_in)
    refused = signed_in.get(login_url)
    assert refused.status_int == 400 and "Location" not in refused.headers, refused
    assert events.count("ticket_issued") == 0, events.messages


@pytest.mark.parametrize("attack", CALLBACK_ATTACKS, ids=lambda a: a.id)
def test_hostile_callback_signed_in(dep: Deployment, events: Events, attack: Attack) -> None:
    _assert_rejected_signed_in(dep, events, _login_url(attack.value))


@pytest.mark.parametrize("attack", CALLBACK_ATTACKS, ids=lambda a: a.id)
def test_hostile_callback_pending_handoff(dep: Deployment, events: Events, attack: Attack) -> None:
    _assert_rejected_pending(dep, events, _login_url(attack.value))


@pytest.mark.parametrize("attack", CALLBACK_ATTACKS, ids=lambda a: a.id)
def test_hostile_callback_strict_mode(strict_dep: Deployment, events: Events,
                                      attack: Attack) -> None:
    _assert_strict_400(strict_dep, events, _login_url(attack.value))


@pytest.mark.parametrize("attack", QUERY_ATTACKS, ids=lambda a: a.id)
def test_polluted_login_query(dep: Deployment, strict_dep: Deployment, events: Events,
                              attack: Attack) -> None:
    login_url = f"{LOGIN}?{attack.value.replace('{S}', STATE)}"
    _assert_rejected_signed_in(dep, events, login_url)
    _assert_rejected_pending(dep, events, login_url)
    _assert_strict_400(strict_dep, events, login_url)


@pytest.mark.parametrize(("spelling", "canonical"), ACCEPTED.items(), ids=list(ACCEPTED))
def test_positive_controls_reach_the_canonical_callback(
    dep: Deployment, events: Events, spelling: str, canonical: str
) -> None:
    # The same two paths with an allowed callback: they must hand off, to the
    # canonical form, so the rejections above are the allow-list's doing.
    signed_in = Browser(dep)
    sign_in_at_idp(signed_in)
    answer = signed_in.get(_login_url(spelling))
    assert answer.status_int == 303 and answer.location.startswith(canonical + "?token="), answer

    # Another browser, another login attempt: a state belongs to the browser that
    # presented it first (issue 16, finding 3).
    pending, state = Browser(dep), "P" * 43
    _assert_login_page_without_redirect(pending.get(_login_url(spelling, state)))
    done = pending.post(_login_url(spelling, state), {"username": "bob", "password": "builder"})
    assert done.status_int == 303 and done.location.startswith(canonical + "?token="), done
    assert events.count("ticket_issued") == 2
    assert events.count("callback_rejected") == 0


def test_corpus_size_per_group() -> None:
    groups: dict[str, int] = {}
    for attack in CALLBACK_ATTACKS:
        groups[attack.group] = groups.get(attack.group, 0) + 1
    assert len(CALLBACK_ATTACKS) + len(QUERY_ATTACKS) >= 100
    assert len({a.value for a in CALLBACK_ATTACKS}) == len(CALLBACK_ATTACKS), "duplicates"
    assert all(count >= 5 for count in groups.values()), groups
