"""Requests that do not decode are the caller's mistake, not the broker's.

gRPC decodes a request before any interceptor or servicer runs. When the bytes are
not a valid message it answers INTERNAL ("exception deserializing request"), which
tells a caller the broker is broken. The interceptor swaps in a tolerant decoder:
bad bytes become a `Malformed` value, and the call answers INVALID_ARGUMENT instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from minga.common.domain import InvalidArgument

Decoder = Callable[[bytes], Any]


class Malformed:
    """Stands in for a request that did not decode."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def refuse(self) -> InvalidArgument:
        return InvalidArgument(f"the request is not a valid message of its type ({type(self.error).__name__})")


def tolerant(decode: Decoder | None) -> Decoder | None:
    """`decode`, returning `Malformed` instead of raising."""
    if decode is None:
        return None

    def decode_or_flag(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # noqa: BLE001 - any decoding failure is the sender's
            return Malformed(exc)

    return decode_or_flag


def checked(request_or_iterator: Any) -> Any:
    """The request, or a stream of them, raising InvalidArgument at a malformed one."""
    if isinstance(request_or_iterator, Malformed):
        raise request_or_iterator.refuse()
    if isinstance(request_or_iterator, Iterator):
        return _checked_stream(request_or_iterator)
    return request_or_iterator


def _checked_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Malformed):
            raise request.refuse()
        yield request
