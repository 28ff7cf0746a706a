"""Bearer-token access control as a grpc.aio server interceptor.

``authorization: Bearer <token>`` metadata is matched against TITAN_AUTH_TOKENS in
constant time (SHA-256 digests compared with hmac.compare_digest against every grant).
Scopes: ``trade`` for order placement and cancellation (cancel-all too), ``read`` for
everything else on ExchangeService. Health and reflection stay open. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from titan_grpc.config import AuthGrant
from titan_grpc.logs import REQUEST_ID_KEY, current_call, new_request_id, request_id_in

log = logging.getLogger("titan_grpc.rpc")

SERVICE_PREFIX = "/titan.v1.ExchangeService/"
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
TRADE_METHODS = frozenset({"PlaceOrder", "CancelOrder", "CancelAllOrders"})


def required_scope(method: str) -> str | None:
    """The scope a full method name needs; None when it is open to everyone."""
    if method.startswith(OPEN_PREFIXES) or not method.startswith(SERVICE_PREFIX):
        return None
    return "trade" if method.removeprefix(SERVICE_PREFIX) in TRADE_METHODS else "read"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# (method, status code name, seconds): how a refusal is counted in the metrics.
RefusalObserver = Callable[[str, str, float], None]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a fitting token; ``observe`` counts each refusal (gRPC and
    HTTP/JSON alike, as both ask ``check``), since a refused call never reaches the
    servicer whose decorators count the rest."""

    def __init__(self, grants: Sequence[AuthGrant], observe: RefusalObserver | None = None) -> None:
        self._grants = [(_digest(grant.token.reveal()), grant.scopes) for grant in grants]
        self._observe = observe

    def allows(self, token: str, scope: str) -> bool:
        """Whether ``token`` is granted ``scope`` (the metrics endpoint asks this too)."""
        scopes = self._scopes_for(token) if token else None
        return scopes is not None and scope in scopes

    def _scopes_for(self, token: str) -> frozenset[str] | None:
        offered = _digest(token)
        found: frozenset[str] | None = None
        for digest, scopes in self._grants:  # no early exit: same work for every token
            if hmac.compare_digest(offered, digest):
                found = scopes
        return found

    def check(
        self, method: str, metadata: Sequence[tuple[str, str | bytes]]
    ) -> tuple[grpc.StatusCode, str] | None:
        """None when a call of ``method`` (full name) with ``metadata`` may proceed, else
        the status code and message refusing it. The HTTP/JSON transcoder asks this too."""
        scope = required_scope(method)
        if scope is None:
            return None
        token = _bearer(metadata)
        scopes = self._scopes_for(token) if token else None
        if scopes is None:
            return self._refuse(
                method,
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or invalid bearer token (metadata 'authorization: Bearer <token>')",
            )
        if scope not in scopes:
            return self._refuse(
                method, grpc.StatusCode.PERMISSION_DENIED, f"this token lacks the '{scope}' scope"
            )
        return None

    def _refuse(
        self, method: str, code: grpc.StatusCode, message: str
    ) -> tuple[grpc.StatusCode, str]:
        if self._observe is not None:
            self._observe(method.removeprefix(SERVICE_PREFIX), code.name, 0.0)
        return code, message

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        metadata = handler_call_details.invocation_metadata or ()
        refusal = self.check(method, metadata)
        if refusal is None:
            return handler
        # The refusal gets a request id like any answer: the caller's, or a fresh one.
        return _denied(handler, method, *refusal, new_request_id(request_id_in(metadata)))


def _bearer(metadata: Sequence[tuple[str, str | bytes]]) -> str:
    for key, value in metadata:
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            kind, _, token = text.strip().partition(" ")
            if kind.lower() == "bearer":
                return token.strip()
    return ""


def _denied(
    handler: grpc.RpcMethodHandler[Any, Any],
    method: str,
    code: grpc.StatusCode,
    message: str,
    rid: str,
) -> grpc.RpcMethodHandler[Any, Any]:
    name = method.removeprefix(SERVICE_PREFIX)
    current_call.set((rid, name))  # the interceptor runs in the call's own task
    log.info("rpc=%s code=%s (access control)", name, code.name)
    trailing = ((REQUEST_ID_KEY, rid),)

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message, trailing)

    async def stream(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await context.abort(code, message, trailing)
        yield  # pragma: no cover - makes this an async generator

    # The body of a refused call is never parsed: a stranger's bytes cost no work and
    # cannot turn the refusal into a parse error.
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=_ignore_body,
            response_serializer=handler.response_serializer,
        )
    return grpc.unary_unary_rpc_method_handler(
        unary,
        request_deserializer=_ignore_body,
        response_serializer=handler.response_serializer,
    )


def _ignore_body(data: bytes) -> None:
    return None
