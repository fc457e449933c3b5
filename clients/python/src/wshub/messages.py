"""Typed views of what the hub sends, and builders for what the client sends (CONTRACT §2–§4).

:func:`parse_message` turns one text frame into an :class:`Established`, an :class:`Event`,
a :class:`Reply` or an :class:`ErrorMessage`; the ``build_*`` functions produce the request
objects the client writes. No I/O here, so the golden fixtures in tests/fixtures/protocol
check both directions.
"""

from __future__ import annotations

import base64
import enum
import json
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from .binary import BinaryFrame, decode_frame
from .errors import RequestId, WshubError, error_from_payload

#: Reply and notice types the hub sends; anything else carrying an offset is an event.
CONTROL_TYPES = frozenset(
    {
        "connection.established",
        "subscribed",
        "unsubscribed",
        "published",
        "pong",
        "authenticated",
        "history",
        "presence",
        "reconnection_token",
        "error",
    }
)


class Status(str, enum.Enum):
    """Where the client's connection stands."""

    #: Opening the first connection.
    CONNECTING = "connecting"
    #: Connected: ``connection.established`` received.
    OPEN = "open"
    #: The connection dropped; waiting for or attempting the next connection.
    RECONNECTING = "reconnecting"
    #: Not connected and not trying (before ``connect``, after ``close``, or given up).
    CLOSED = "closed"


@dataclass(frozen=True)
class Event:
    """A published event delivered on a subscribed topic."""

    type: str
    topic: str
    payload: Any
    offset: int
    epoch: str
    timestamp: int
    sender_id: str
    id: str = ""

    @classmethod
    def from_dict(cls, message: dict) -> "Event":
        return cls(
            type=str(message.get("type", "")),
            topic=str(message.get("topic", "")),
            payload=message.get("payload", {}),
            offset=int(message.get("offset", 0)),
            epoch=str(message.get("epoch", "")),
            timestamp=int(message.get("timestamp", 0)),
            sender_id=str(message.get("sender_id", "")),
            id=str(message.get("id", "")),
        )


@dataclass(frozen=True)
class BinaryEvent:
    """A binary (§12) event: ``body`` is the raw bytes, ``metadata`` the frame's JSON metadata."""

    kind: int
    kind_name: str
    metadata: dict[str, Any]
    body: bytes
    topic: str
    offset: Optional[int]
    epoch: Optional[str]
    timestamp: Optional[int]
    sender_id: Optional[str]
    id: Optional[str]
    type: str = "binary"

    @property
    def payload(self) -> dict[str, Any]:
        """The metadata, so code that prints ``event.payload`` works for both kinds."""
        return self.metadata

    @classmethod
    def from_frame(cls, frame: BinaryFrame) -> "BinaryEvent":
        meta = frame.metadata
        offset = meta.get("offset")
        timestamp = meta.get("timestamp")
        return cls(
            kind=frame.kind,
            kind_name=frame.kind_name,
            metadata=meta,
            body=frame.body,
            topic=str(meta.get("topic", "")),
            offset=offset if isinstance(offset, int) else None,
            epoch=meta.get("epoch") if isinstance(meta.get("epoch"), str) else None,
            timestamp=timestamp if isinstance(timestamp, int) else None,
            sender_id=meta.get("sender_id") if isinstance(meta.get("sender_id"), str) else None,
            id=meta.get("id") if isinstance(meta.get("id"), str) else None,
        )


@dataclass(frozen=True)
class Position:
    """A topic's stream position: the ``subscribed`` entries and restored subscriptions."""

    topic: str
    epoch: str
    offset: int
    recovered: bool = False

    @classmethod
    def from_dict(cls, entry: dict) -> "Position":
        return cls(
            topic=str(entry.get("topic", "")),
            epoch=str(entry.get("epoch", "")),
            offset=int(entry.get("offset", 0)),
            recovered=bool(entry.get("recovered", False)),
        )


@dataclass(frozen=True)
class Established:
    """The ``connection.established`` payload."""

    connection_id: str
    client_id: Optional[str]
    user: Optional[str]
    role: Optional[str]
    roles: list[str]
    resumed: bool
    resume_error: Optional[str]
    subscriptions: list[Position]
    permissions: list[dict]
    ping_period: float
    pong_wait: float
    server_version: str
    server_node: str
    timestamp: int

    @classmethod
    def from_dict(cls, message: dict) -> "Established":
        p = message.get("payload") or {}
        role = p.get("role")
        roles = p.get("roles") or ([role] if role else [])
        heartbeat = p.get("heartbeat") or {}
        server = p.get("server") or {}
        return cls(
            connection_id=str(p.get("connection_id", "")),
            client_id=p.get("client_id"),
            user=p.get("user"),
            role=role,
            roles=list(roles),
            resumed=bool(p.get("resumed", False)),
            resume_error=p.get("resume_error"),
            subscriptions=[Position.from_dict(s) for s in p.get("subscriptions") or []],
            permissions=list(p.get("permissions") or []),
            ping_period=heartbeat.get("ping_period", 54),
            pong_wait=heartbeat.get("pong_wait", 60),
            server_version=str(server.get("version", "")),
            server_node=str(server.get("node", "")),
            timestamp=int(message.get("timestamp", 0)),
        )


@dataclass(frozen=True)
class Reply:
    """A success reply (or an ``unsubscribed`` notice, whose ``id`` is ``None``)."""

    type: str
    id: Optional[RequestId]
    payload: dict
    timestamp: int


