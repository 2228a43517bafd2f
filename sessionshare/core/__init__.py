"""The protocol, written once and without I/O.

Everything here decides; nothing here reads a socket, a WSGI environ or an
ASGI scope. The shells (``sessionshare.wsgi`` today, ``sessionshare.asgi``
next) read the request, run the store calls the core asks for and send the
reply it returns (DESIGN section 2, STYLE 12).
"""
