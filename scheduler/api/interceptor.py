"""The one interceptor: authenticate, authorize by the RPC table, map errors.

Every handler gets a `CallContext`, the gRPC context plus the verified caller,
and every domain error becomes a gRPC status here and nowhere else.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Protocol, TypeAlias, cast

import grpc

from minga.common import domain
from minga.common.domain import Principal
from minga.common.states import IllegalTransitionError
from minga.scheduler.api.audit import AUDITED
from minga.scheduler.api.authz import RPC_ROLES, STANDBY_RPCS, OwnerLookup, authorize
from minga.scheduler.api.malformed import checked, tolerant
from minga.scheduler.api.ratelimit import Clock, Limits, RateLimiter, caller_key, metered
from minga.scheduler.auth import bearer_from_metadata
from minga.scheduler.store.base import StoreUnavailable

log = logging.getLogger(__name__)
STORE_DOWN = "the broker's database is unavailable; retry shortly"  # the status detail (metrics count it)

ERROR_CODES: dict[type[Exception], grpc.StatusCode] = {
    domain.NotFound: grpc.StatusCode.NOT_FOUND,
    domain.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    domain.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    domain.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    domain.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    domain.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    IllegalTransitionError: grpc.StatusCode.FAILED_PRECONDITION,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    domain.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    domain.OverLimit: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic in the stubs only
# A handler's behaviour: (request or request iterator, context) -> response or response iterator.
Behavior = Callable[[Any, Any], Any]
Wrapper = Callable[[Behavior], Behavior]
# Who calls: a verified Principal, else raises domain.Unauthenticated saying why.
Authenticator = Callable[[grpc.ServicerContext], Principal]
Refusal = Callable[[], str | None]  # why this broker serves no calls now (a standby), else None
# (method, caller, request, response or None, peer, outcome, detail): records a finished call.
Auditor = Callable[[str, Principal | None, Any, Any, str, str, str], None]


class CallContext:
    """The gRPC servicer context, plus who is calling (None only for public RPCs), and
    whether the handler committed the call's audit line itself (then it is not added)."""

    def __init__(self, context: grpc.ServicerContext, principal: Principal | None) -> None:
        self._context = context
        self.principal = principal
        self.audited = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    @property
    def caller(self) -> Principal:
        assert self.principal is not None, "public RPCs have no caller"
        return self.principal


