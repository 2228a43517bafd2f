"""Encryption, checksums and the allow-list: everything that decides trust.

- :mod:`.keys` -- :class:`SyncKey`: the shared secret, rotation, HKDF subkeys
  per purpose and the public fingerprint.
- :mod:`.tokens` -- sealing and opening the short, single-use hand-off token
  (AES-GCM; its tag is the checksum). The tickets it carries, and their store
  form, are :mod:`sessionshare.core.tickets`.
- :mod:`.allowlist` -- :class:`AllowList`: which callback URLs the IdP may
  redirect to, by one strict canonical parse.

Every check that can fail on network input raises a subclass of
:class:`~sessionshare.errors.SessionShareError` carrying a reason code, and
nothing else.
"""

from __future__ import annotations

from .allowlist import AllowedCallback as AllowedCallback
from .allowlist import AllowList as AllowList
from .allowlist import canonical_origin as canonical_origin
from .keys import SyncKey as SyncKey
from .tokens import MAX_TOKEN_LENGTH as MAX_TOKEN_LENGTH
from .tokens import TokenClaims as TokenClaims
from .tokens import is_valid_state as is_valid_state
from .tokens import open_token as open_token
from .tokens import seal_token as seal_token
