"""The agent's gRPC channel to the broker: TLS when a CA file is given (mutual TLS
when the site also holds a certificate), else plaintext (local tests and demos),
with keepalives so a dead broker is noticed.

A site may name several brokers that share one store ("h1:p1,h2:p2"): one leads,
the others are standbys that refuse calls with UNAVAILABLE "standby broker; ...".
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

# Pings keep NATs and firewalls from dropping an idle session and reveal a dead
# peer within seconds instead of minutes.
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
    ("grpc.max_send_message_length", 512 * 1024 * 1024),
]


STANDBY = "standby broker"  # how a standby's refusal starts
CONNECT_SECONDS = 3.0  # how long one broker of a list may take to accept a connection


def broker_addresses(brokers: str) -> list[str]:
    """ "h1:p1, h2:p2" -> ["h1:p1", "h2:p2"]; one address stays one."""
    return [a.strip() for a in brokers.split(",") if a.strip()] or [brokers]


def is_standby(err: grpc.RpcError) -> bool:
    """The broker answered as a standby: another one leads, or will within seconds."""
    code = err.code() if hasattr(err, "code") else None
    return code == grpc.StatusCode.UNAVAILABLE and (err.details() or "").startswith(STANDBY)


def open_channel(
    address: str, ca_file: str | Path | None = None, certificate_file: str | Path | None = None
) -> grpc.Channel:
    """A channel to `address` ("host:port"); TLS rooted at `ca_file` if given, presenting
    the key and certificate in `certificate_file` if given (read afresh each time, so a
    renewed certificate is used from the next channel on).

    Given a list ("h1:p1,h2:p2", e.g. the broker of a site credential), the channel
    goes to the first broker that accepts a connection (else the first of the list).
    The agent's session picks its broker itself; this serves one-off calls such as
    `site join`, which a standby refuses naming the leader.
    """
    addresses = broker_addresses(address)
    if len(addresses) > 1:
        for candidate in addresses:
            channel = _open(candidate, ca_file, certificate_file)
            if connects(channel, CONNECT_SECONDS):
                return channel
            channel.close()
        address = addresses[0]
    return _open(address, ca_file, certificate_file)


def connects(channel: grpc.Channel, timeout: float) -> bool:
    """Whether the channel gets READY before it fails to connect or `timeout` passes."""
    done = threading.Event()
    states: list[grpc.ChannelConnectivity] = []

    def watch(state: grpc.ChannelConnectivity) -> None:
        if state in (
            grpc.ChannelConnectivity.READY,
            grpc.ChannelConnectivity.TRANSIENT_FAILURE,
            grpc.ChannelConnectivity.SHUTDOWN,
        ):
            states.append(state)
            done.set()

    channel.subscribe(watch, try_to_connect=True)
    try:
        done.wait(timeout)
    finally:
        channel.unsubscribe(watch)
    return bool(states) and states[0] == grpc.ChannelConnectivity.READY


def _open(address: str, ca_file: str | Path | None, certificate_file: str | Path | None = None) -> grpc.Channel:
    if ca_file:
        root = Path(ca_file).read_bytes()
        key = cert = None
        if certificate_file:
            from minga.common.pki import split_bundle  # lazy: cryptography is the site's, not the CLI's

            key, cert = split_bundle(Path(certificate_file).read_bytes())
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(root, key, cert), CHANNEL_OPTIONS)
    return grpc.insecure_channel(address, CHANNEL_OPTIONS)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that authenticates as the holder of `token` (none for a site that
    authenticates with its certificate)."""
    return (("authorization", f"Bearer {token}"),) if token else ()