def known_status(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status a domain error maps to; None for an unexpected one."""
    for kind, code in ERROR_CODES.items():
        if isinstance(exc, kind):
            if kind is StoreUnavailable:
                return code, STORE_DOWN
            return code, str(exc)
    return None


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    known = known_status(exc)
    if known is not None:
        return known
    log.exception("unexpected error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the broker log"


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(
        self,
        authenticate: Authenticator,
        refusal: Refusal = lambda: None,
        audit: Auditor | None = None,
        served: frozenset[str] | None = None,
    ) -> None:
        self._authenticate = authenticate
        self._refusal = refusal
        self._audit = audit
        self._served = served  # None: every RPC of the table; else only these (the site port)
        self._limits: Limits | None = None
        self._clock: Clock = time.monotonic
        self._calls: RateLimiter | None = None
        self._owner_of: OwnerLookup = lambda kind, key: None  # no lookup: nothing is anyone's own

    def resolve_targets(self, owner_of: OwnerLookup) -> AuthInterceptor:
        """How authorization finds the institution a request's target belongs to
        (`minga.scheduler.api.authz`); without it, only ANY-scoped calls pass."""
        self._owner_of = owner_of
        return self

    def limit(self, limits: Limits | None, clock: Clock = time.monotonic) -> AuthInterceptor:
        """Rate-limit calls per caller, and messages per client stream (scheduler.api.ratelimit),
        with the buckets refilling as `clock` moves."""
        self._limits, self._clock = limits, clock
        self._calls = RateLimiter(limits.calls, clock) if limits is not None else None
        return self

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None], details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method
        if method not in RPC_ROLES or (self._served is not None and method not in self._served):
            return _rejecting(handler, grpc.StatusCode.UNIMPLEMENTED, f"{method} is not served on this port")
        if method not in STANDBY_RPCS:
            refusal = self._refusal()
            if refusal is not None:  # clients take UNAVAILABLE as "try the next broker"
                return _rejecting(handler, grpc.StatusCode.UNAVAILABLE, refusal)
        audit = None
        if self._audit is not None and method in AUDITED:
            audit = functools.partial(self._audit, method)
        if self._limits is not None and handler.request_streaming:
            handler = _metered(handler, self._limits, self._clock)
        return _wrap(
            handler,
            lambda ctx: self._admitted(method, ctx),
            lambda principal, request: authorize(method, principal, request, self._owner_of),
            audit,
        )

    def _admitted(self, method: str, context: grpc.ServicerContext) -> Principal | None:
        """The caller, once its rate limit lets this call through."""
        principal = self._principal(method, context)
        if self._calls is not None:
            key = caller_key(principal, context.peer())
            self._calls.check(key, principal.name if principal else "this address")
        return principal

    def _principal(self, method: str, context: grpc.ServicerContext) -> Principal | None:
        """Who calls (None for a public RPC); raises Unauthenticated if nobody we know."""
        if RPC_ROLES[method] is None:
            return None
        return self._authenticate(context)


def bearer_authenticator(lookup: Callable[[str], Principal | None]) -> Authenticator:
    """Callers named by a bearer token in the call's metadata (users; sites without a CA)."""

    def authenticate(context: grpc.ServicerContext) -> Principal:
        token = bearer_from_metadata(context.invocation_metadata())
        if token is None:
            raise domain.Unauthenticated("missing bearer token: pass --token or set MINGA_TOKEN")
        principal = lookup(token)
        if principal is None:
            raise domain.Unauthenticated("token is unknown, expired or revoked")
        return principal

    return authenticate


def _wrap(
    handler: Handler,
    who: Callable[[grpc.ServicerContext], Principal | None],
    authorize: Callable[[Principal | None, Any], None],
    audit: Callable[..., None] | None = None,
) -> Handler:
    def caller(context: grpc.ServicerContext, request: Any) -> Principal | None:
        principal = who(context)
        authorize(principal, request)
        return principal

    def unary_response(behavior: Behavior) -> Behavior:
        def call(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            principal, call_context = None, None
            try:
                principal = who(context)
                authorize(principal, request_or_iterator)  # after `who`, so a refused caller is still named
                call_context = CallContext(context, principal)
                response = behavior(checked(request_or_iterator), call_context)
            except Exception as exc:  # noqa: BLE001 - mapped to a status in one place
                if audit is not None and not (call_context and call_context.audited):
                    audit(principal, request_or_iterator, None, context.peer(), *_outcome(context, exc))
                _abort(context, exc)
            if audit is not None and not call_context.audited:
                audit(principal, request_or_iterator, response, context.peer(), "OK", "")
            return response

        return call

    def stream_response(behavior: Behavior) -> Behavior:
        def call(request_or_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from behavior(
                    checked(request_or_iterator), CallContext(context, caller(context, request_or_iterator))
                )
            except Exception as exc:  # noqa: BLE001 - mapped to a status in one place
                _abort(context, exc)

        return call

    return _replace(handler, unary_response, stream_response)


class _StatusRecorded(Protocol):
    """grpc's server context keeps the status a handler aborted with (`code()`, `details()`,
    since grpcio 1.38); types-grpcio does not declare them."""

    def code(self) -> grpc.StatusCode | None: ...

    def details(self) -> str | None: ...


def _aborted_with(context: grpc.ServicerContext) -> tuple[grpc.StatusCode, str] | None:
    """The status the handler aborted with itself, if it did."""
    recorded = cast(_StatusRecorded, context)
    code = recorded.code()
    return None if code is None else (code, recorded.details() or "")


def _outcome(context: grpc.ServicerContext, exc: Exception) -> tuple[str, str]:
    """How a failed call ends, as the audit log records it: (status name, message)."""
    code, message = _aborted_with(context) or known_status(exc) or (grpc.StatusCode.INTERNAL, type(exc).__name__)
    return code.name, message


def _abort(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    if _aborted_with(context) is not None:
        raise exc  # the handler aborted with its own status (context.abort records it)
    code, message = status_for(exc)
    if isinstance(exc, domain.ResourceExhausted):  # the retry hint, for clients to read
        context.set_trailing_metadata((("retry-after-ms", str(math.ceil(exc.retry_after * 1000))),))
    context.abort(code, message)


def _metered(handler: Handler, limits: Limits, clock: Clock) -> Handler:
    """`handler` with its request stream cut at RESOURCE_EXHAUSTED when it floods."""
    make = grpc.stream_stream_rpc_method_handler if handler.stream_stream else grpc.stream_unary_rpc_method_handler
    behavior = handler.stream_stream or handler.stream_unary
    assert behavior is not None, "only request-streaming handlers are metered"
    return make(
        lambda requests, context: behavior(metered(requests, limits.stream_messages, clock), context),
        handler.request_deserializer,
        handler.response_serializer,
    )


def _rejecting(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    def deny(behavior: Behavior) -> Behavior:
        def call(_request: Any, context: grpc.ServicerContext) -> NoReturn:
            context.abort(code, message)

        return call

    return _replace(handler, deny, deny)


def _replace(handler: Handler, unary_response: Wrapper, stream_response: Wrapper) -> Handler:
    """`handler` with its behaviour wrapped, and requests decoded tolerantly (api/malformed.py)."""
    decode = tolerant(handler.request_deserializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            unary_response(handler.unary_unary), decode, handler.response_serializer
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream_response(handler.unary_stream), decode, handler.response_serializer
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            unary_response(handler.stream_unary), decode, handler.response_serializer
        )
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(
        stream_response(handler.stream_stream), decode, handler.response_serializer
    )
