"""Typed errors: one exception class per wire error code (CONTRACT §4), plus the client's own.

Every ``error`` the hub sends becomes an instance of the class registered for its
``payload.code``; a code this version does not know becomes a plain :class:`WshubError`
so that newer servers never break older clients.
"""

from __future__ import annotations

from typing import Any, Optional, Union

RequestId = Union[str, int]


class WshubError(Exception):
    """An ``error`` reply or notice from the hub.

    ``code`` is the wire code (``"forbidden"``, …), ``message`` the hub's human-readable text,
    ``request_id`` the ``id`` of the request it answers (``None`` for notices).
    """

    code: str = "error"

    def __init__(
        self,
        message: str = "",
        *,
        code: Optional[str] = None,
        request_id: Optional[RequestId] = None,
        payload: Optional[dict] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.request_id = request_id
        self.payload = payload or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


class InvalidMessage(WshubError):
    """The request was malformed (bad JSON, bad field, bad topic or event name)."""

    code = "invalid_message"


class UnknownType(WshubError):
    """No handler is configured on the hub for this request type."""

    code = "unknown_type"


class UnknownChannel(WshubError):
    """No topic rule matches the topic."""

    code = "unknown_channel"


class Forbidden(WshubError):
    """The connection's role may not do this on this topic."""

    code = "forbidden"


class TooManySubscriptions(WshubError):
    """The connection holds ``max_subscriptions_per_connection`` topics already."""

    code = "too_many_subscriptions"


class Unauthorized(WshubError):
    """A bad or missing token (the hub closes the connection with 4001)."""

    code = "unauthorized"


class TokenExpired(WshubError):
    """The connection's token expired; a fresh ``auth`` is expected."""

    code = "token_expired"


class RateLimited(WshubError):
    """The request type's rate-limit bucket is empty; ``retry_after`` is in seconds."""

    code = "rate_limited"

    @property
    def retry_after(self) -> float:
        value = self.payload.get("retry_after")
        return float(value) if isinstance(value, (int, float)) else 1.0


class MessageTooLarge(WshubError):
    """A reply or event would exceed the hub's ``max_message_size``."""

    code = "message_too_large"


class HandlerFailed(WshubError):
    """The backend handler for this request type failed."""

    code = "handler_failed"


class HandlerTimeout(WshubError):
    """The backend handler for this request type did not answer in time."""

    code = "handler_timeout"


class Unavailable(WshubError):
    """The hub cannot serve this now (shutting down, feature off, broker down)."""

    code = "unavailable"


class Internal(WshubError):
    """An unexpected failure inside the hub."""

    code = "internal"


ERROR_CLASSES: dict[str, type[WshubError]] = {
    cls.code: cls
    for cls in (
        InvalidMessage,
        UnknownType,
        UnknownChannel,
        Forbidden,
        TooManySubscriptions,
        Unauthorized,
        TokenExpired,
        RateLimited,
        MessageTooLarge,
        HandlerFailed,
        HandlerTimeout,
        Unavailable,
        Internal,
    )
}


def error_from_payload(payload: Any, request_id: Optional[RequestId] = None) -> WshubError:
    """Builds the typed exception for an ``error`` message's payload."""
    payload = payload if isinstance(payload, dict) else {}
    code = str(payload.get("code", "error"))
    message = str(payload.get("message", ""))
    cls = ERROR_CLASSES.get(code, WshubError)
    return cls(message, code=code, request_id=request_id, payload=payload)


class WshubConnectionError(ConnectionError):
    """Base of the client-side connection errors (not sent by the hub)."""


class ConnectFailed(WshubConnectionError):
    """The WebSocket connection could not be opened (refused, HTTP status, timeout)."""

    def __init__(self, message: str, *, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectionLost(WshubConnectionError):
    """The connection dropped before the reply arrived; the request may or may not have run."""


class ClientClosed(WshubConnectionError):
    """The client is closed: by :meth:`Client.close`, or for good after a close code that
    must not be retried (``code`` and ``reason`` say which)."""

    def __init__(self, message: str, *, code: Optional[int] = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class RequestTimeout(TimeoutError):
    """No reply arrived within the request's timeout."""


class BinaryFrameError(ValueError):
    """A binary frame does not follow CONTRACT §12."""
