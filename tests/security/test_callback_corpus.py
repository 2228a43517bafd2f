"""Every hostile callback of the corpus, where the decision is made -- and once end to end.

The IdP decides on ``GET <login_path>?callback=…&state=…`` (DESIGN section 1,
step 3) in two situations:

- **signed in**: an accepted callback would be answered at once with
  ``303 callback?token=T``;
- **pending**: the user is signed out; an accepted callback would be kept as
  a pending hand-off and redirected to, token attached, right after the
  sign-in.

A rejected callback must never be redirected to on either path: the request
goes on to the IdP's own login page with nothing pending, no ticket is
minted, the sign-in itself still works and ends on the IdP app's own page,
and ``callback_rejected`` is reported. In strict mode the answer is a 400.

Where the decision is made: the whole corpus runs against :class:`AllowList`
(the pure check) and through :class:`~sessionshare.core.idp.IdpSide` driven by
hand on a memory store (``coredrive.py``: a request in, the core's store
steps, an answer out -- what every shell does, at the cost of a call). The
wiring is shown once per flow, per shell and store: a few attacks through
the real middlewares (``test_*_end_to_end``). The positive controls
(``ACCEPTED``) run through the very same steps and must end at the canonical
callback with a token: the checks can fail.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from coredrive import NAVIGATE, CoreBrowser, visit
from flow import IDP, LOGIN, PASSWORDS, Browser, Deployment

from sessionshare import AllowList, MemoryStore, SyncKey
from sessionshare.core.idp import IdpSide
from sessionshare.core.reply import Reply
from sessionshare.core.session import Session
from sessionshare.core.side import PassThrough
from sessionshare.core.steps import run
from sessionshare.errors import CallbackRejected

from .corpus import ACCEPTED, ALLOWED, CALLBACK_ATTACKS, QUERY_ATTACKS, Attack
from .deploy import STATE, Events, assert_idp_own_answer, sign_in_at_idp

LOGIN_PATH = LOGIN[len(IDP):]


def _query(callback: str, state: str = STATE) -> str:
    return f"callback={quote(callback, safe='')}&state={state}"


def _polluted(attack: Attack) -> str:
    return attack.value.replace("{S}", STATE)


# -- the pure check: the allow-list ------------------------------------------------


@pytest.mark.parametrize("attack", CALLBACK_ATTACKS, ids=lambda a: a.id)
def test_the_allow_list_refuses_every_hostile_callback(attack: Attack) -> None:
    allow = AllowList(ALLOWED)
    with pytest.raises(CallbackRejected):
        allow.check_callback(attack.value)
    assert not allow.is_allowed_callback(attack.value)


@pytest.mark.parametrize(("spelling", "canonical"), ACCEPTED.items(), ids=list(ACCEPTED))
def test_the_allow_list_takes_each_control_in_canonical_form(spelling: str,
                                                             canonical: str) -> None:
    assert AllowList(ALLOWED).check_callback(spelling).url == canonical


# -- the IdP's decision, driven by hand on a memory store ----------------------------


class CoreIdp:
    """An :class:`IdpSide` with the corpus's allow-list, a memory store and an event log."""

    def __init__(self, *, strict: bool = False) -> None:
        self.store = MemoryStore()
        self.events: list[str] = []
        self.side = IdpSide(
            key=SyncKey.generate(), app_url=IDP, known_remote_hosts=ALLOWED, strict=strict,
            cookie_secure=False, quiet_startup=True,
            on_event=lambda name, fields: self.events.append(name),
        )
        self.browser = CoreBrowser([IDP])

    def get(self, query: str = "") -> Reply | tuple[PassThrough, object]:
        target = f"{LOGIN_PATH}?{query}" if query else LOGIN_PATH
        answer = visit(self.drive, self.side, self.browser.request(IDP, "GET", target, **NAVIGATE))
        self.keep(answer)
        return answer

    def sign_in(self, query: str = "", user: str = "alice") -> Reply | tuple[PassThrough, object]:
        """The login form posted back, and the app signing ``user`` in."""
        target = f"{LOGIN_PATH}?{query}" if query else LOGIN_PATH

        def app(session: Session) -> None:
            session["user"] = user

        request = self.browser.request(IDP, "POST", target, **NAVIGATE)
        answer = visit(self.drive, self.side, request, app)
        self.keep(answer)
        return answer

    def drive(self, steps: object) -> object:
        return run(steps, self.store)  # type: ignore[arg-type]

    def keep(self, answer: Reply | tuple[PassThrough, object]) -> None:
        self.browser.keep(IDP, answer.headers if isinstance(answer, Reply) else answer[1])

    def count(self, event: str) -> int:
        return self.events.count(event)


