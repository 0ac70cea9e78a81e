"""An in-test TCP proxy for fault injection: put it between a client and a server
(an agent and the broker, the broker and PostgreSQL) and break the link at will."""

from __future__ import annotations

import contextlib
import socket
import threading

_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends RST


class TcpProxy:
    """Forwards a free loopback port to `target` ("host:port").

    - `cut()` blackholes every byte both ways; the sockets stay open, as on a dead
      link, so only timeouts and keepalives can tell.
    - `refuse()` resets every connection and every new one, as a server that is down.
    - `restore()` resets the broken connections and forwards new ones again.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.blackholed = threading.Event()
        self.refusing = threading.Event()
        self.closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.blackholed.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):  # already closed by the other side
                    s.shutdown(socket.SHUT_RDWR)

    def _reset_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            _reset(s)

    def cut(self) -> None:
        self.blackholed.set()

    def refuse(self) -> None:
        self.refusing.set()
        self._reset_all()

    def restore(self) -> None:
        self._reset_all()
        self.blackholed.clear()
        self.refusing.clear()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        self.restore()


def _reset(sock: socket.socket) -> None:
    """Close now. shutdown() first: it wakes a pump thread blocked in recv() on this
    socket, which close() alone would not, leaving the peer waiting forever."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
