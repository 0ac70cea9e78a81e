"""`MetricsInterceptor`: counts every gRPC call by method and status code, and times unary
ones. It goes first, so it sees the status the auth interceptor (`api/interceptor.py`) set.
Methods outside the RPC table count as "other": a caller cannot grow the label set."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from minga.scheduler.api.authz import RPC_ROLES
from minga.scheduler.api.interceptor import STORE_DOWN, Behavior, Handler
from minga.scheduler.metrics.events import BrokerMetrics


class MetricsInterceptor(grpc.ServerInterceptor):
    def __init__(self, metrics: BrokerMetrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None], details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method if details.method in RPC_ROLES else "other"
        return _counted(handler, method, self._metrics)


def _code(context: grpc.ServicerContext, failed: bool) -> str:
    """The call's status: the one it aborted with, else OK (or UNKNOWN if it raised)."""
    code = context.code()  # type: ignore[attr-defined]  # grpcio keeps it; types-grpcio omits it
    if code is None:
        return "UNKNOWN" if failed else "OK"
    return str(code.name)


def _count(metrics: BrokerMetrics, method: str, context: grpc.ServicerContext, failed: bool) -> None:
    metrics.rpcs.labels(method, _code(context, failed)).inc()
    if failed and context.details() == STORE_DOWN:  # type: ignore[attr-defined]  # as code() above
        metrics.store_errors.labels("rpc").inc()


def _counted(handler: Handler, method: str, metrics: BrokerMetrics) -> Handler:
    def unary(behavior: Behavior) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            start, failed = time.perf_counter(), True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                _count(metrics, method, context, failed)
                metrics.rpc_seconds.labels(method).observe(time.perf_counter() - start)

        return call

    def streaming(behavior: Behavior) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            failed = True
            try:
                yield from behavior(request, context)
                failed = False
            finally:
                _count(metrics, method, context, failed)

        return call

    kinds = (
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler, unary),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler, unary),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler, streaming),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler, streaming),
    )
    for behavior, make, wrap in kinds:
        if behavior is not None:
            return make(wrap(behavior), handler.request_deserializer, handler.response_serializer)
    return handler
