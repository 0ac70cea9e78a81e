"""The `/metrics` listener of a broker or an agent (`--metrics-listen HOST:PORT`).

prometheus_client's own HTTP server over a registry of the caller's, never the global one,
so two brokers (or a broker and its agents, in `minga up`) in one process never mix series.
prometheus_client is imported only when a server starts: the CLI checks the flag without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minga.common.domain import InvalidArgument

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def parse_listen(flag: str, listen: str) -> tuple[str, int]:
    """HOST:PORT (a `flag`'s value) as (host, port); raises InvalidArgument with a one-line hint."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"{flag} {listen!r} must be HOST:PORT, e.g. 127.0.0.1:9464 (port 0: any free)")
    return (host[1:-1] if host.startswith("[") and host.endswith("]") else host), int(port)


class MetricsServer:
    """`registry` served over HTTP at http://HOST:PORT/metrics until `stop()`."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        from prometheus_client import start_http_server

        host, port = parse_listen("--metrics-listen", listen)
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise InvalidArgument(f"--metrics-listen {listen}: cannot listen there ({exc.strerror or exc})") from exc
        bound = self._httpd.server_address[1]
        self.address = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
        self.url = f"http://{self.address}/metrics"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
