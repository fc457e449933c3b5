"""wshub: an asyncio client for the wshub real-time WebSocket hub.

Quick start::

    import asyncio
    from wshub import Client

    async def main():
        async with Client("ws://127.0.0.1:8000/ws") as client:
            client.subscribe("metrics", lambda event: print(event.payload))
            await client.run_forever()

    asyncio.run(main())
"""

from ._version import __version__
from .backoff import ReconnectPolicy
from .binary import BinaryFrame, decode_frame, encode_frame
from .client import Client, Subscription
from .errors import (
    ERROR_CLASSES,
    BinaryFrameError,
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    Forbidden,
    HandlerFailed,
    HandlerTimeout,
    Internal,
    InvalidMessage,
    MessageTooLarge,
    RateLimited,
    RequestTimeout,
    TokenExpired,
    TooManySubscriptions,
    Unauthorized,
    Unavailable,
    UnknownChannel,
    UnknownType,
    WshubConnectionError,
    WshubError,
    error_from_payload,
)
from .messages import (
    BinaryEvent,
    Established,
    ErrorMessage,
    Event,
    HistoryPage,
    Position,
    Published,
    Reply,
    ResyncRequired,
    Status,
    SubscribeResult,
    parse_message,
)

__all__ = [
    "BinaryEvent",
    "BinaryFrame",
    "BinaryFrameError",
    "Client",
    "ClientClosed",
    "ConnectFailed",
    "ConnectionLost",
    "ERROR_CLASSES",
    "ErrorMessage",
    "Established",
    "Event",
    "Forbidden",
    "HandlerFailed",
    "HandlerTimeout",
    "HistoryPage",
    "Internal",
    "InvalidMessage",
    "MessageTooLarge",
    "Position",
    "Published",
    "RateLimited",
    "ReconnectPolicy",
    "Reply",
    "RequestTimeout",
    "ResyncRequired",
    "Status",
    "SubscribeResult",
    "Subscription",
    "TokenExpired",
    "TooManySubscriptions",
    "Unauthorized",
    "Unavailable",
    "UnknownChannel",
    "UnknownType",
    "WshubConnectionError",
    "WshubError",
    "__version__",
    "decode_frame",
    "encode_frame",
    "error_from_payload",
    "parse_message",
]
