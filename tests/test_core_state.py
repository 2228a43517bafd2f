"""core/state.py on its own: slots written round robin, found in any slot, dead ones spent.

No request, no store: ``StateSlots`` takes a ``Cookie`` header and answers
``Set-Cookie`` headers. The flows through the middlewares are in
tests/security/test_state_flood.py.
"""

from __future__ import annotations

import pytest
from conftest import FakeClock

from sessionshare import SyncKey, TokenRejected
from sessionshare.core.state import STATE_SLOTS, StateSlots

CB = "/_sessionshare/callback"


def _slots(clock: FakeClock, key: str | None = None) -> StateSlots:
    signer = SyncKey.parse(key or SyncKey.generate()).serializer("state-cookie", salt="s",
                                                                 clock=clock)
    return StateSlots("sessionshare_state", path=CB, secure=True, ttl=600, signer=signer)


class Jar:
    """Just enough of a browser: name -> value, Set-Cookie applied in order."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def apply(self, headers: list[tuple[str, str]]) -> None:
        for _, value in headers:
            pair, _, attributes = value.partition("; ")
            name, _, cookie = pair.partition("=")
            if "Max-Age=0" in attributes:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie

    def header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())


def test_starts_take_the_slots_round_robin(clock: FakeClock) -> None:
    slots, jar = _slots(clock), Jar()
    written = []
    for i in range(STATE_SLOTS * 2 + 1):
        headers = slots.start(jar.header(), f"state{i:040d}", f"/page/{i}")
        assert [h[0] for h in headers] == ["Set-Cookie", "Set-Cookie"]
        assert headers[0][1].startswith("next-sessionshare_state=") and "Path=/;" in headers[0][1]
        assert f"Path={CB}" in headers[1][1] and "HttpOnly" in headers[1][1]
        written.append(headers[1][1].partition("=")[0])
        jar.apply(headers)
    assert written == [f"sessionshare_state-{i % STATE_SLOTS}" for i in range(len(written))]
    assert len([k for k in jar.cookies if k.startswith("sessionshare_state")]) == STATE_SLOTS


def test_find_looks_in_every_slot_and_spends_the_dead_ones(clock: FakeClock) -> None:
    slots, jar = _slots(clock), Jar()
    jar.apply(slots.start(jar.header(), "old" * 15, "/old"))
    clock.advance(601)
    jar.apply(slots.start(jar.header(), "live" * 11, "/live"))
    jar.apply(slots.start(jar.header(), "mine" * 11, "/mine"))
    jar.cookies["sessionshare_state-3"] = "garbage"
    back, spent, _ = slots.find(jar.header(), "mine" * 11)
    assert back == "/mine"
    # Its own slot and the dead ones; the other tab's live slot stays.
    assert sorted(spent) == ["sessionshare_state-0", "sessionshare_state-2",
                             "sessionshare_state-3"]
    jar.apply(slots.clear(spent))
    assert slots.find(jar.header(), "live" * 11)[:2] == ("/live", ["sessionshare_state-1"])


@pytest.mark.parametrize(
    ("cookies", "message"),
    [
        ("", "no login was started"),
        ("sessionshare_state-0=garbage", "invalid or expired"),
        (None, "does not match"),
    ],
    ids=["none", "only dead", "live but another"],
)
def test_find_refuses_with_bad_state(clock: FakeClock, cookies: str | None, message: str) -> None:
    slots, jar = _slots(clock), Jar()
    if cookies is None:
        jar.apply(slots.start("", "other" * 9, "/"))
        cookies = jar.header()
    with pytest.raises(TokenRejected, match=message) as caught:
        slots.find(cookies, "mine" * 11)
    assert caught.value.reason == "bad_state"


def test_a_state_signed_with_another_key_is_dead(clock: FakeClock) -> None:
    ours, theirs, jar = _slots(clock), _slots(clock), Jar()
    jar.apply(theirs.start("", "mine" * 11, "/"))
    with pytest.raises(TokenRejected, match="invalid or expired"):
        ours.find(jar.header(), "mine" * 11)
