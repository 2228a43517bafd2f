"""sessionshare.core.idp and core.remote: the hand-off's decisions with no server interface.

The two sides are driven here the way any shell drives them -- a
:class:`Request` in, store steps run, a :class:`Reply` or :class:`PassThrough`
out -- with no WSGI anywhere. The whole hand-off runs twice, once on the
thread store and once on ``AsyncRedisStore`` through ``run_async``: an
asyncio shell needs no protocol code of its own, only this loop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conftest import FakeClock
from coredrive import NAVIGATE, CoreBrowser, Drive, no_io, visit

from sessionshare import AsyncRedisStore, MemoryStore, SyncKey
from sessionshare.core.idp import IdpSide
from sessionshare.core.remote import RemoteSide
from sessionshare.core.reply import Reply
from sessionshare.core.request import Request
from sessionshare.core.session import Session
from sessionshare.core.side import PassThrough
from sessionshare.core.steps import Steps, run, run_async

IDP, SHOP = "http://id.test", "http://shop.test"


def handoff(drive: Drive, clock: FakeClock) -> None:
    key = SyncKey.generate()
    common = {"key": key, "cookie_secure": False, "clock": clock}
    idp = IdpSide(app_url=IDP, known_remote_hosts=[SHOP], **common)
    shop = RemoteSide(app_url=SHOP, idp_url=IDP + "/login", protect=["/orders"], **common)
    browser = CoreBrowser([IDP, SHOP])

    # 1. A protected page, signed out: off to the IdP, with a state cookie.
    away = visit(drive, shop, browser.request(SHOP, "GET", "/orders?page=2", **NAVIGATE))
    assert isinstance(away, Reply) and away.status == 302
    browser.keep(SHOP, away.headers)
    login = dict(away.headers)["Location"]
    assert login.startswith(IDP + "/login?callback=")
    login_target = login[len(IDP):]

    # 2. The IdP's login page: the hand-off is remembered, the app shows its form.
    # The state is claimed for this browser, which gets its IdP browser cookie -- and,
    # since it came without one, the receipt naming that id for this state.
    form = visit(drive, idp, browser.request(IDP, "GET", login_target, **NAVIGATE))
    assert isinstance(form, tuple)
    assert (form[0].user, form[0].signed_in) == (None, False)
    receipt = idp.claims.receipt_name(parse_qs(urlsplit(login).query)["state"][0])
    assert [v.split("=")[0] for k, v in form[1] if k == "Set-Cookie"] == [
        "sessionshare_browser", receipt, "sessionshare"]
    browser.keep(IDP, form[1])

    # 3. The form posted back: the app signs alice in; the answer becomes the 303 back.
    def sign_in(session: Session) -> None:
        session["user"] = "alice"

    back = visit(drive, idp, browser.request(IDP, "POST", login_target, **NAVIGATE), sign_in)
    assert isinstance(back, Reply) and back.status == 303
    browser.keep(IDP, back.headers)
    callback = dict(back.headers)["Location"]
    assert callback.startswith(SHOP + "/_sessionshare/callback?token=")
    assert "token" in parse_qs(urlsplit(callback).query)

    # 4. The callback: the token redeemed once, the shared session adopted.
    adopted = visit(drive, shop, browser.request(SHOP, "GET", callback[len(SHOP):], **NAVIGATE))
    assert isinstance(adopted, Reply) and adopted.status == 303
    assert dict(adopted.headers)["Location"] == "/orders?page=2"
    browser.keep(SHOP, adopted.headers)
    replay = visit(drive, shop, browser.request(SHOP, "GET", callback[len(SHOP):], **NAVIGATE))
    assert isinstance(replay, Reply) and replay.status == 403

    # 5. The protected page again: alice, from the one shared session.
    page = visit(drive, shop, browser.request(SHOP, "GET", "/orders?page=2", **NAVIGATE))
    assert isinstance(page, tuple) and page[0] == PassThrough("alice", signed_in=True)

    # 6. Logout at the shop ends it at the IdP too.
    out = visit(drive, shop, browser.request(SHOP, "POST", "/_sessionshare/logout"))
    assert isinstance(out, Reply) and out.status == 303
    at_idp = visit(drive, idp, browser.request(IDP, "GET", "/", **NAVIGATE))
    assert isinstance(at_idp, tuple) and at_idp[0].user is None


def test_the_handoff_on_the_thread_store(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    handoff(lambda steps: run(steps, store), clock)


def test_the_same_handoff_on_the_asyncio_store(redis_url: str) -> None:
    import time

    async def main() -> None:
        store = AsyncRedisStore.from_url(redis_url)
        loop = asyncio.get_running_loop()

        def drive(steps: Steps[Any]) -> Any:
            # The steps are awaited on this loop; the check itself is written synchronously.
            return asyncio.run_coroutine_threadsafe(run_async(steps, store), loop).result()

        clock = FakeClock(time.time())
        await loop.run_in_executor(None, handoff, drive, clock)
        await store.close()

    asyncio.run(main())


def test_a_public_path_asks_nothing_of_the_store(clock: FakeClock) -> None:
    shop = RemoteSide(key=SyncKey.generate(), app_url=SHOP, idp_url=IDP + "/login",
                      protect=["/orders"], cookie_secure=False, clock=clock)
    session = Session(no_io, "s" * 43)
    # The answer itself, not steps: nothing to drive, nothing asked of a store.
    outcome = shop.on_request(Request(method="GET", path="/about", cookies="x=1"), session)
    assert outcome == PassThrough()


def test_an_api_call_to_a_protected_path_is_401_json(clock: FakeClock) -> None:
    shop = RemoteSide(key=SyncKey.generate(), app_url=SHOP, idp_url=IDP + "/login",
                      cookie_secure=False, clock=clock)
    steps = shop.on_request(Request(method="GET", path="/x", accept="application/json"),
                            Session(None, None))
    assert not isinstance(steps, (Reply, PassThrough))
    reply = run(steps, MemoryStore(clock=clock))
    assert isinstance(reply, Reply) and reply.status == 401
    assert json.loads(reply.body)["login_url"] == IDP + "/login"
