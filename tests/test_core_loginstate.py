"""sessionshare.core.loginstate: the facts a login state carries, read under every key."""

from __future__ import annotations

import base64
import secrets
from hashlib import blake2b

import pytest

from sessionshare import SyncKey
from sessionshare.core.loginstate import LoginStates, StateFacts
from sessionshare.crypto import is_valid_state

OLD, NEW = SyncKey.generate(), SyncKey.generate()


def _states(*keys: str) -> LoginStates:
    return LoginStates(SyncKey.parse(list(keys)))


def test_an_ordinary_state_is_43_random_characters_and_carries_nothing() -> None:
    states = _states(NEW)
    state = states.make()
    assert len(state) == 43 and is_valid_state(state)
    assert states.read(state) == StateFacts()
    assert states.make() != state


@pytest.mark.parametrize(("max_age", "expires"), [
    (300, None), (0, None), (None, 1_800_003_600), (300, 1_800_003_600), (2**40, 2**44),
])
def test_facts_round_trip_in_a_valid_state(max_age: int | None, expires: int | None) -> None:
    states = _states(NEW)
    state = states.make(max_age=max_age, expires=expires)
    assert is_valid_state(state) and len(state) <= 128
    assert states.read(state) == StateFacts(max_age, expires)
    assert states.max_age_of(state) == max_age


def test_any_configured_key_reads_what_the_newest_tags() -> None:
    # A key rotation, either order: OLD,NEW reads NEW,OLD's states and the other way round.
    made_new_first = _states(NEW, OLD).make(max_age=300, expires=1_800_003_600)
    made_old_first = _states(OLD, NEW).make(max_age=60)
    assert _states(OLD, NEW).read(made_new_first) == StateFacts(300, 1_800_003_600)
    assert _states(NEW, OLD).read(made_old_first) == StateFacts(60, None)
    assert _states(NEW).read(made_old_first) == StateFacts()  # OLD gone: nothing carried


def test_a_state_of_the_earlier_step_up_format_is_read() -> None:
    # <43 random> "_" <max age, hex> <tag>: what remotes of the previous release send.
    key = SyncKey.parse(NEW)
    body = f"{secrets.token_urlsafe(32)}_{300:x}"
    mac = blake2b(body.encode(), key=key.derive("step-up state")[0], digest_size=16).digest()
    legacy = body + base64.urlsafe_b64encode(mac).decode()[:22]
    assert LoginStates(key).read(legacy) == StateFacts(300, None)


@pytest.mark.parametrize("change", ["age", "expiry", "tag", "random", "drop-expiry"])
def test_an_altered_state_carries_nothing(change: str) -> None:
    states = _states(NEW)
    state = states.make(max_age=300, expires=1_800_003_600)
    body, tag = state[:-22], state[-22:]
    altered = {
        "age": body.replace("_12c-", "_12d-") + tag,
        "expiry": body[:-1] + ("0" if body[-1] != "0" else "1") + tag,
        "tag": body + ("A" if tag[0] != "A" else "B") + tag[1:],
        "random": ("A" if body[0] != "A" else "B") + body[1:] + tag,
        "drop-expiry": body.split("-x")[0] + tag,
    }[change]
    assert altered != state
    assert states.read(altered) == StateFacts()


def test_an_unknown_extension_is_skipped_not_a_failure() -> None:
    # A later release may add facts: an older reader keeps the ones it knows.
    key = SyncKey.parse(NEW)
    body = f"{secrets.token_urlsafe(32)}_12c-z9-x6b49d200"
    mac = blake2b(body.encode(), key=key.derive("step-up state")[0], digest_size=16).digest()
    state = body + base64.urlsafe_b64encode(mac).decode()[:22]
    assert LoginStates(key).read(state) == StateFacts(300, 0x6B49D200)


@pytest.mark.parametrize("state", ["", "S" * 43, "S" * 43 + "_", "S" * 70, "S" * 43 + "_" * 30])
def test_odd_states_carry_nothing(state: str) -> None:
    assert _states(NEW).read(state) == StateFacts()


def test_a_passive_checks_state_says_so_under_the_tag() -> None:
    states = _states(NEW)
    state = states.make(passive=True)
    assert is_valid_state(state) and states.read(state) == StateFacts(passive=True)
    both = states.make(expires=1_800_003_600, passive=True)
    assert states.read(both) == StateFacts(None, 1_800_003_600, True)
    # Only under the tag: "-p" added to another state, or another key's, says nothing.
    plain = states.make(expires=1_800_003_600)
    assert states.read(plain[:-22] + "-p" + plain[-22:]) == StateFacts()
    assert _states(OLD).read(state) == StateFacts()
