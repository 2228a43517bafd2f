"""The protocol, written once and without I/O.

Everything here decides; nothing here reads a socket, a WSGI environ or an
ASGI scope. The shells (``sessionshare.wsgi`` and ``sessionshare.asgi``, one
class each) read the request, call a side's ``on_request``, ``on_response``
and ``on_close`` in order (:mod:`sessionshare.core.side`), run the store calls
the core asks for and send the reply it returns (DESIGN section 2, STYLE 12).
"""
