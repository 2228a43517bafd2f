"""The sync key: the one secret every app of a deployment shares.

A sync key is 32 random bytes written as URL-safe base64 (43 characters),
made by ``python -m sessionshare keygen``. Several keys may be configured,
newest first, to rotate without downtime: new tokens and signatures use the
first key, and any configured key opens them.

The raw key is never used directly. Each purpose (sealing hand-off tokens,
signing the state cookie, the public fingerprint) gets its own subkey derived
with HKDF-SHA256, so a weakness in one use cannot leak into another.

The **fingerprint** is a short public digest of a derived subkey. It is logged
at start-up, printed by ``python -m sessionshare fingerprint`` and carried in
every token, so two apps holding different keys show up at once as
``unknown_key`` without anybody ever seeing a key.

    key = SyncKey.parse(os.environ["SESSIONSHARE_SYNC_KEY"])
    print(key.fingerprint)        # e.g. "3f9a-c21b-77e0"
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from ..errors import ConfigurationError

__all__ = ["ClockedSigner", "SyncKey", "format_fingerprint"]

KEY_BYTES = 32
FINGERPRINT_BYTES = 6
_SPLIT = re.compile(r"[\s,]+")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


class SyncKey:
    """One or more shared secrets, newest first, with per-purpose subkeys."""

    __slots__ = ("_secrets", "_subkeys", "fingerprints")

    def __init__(self, secrets_newest_first: Sequence[bytes]) -> None:
        if not secrets_newest_first:
            raise ConfigurationError(
                "no sync key configured: run `python -m sessionshare keygen` and set "
                "SESSIONSHARE_SYNC_KEY (or pass key=) to the same value on every app"
            )
        for raw in secrets_newest_first:
            if len(raw) != KEY_BYTES:
                raise ConfigurationError(
                    f"a sync key must be {KEY_BYTES} bytes, got {len(raw)}: "
                    "make one with `python -m sessionshare keygen`"
                )
        self._secrets = tuple(secrets_newest_first)
        self._subkeys: dict[str, tuple[bytes, ...]] = {}
        self.fingerprints: tuple[str, ...] = tuple(
            format_fingerprint(sub[:FINGERPRINT_BYTES]) for sub in self.derive("fingerprint")
        )

    @staticmethod
    def generate() -> str:
        """A new random key as text, ready for ``SESSIONSHARE_SYNC_KEY``."""
        return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode()

    @classmethod
    def parse(cls, text: str | Sequence[str]) -> SyncKey:
        """Parse one key, or several separated by commas or white space, newest first."""
        parts = _SPLIT.split(text.strip()) if isinstance(text, str) else list(text)
        raw: list[bytes] = []
        for position, part in enumerate(p for p in parts if p):
            try:
                raw.append(_b64decode(part.strip()))
            except (binascii.Error, ValueError, UnicodeEncodeError):
                raise ConfigurationError(
                    f"sync key #{position + 1} is not URL-safe base64: "
                    "make one with `python -m sessionshare keygen`"
                ) from None
        return cls(raw)

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the newest key (the one new tokens are sealed with)."""
        return self.fingerprints[0]

    def derive(self, purpose: str) -> tuple[bytes, ...]:
        """The 32-byte subkey for ``purpose`` of every configured key, newest first."""
        cached = self._subkeys.get(purpose)
        if cached is None:
            info = b"sessionshare/v1/" + purpose.encode("ascii")
            cached = tuple(
                HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=None, info=info).derive(raw)
                for raw in self._secrets
            )
            self._subkeys[purpose] = cached
        return cached

    def fingerprint_bytes(self) -> tuple[bytes, ...]:
        """The raw fingerprints (as carried in tokens), newest first."""
        return tuple(sub[:FINGERPRINT_BYTES] for sub in self.derive("fingerprint"))

    def serializer(
        self, purpose: str, salt: str, *, clock: Callable[[], float] = time.time
    ) -> URLSafeTimedSerializer:
        """An itsdangerous serializer signing with the newest subkey, accepting any, whose
        signatures age by ``clock`` (given to its signer at construction: itsdangerous'
        ``signer=`` seam, nothing patched afterwards)."""
        # itsdangerous signs with the *last* secret of the list and accepts all of them.
        return URLSafeTimedSerializer(
            list(reversed(self.derive(purpose))), salt=salt,
            signer=ClockedSigner, signer_kwargs={"clock": clock},
        )

    def __repr__(self) -> str:
        # Never show key material, not even in a traceback.
        return f"<SyncKey fingerprints={list(self.fingerprints)!r}>"


class ClockedSigner(TimestampSigner):
    """An itsdangerous ``TimestampSigner`` that reads an injected clock, not the wall clock.

    Signed values then age as the rest of the protocol does (tokens, tickets, sessions:
    all by the app's ``clock``), and a test that moves its clock moves them too.

    :param clock: the time source, seconds since the epoch.
    """

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The time source signatures are dated and aged by.
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock())


def format_fingerprint(raw: bytes) -> str:
    """Raw fingerprint bytes as shown to people: ``3f9a-c21b-77e0``."""
    text = raw.hex()
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))