@dataclass(frozen=True)
class ErrorMessage:
    """An ``error`` reply or notice, with its typed exception in ``error``."""

    id: Optional[RequestId]
    error: WshubError
    timestamp: int


@dataclass(frozen=True)
class SubscribeResult:
    """A ``subscribed`` reply: the topics subscribed and, per refused topic, its error."""

    subscribed: list[Position]
    denied: dict[str, WshubError] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, payload: dict, request_id: Optional[RequestId] = None) -> "SubscribeResult":
        denied = {
            str(d.get("topic")): error_from_payload(
                {"code": d.get("code"), "message": f"subscribe refused: {d.get('topic')}"}, request_id
            )
            for d in payload.get("denied") or []
        }
        return cls([Position.from_dict(s) for s in payload.get("subscribed") or []], denied)


@dataclass(frozen=True)
class HistoryPage:
    """A ``history`` reply: the topic's current ``epoch`` and latest ``offset``, and events."""

    epoch: str
    offset: int
    messages: list[Union[Event, BinaryEvent]]

    @classmethod
    def from_payload(cls, payload: dict) -> "HistoryPage":
        messages: list[Union[Event, BinaryEvent]] = []
        for m in payload.get("messages") or []:
            if m.get("type") == "binary" and "frame_b64" in m:
                messages.append(BinaryEvent.from_frame(decode_frame(base64.b64decode(m["frame_b64"]))))
            else:
                messages.append(Event.from_dict(m))
        return cls(epoch=str(payload.get("epoch", "")), offset=int(payload.get("offset", 0)), messages=messages)


@dataclass(frozen=True)
class Published:
    """A ``published`` reply: where the event landed."""

    offset: int
    epoch: str


@dataclass(frozen=True)
class ResyncRequired:
    """The hub could not replay what this client missed on ``topic``: refetch its state.

    The live stream continues after ``epoch``/``offset``; ``previous_epoch``/``previous_offset``
    is the last position the client had. ``reason`` is ``"not_recovered"`` (the hub's history
    no longer holds the missed events, or the stream was reset, e.g. by a hub restart),
    ``"gap"`` (events lost in transit could not be read back from history) or
    ``"epoch_changed"`` (the stream was reset while connected).
    """

    topic: str
    epoch: str
    offset: int
    previous_epoch: Optional[str]
    previous_offset: Optional[int]
    reason: str
    type: str = "resync_required"


Message = Union[Established, Event, Reply, ErrorMessage]


def parse_message(text: Union[str, bytes]) -> Message:
    """Parses one JSON text frame from the hub; raises ``ValueError`` if it is not an object."""
    message = json.loads(text)
    if not isinstance(message, dict):
        raise ValueError("server message is not a JSON object")
    return parse_dict(message)


def parse_dict(message: dict) -> Message:
    kind = message.get("type")
    if kind == "connection.established":
        return Established.from_dict(message)
    if kind == "error":
        return ErrorMessage(
            id=message.get("id"),
            error=error_from_payload(message.get("payload"), message.get("id")),
            timestamp=int(message.get("timestamp", 0)),
        )
    if kind not in CONTROL_TYPES and "offset" in message and "topic" in message:
        return Event.from_dict(message)
    payload = message.get("payload")
    return Reply(
        type=str(kind),
        id=message.get("id"),
        payload=payload if isinstance(payload, dict) else {},
        timestamp=int(message.get("timestamp", 0)),
    )


def build_request(
    kind: str,
    request_id: Optional[RequestId] = None,
    *,
    topic: Optional[str] = None,
    event: Optional[str] = None,
    payload: Optional[dict] = None,
) -> dict:
    """The envelope of one request; fields left ``None`` are omitted."""
    message: dict[str, Any] = {}
    if request_id is not None:
        message["id"] = request_id
    message["type"] = kind
    if topic is not None:
        message["topic"] = topic
    if event is not None:
        message["event"] = event
    if payload is not None:
        message["payload"] = payload
    return message


def build_subscribe(request_id: RequestId, topic: str, recover: Optional[dict] = None) -> dict:
    payload = {"recover": {"epoch": recover["epoch"], "offset": recover["offset"]}} if recover else None
    return build_request("subscribe", request_id, topic=topic, payload=payload)


def build_unsubscribe(request_id: RequestId, topic: str) -> dict:
    return build_request("unsubscribe", request_id, topic=topic)


def build_publish(request_id: RequestId, topic: str, event: str, payload: Optional[dict] = None) -> dict:
    return build_request("publish", request_id, topic=topic, event=event, payload=payload if payload is not None else {})


def build_ping(request_id: Optional[RequestId] = None) -> dict:
    return build_request("ping", request_id)


def build_auth(request_id: RequestId, token: str) -> dict:
    return build_request("auth", request_id, payload={"token": token})


def build_history(request_id: RequestId, topic: str, since: Optional[int] = None, limit: Optional[int] = None) -> dict:
    payload: dict[str, int] = {}
    if since is not None:
        payload["since"] = since
    if limit is not None:
        payload["limit"] = limit
    return build_request("history", request_id, topic=topic, payload=payload or None)


def build_presence(request_id: RequestId, topic: str) -> dict:
    return build_request("presence", request_id, topic=topic)


def build_get_reconnection_token(request_id: RequestId) -> dict:
    return build_request("get_reconnection_token", request_id)
