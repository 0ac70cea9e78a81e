"""`WebServer`: the dashboard's HTTP(S) listener (`--web-listen HOST:PORT`), uvicorn in a thread.

The socket is bound here, before uvicorn starts, so a taken port or a bad host is the
caller's clear error at once, and port 0 gives a known port. With a certificate and key
(the broker's own: `--tls-cert/--tls-key`, or its federation PKI) it serves HTTPS only.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from minga.common.domain import InvalidArgument
from minga.common.metrics_http import parse_listen

START_SECONDS = 10.0  # uvicorn answers within this, or the broker does not start
STOP_SECONDS = 2.0  # open live streams (log follow) are cut after this on shutdown


class WebServer:
    """`app` served at `url` until `stop()`."""

    def __init__(self, listen: str, app: ASGIApp, tls: tuple[Path, Path] | None = None) -> None:
        host, port = parse_listen("--web-listen", listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say TCP, and without
        # it a keep-alive connection's every answer after the first waits ~40 ms (Nagle, delayed ACK).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise InvalidArgument(f"--web-listen {listen}: cannot listen there ({exc.strerror or exc})") from exc
        sock.listen(128)
        cert, key = tls or (None, None)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=str(cert) if cert else None,
            ssl_keyfile=str(key) if key else None,
            timeout_graceful_shutdown=int(STOP_SECONDS),
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._socket = sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="web")
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise InvalidArgument(f"--web-listen {listen}: the dashboard did not start (see the log)")
            time.sleep(0.01)
        bound = sock.getsockname()[1]
        self.address = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
        self.url = f"{'https' if tls else 'http'}://{self.address}/"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STOP_SECONDS + 3)
        self._socket.close()
