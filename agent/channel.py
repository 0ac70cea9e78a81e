"""The agent's gRPC channel to the broker: TLS when a CA file is given, else
plaintext (local tests and demos), with keepalives so a dead broker is noticed.

A site may name several brokers that share one store ("h1:p1,h2:p2"): one leads,
the others are standbys that refuse calls with UNAVAILABLE "standby broker; ...".
"""
from __future__ import annotations

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


STANDBY = "standby broker"      # how a standby's refusal starts


def broker_addresses(brokers: str) -> list[str]:
    """"h1:p1, h2:p2" -> ["h1:p1", "h2:p2"]; one address stays one."""
    return [a.strip() for a in brokers.split(",") if a.strip()] or [brokers]


def is_standby(err: grpc.RpcError) -> bool:
    """The broker answered as a standby: another one leads, or will within seconds."""
    return err.code() == grpc.StatusCode.UNAVAILABLE and (err.details() or "").startswith(STANDBY)


def open_channel(address: str, ca_file: str | Path | None = None) -> grpc.Channel:
    """A channel to `address` ("host:port"); TLS rooted at `ca_file` if given."""
    if ca_file:
        root = Path(ca_file).read_bytes()
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root), CHANNEL_OPTIONS)
    return grpc.insecure_channel(address, CHANNEL_OPTIONS)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that authenticates as the holder of `token`."""
    return (("authorization", f"Bearer {token}"),)