def _assert_the_apps_own_page(answer: Reply | tuple[PassThrough, object]) -> None:
    """The request went on to the IdP app (its login page), no answer of the library's."""
    assert isinstance(answer, tuple), answer
    assert all(name != "Location" for name, _ in answer[1]), answer  # type: ignore[attr-defined]


def _rejected_signed_in(query: str) -> None:
    idp = CoreIdp()
    _assert_the_apps_own_page(idp.sign_in())
    idp.events.clear()
    answer = idp.get(query)
    _assert_the_apps_own_page(answer)
    assert answer[0].user == "alice"  # type: ignore[index]  # still signed in, nothing else
    assert idp.count("callback_rejected") == 1 and idp.count("ticket_issued") == 0, idp.events


def _rejected_pending(query: str) -> None:
    idp = CoreIdp()
    _assert_the_apps_own_page(idp.get(query))
    # The sign-in is the app's own answer, never a hand-off...
    _assert_the_apps_own_page(idp.sign_in(query, user="bob"))
    assert idp.count("callback_rejected") >= 1 and idp.count("ticket_issued") == 0, idp.events
    # ...and nothing was left pending for a later sign-in either.
    _assert_the_apps_own_page(idp.sign_in(user="bob"))
    assert idp.count("ticket_issued") == 0, idp.events


def _strict_400(query: str) -> None:
    for signed_in in (False, True):
        idp = CoreIdp(strict=True)
        if signed_in:
            _assert_the_apps_own_page(idp.sign_in())
        answer = idp.get(query)
        assert isinstance(answer, Reply) and answer.status == 400, answer
        assert all(name != "Location" for name, _ in answer.headers), answer
        assert idp.count("ticket_issued") == 0, idp.events


FLOWS = {"signed-in": _rejected_signed_in, "pending": _rejected_pending, "strict": _strict_400}


@pytest.mark.parametrize("flow", sorted(FLOWS))
@pytest.mark.parametrize("attack", CALLBACK_ATTACKS, ids=lambda a: a.id)
def test_the_idp_never_hands_off_to_a_hostile_callback(attack: Attack, flow: str) -> None:
    FLOWS[flow](_query(attack.value))


@pytest.mark.parametrize("flow", sorted(FLOWS))
@pytest.mark.parametrize("attack", QUERY_ATTACKS, ids=lambda a: a.id)
def test_the_idp_never_hands_off_on_a_polluted_login_query(attack: Attack, flow: str) -> None:
    FLOWS[flow](_polluted(attack))


@pytest.mark.parametrize(("spelling", "canonical"), ACCEPTED.items(), ids=list(ACCEPTED))
def test_the_idp_hands_off_each_control_to_its_canonical_form(spelling: str,
                                                              canonical: str) -> None:
    # The same two paths with an allowed callback: they must hand off, to the
    # canonical form, so the rejections above are the allow-list's doing.
    idp = CoreIdp()
    idp.sign_in()
    answer = idp.get(_query(spelling))
    assert isinstance(answer, Reply) and answer.status == 303, answer
    assert dict(answer.headers)["Location"].startswith(canonical + "?token="), answer

    # Another browser, another login attempt: a state belongs to the browser that
    # presented it first, so this one uses its own.
    idp.browser = CoreBrowser([IDP])
    query = _query(spelling, "P" * 43)
    _assert_the_apps_own_page(idp.get(query))
    done = idp.sign_in(query, user="bob")
    assert isinstance(done, Reply) and done.status == 303, done
    assert dict(done.headers)["Location"].startswith(canonical + "?token="), done
    assert idp.count("ticket_issued") == 2 and idp.count("callback_rejected") == 0, idp.events


