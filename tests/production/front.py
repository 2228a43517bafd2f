"""The TLS fronts of the estate: a prefix-stripping reverse proxy, and a sibling's page.

:class:`PrefixProxy` is what nginx's ``location /news/ { proxy_pass
http://upstream/; }`` does, cut to what the test needs: it terminates TLS for
its host name, serves only the paths under its prefix (a path outside it gets
the proxy's own 404, so a URL that forgot the prefix is seen at once), strips
the prefix, adds ``X-Forwarded-Proto``/``X-Forwarded-For`` and passes the
request to the plain-http upstream on loopback -- websocket upgrades
included, then bytes both ways. Each client connection carries one request
(``Connection: close``), so the proxy never parses a response.

:class:`StaticSite` serves fixed pages over TLS: the page of a sibling
subdomain that tries to use the user's session at another subdomain.

Both listen on a free port of 127.0.0.1, serve each connection on a thread of
their own with bounded socket timeouts, and :meth:`stop` closes every socket
and joins every thread.

    with PrefixProxy(context, prefix="/news", upstream_port=port) as proxy:
        proxy.port
"""

from __future__ import annotations

import select
import socket
import ssl
import threading

__all__ = ["PrefixProxy", "StaticSite"]

#: Longest request head the fronts read (servers refuse past 8 KB by default).
MAX_HEAD = 16 * 1024
#: Seconds a socket may wait on one read or write: no thread can hang the test.
IO_TIMEOUT = 10.0
# Dropped from the client's head: hop-by-hop headers (the proxy sets its own
# Connection) and forwarding headers a client must not be able to forge.
_DROPPED = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
            b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"}


class _TlsFront:
    """Accepts TLS connections on 127.0.0.1 and serves each on a thread (see :meth:`serve`)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)  # the accept loop looks at the stop flag this often
        self.port = int(self.listener.getsockname()[1])
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.open_sockets: set[socket.socket] = set()
        self.acceptor = threading.Thread(target=self._accept, name=f"front:{self.port}")

    def start(self) -> None:
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            thread = threading.Thread(target=self._connection, args=(raw,), daemon=True)
            with self.lock:
                self.threads = [t for t in self.threads if t.is_alive()]
                self.threads.append(thread)
                self.open_sockets.add(raw)
            thread.start()

    def _connection(self, raw: socket.socket) -> None:
        raw.settimeout(IO_TIMEOUT)
        client: ssl.SSLSocket | None = None
        try:
            client = self.context.wrap_socket(raw, server_side=True)
            with self.lock:
                self.open_sockets.add(client)
            head, rest = _read_head(client)
            if head is not None:
                self.serve(client, head, rest)
        except (OSError, ValueError):
            pass  # a client that went away, or spoke no TLS/HTTP: nothing to answer
        finally:
            for sock in (client, raw):
                if sock is not None:
                    sock.close()
                    with self.lock:
                        self.open_sockets.discard(sock)

    def serve(self, client: ssl.SSLSocket, head: bytes, rest: bytes) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        if self.acceptor.is_alive():
            self.acceptor.join(timeout=5)
        with self.lock:
            threads = list(self.threads)
            sockets = list(self.open_sockets)
        for sock in sockets:  # wakes a thread blocked on a read
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=5)
        assert not any(t.is_alive() for t in threads), "a front's thread did not stop"

    def __enter__(self) -> _TlsFront:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """The request head (up to the blank line) and whatever body bytes came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            return None, b""
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _answer(client: socket.socket, status: str, body: bytes, content_type: str) -> None:
    client.sendall(
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    )


class PrefixProxy(_TlsFront):
    """Serves ``https://<host><prefix>/...`` from ``http://127.0.0.1:<upstream_port>/...``."""

    def __init__(self, context: ssl.SSLContext, *, prefix: str, upstream_port: int) -> None:
        super().__init__(context)
        self.prefix = prefix.encode()
        self.upstream_port = upstream_port

    def upstream_target(self, target: bytes) -> bytes | None:
        """The request target the upstream sees, or None when ``target`` is outside the
        prefix (matched at a segment boundary, as nginx's ``location /news/`` does)."""
        if target == self.prefix:
            return b"/"
        for follower in (b"/", b"?"):
            if target.startswith(self.prefix + follower):
                stripped = target[len(self.prefix):]
                return stripped if follower == b"/" else b"/" + stripped
        return None

    def serve(self, client: ssl.SSLSocket, head: bytes, rest: bytes) -> None:
        request_line, *header_lines = head.split(b"\r\n")
        method, target, version = request_line.split(b" ")
        upstream_target = self.upstream_target(target)
        if upstream_target is None:
            _answer(client, "404 Not Found", b"not routed by the proxy\n", "text/plain")
            return
        headers = []
        upgrade = False
        for line in header_lines:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"upgrade" and value.strip().lower() == b"websocket":
                upgrade = True
            if lowered not in _DROPPED:
                headers.append(line)
        headers += [
            *([b"Upgrade: websocket", b"Connection: Upgrade"] if upgrade
              else [b"Connection: close"]),
            b"X-Forwarded-Proto: https",
            b"X-Forwarded-For: 127.0.0.1",
        ]
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port),
                                            timeout=IO_TIMEOUT)
        with self.lock:
            self.open_sockets.add(upstream)
        try:
            upstream.sendall(b" ".join((method, upstream_target, version)) + b"\r\n"
                             + b"\r\n".join(headers) + b"\r\n\r\n" + rest)
            self._pipe(client, upstream)
        finally:
            upstream.close()
            with self.lock:
                self.open_sockets.discard(upstream)

    def _pipe(self, client: ssl.SSLSocket, upstream: socket.socket) -> None:
        """Bytes both ways until the upstream is done (one thread: TLS is not thread-safe)."""
        reading = [client, upstream]
        while reading and not self.stopping.is_set():
            # Bytes TLS already decrypted are not visible to select().
            ready = [client] if client in reading and client.pending() else \
                select.select(reading, [], [], 0.5)[0]
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if sock is upstream:
                    if not data:
                        return  # the upstream answered and closed: so does the client
                    client.sendall(data)
                elif data:
                    upstream.sendall(data)
                else:
                    reading.remove(client)  # the client is done sending; let the answer come
                    try:
                        upstream.shutdown(socket.SHUT_WR)
                    except OSError:
                        return


class StaticSite(_TlsFront):
    """Serves fixed HTML pages by path over TLS (404 for any other path)."""

    def __init__(self, context: ssl.SSLContext, pages: dict[str, str]) -> None:
        super().__init__(context)
        self.pages = {path.encode(): html.encode() for path, html in pages.items()}

    def serve(self, client: ssl.SSLSocket, head: bytes, rest: bytes) -> None:
        target = head.split(b"\r\n", 1)[0].split(b" ")[1]
        page = self.pages.get(target.split(b"?", 1)[0])
        if page is None:
            _answer(client, "404 Not Found", b"no such page\n", "text/plain")
        else:
            _answer(client, "200 OK", page, "text/html; charset=utf-8")
