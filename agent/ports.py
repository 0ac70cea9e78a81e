"""Free TCP ports for local services, chosen explicitly so nothing relies on a
default port (Redis may already hold 6379, Ray's default GCS port)."""

from __future__ import annotations

import random
import socket

# Below Linux's default ephemeral range (32768-60999), so an outgoing connection
# cannot grab a port between choosing it and the service binding it.
PORT_RANGE = (20000, 32000)


def port_is_free(port: int) -> bool:
    """True if `port` can be bound on all interfaces right now (TCP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def free_ports(count: int, rng: random.Random | None = None, exclude: set[int] | None = None) -> list[int]:
    """`count` distinct ports that are free now, none of them in `exclude`."""
    rng = rng or random.Random()
    taken = set(exclude or ())
    chosen: list[int] = []
    for _ in range(count * 200):
        if len(chosen) == count:
            break
        port = rng.randrange(*PORT_RANGE)
        if port in taken:
            continue
        taken.add(port)
        if port_is_free(port):
            chosen.append(port)
    if len(chosen) < count:
        raise RuntimeError(f"could not find {count} free ports in {PORT_RANGE}")
    return chosen


def free_port_block(size: int, rng: random.Random | None = None, exclude: set[int] | None = None) -> int:
    """The first port of `size` consecutive ports that are all free now."""
    rng = rng or random.Random()
    excluded = set(exclude or ())
    low, high = PORT_RANGE
    for _ in range(200):
        start = rng.randrange(low, high - size)
        block = range(start, start + size)
        if excluded.isdisjoint(block) and all(port_is_free(p) for p in block):
            return start
    raise RuntimeError(f"could not find {size} consecutive free ports in {PORT_RANGE}")