def test_corpus_size_per_group() -> None:
    groups: dict[str, int] = {}
    for attack in CALLBACK_ATTACKS:
        groups[attack.group] = groups.get(attack.group, 0) + 1
    assert len(CALLBACK_ATTACKS) + len(QUERY_ATTACKS) >= 100
    assert len({a.value for a in CALLBACK_ATTACKS}) == len(CALLBACK_ATTACKS), "duplicates"
    assert all(count >= 5 for count in groups.values()), groups


# -- the wiring: one row per flow, per shell and store -------------------------------

#: One attack of each kind through the real middlewares: a host suffix (the PHP
#: bundle's bypass), an encoded separator, and a polluted query.
END_TO_END = [
    _query("http://shop.test.evil.com/_sessionshare/callback"),
    _query("http://shop.test%2f@evil.com/_sessionshare/callback"),
    _polluted(QUERY_ATTACKS[0]),
]


def _login_url(query: str) -> str:
    return f"{LOGIN}?{query}"


def _assert_login_page_without_redirect(response: object) -> None:
    assert response.status_int == 200, response  # type: ignore[attr-defined]
    assert "login form" in response.text  # type: ignore[attr-defined]
    assert "Location" not in response.headers  # type: ignore[attr-defined]


def test_hostile_callbacks_signed_in_end_to_end(dep: Deployment, events: Events) -> None:
    for query in END_TO_END:
        browser = Browser(dep)
        sign_in_at_idp(browser)
        events.clear()
        _assert_login_page_without_redirect(browser.get(_login_url(query)))
        assert events.count("callback_rejected") == 1, events.messages
        assert events.count("ticket_issued") == 0, events.messages
        assert browser.get(IDP + "/").text == "idp home user=alice"


def test_hostile_callbacks_pending_end_to_end(dep: Deployment, events: Events) -> None:
    for query in END_TO_END:
        browser = Browser(dep)
        _assert_login_page_without_redirect(browser.get(_login_url(query)))
        done = browser.post(_login_url(query), {"username": "bob", "password": PASSWORDS["bob"]})
        assert_idp_own_answer(done, "bob")
        assert events.count("ticket_issued") == 0, events.messages
        assert events.count("callback_rejected") >= 1, events.messages
        assert browser.get(IDP + "/").text == "idp home user=bob"
        _assert_login_page_without_redirect(browser.get(LOGIN))
        assert events.count("ticket_issued") == 0, events.messages


def test_hostile_callbacks_strict_mode_end_to_end(strict_dep: Deployment,
                                                  events: Events) -> None:
    for query in END_TO_END:
        refused = Browser(strict_dep).get(_login_url(query))
        assert refused.status_int == 400 and "Location" not in refused.headers, refused
        signed_in = Browser(strict_dep)
        sign_in_at_idp(signed_in)
        refused = signed_in.get(_login_url(query))
        assert refused.status_int == 400 and "Location" not in refused.headers, refused
        assert events.count("ticket_issued") == 0, events.messages


def test_a_control_reaches_the_canonical_callback_end_to_end(dep: Deployment,
                                                             events: Events) -> None:
    spelling, canonical = "HTTP://Shop.Test:80/_sessionshare/callback", ACCEPTED[
        "HTTP://Shop.Test:80/_sessionshare/callback"]
    signed_in = Browser(dep)
    sign_in_at_idp(signed_in)
    answer = signed_in.get(_login_url(_query(spelling)))
    assert answer.status_int == 303 and answer.location.startswith(canonical + "?token="), answer
    pending, query = Browser(dep), _query(spelling, "P" * 43)
    _assert_login_page_without_redirect(pending.get(_login_url(query)))
    done = pending.post(_login_url(query), {"username": "bob", "password": "builder"})
    assert done.status_int == 303 and done.location.startswith(canonical + "?token="), done
    assert events.count("ticket_issued") == 2 and events.count("callback_rejected") == 0
