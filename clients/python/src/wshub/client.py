"""The asyncio client: one logical session kept alive across WebSocket connections.

A :class:`Client` opens a connection to ``/ws``, subscribes, publishes and sends requests
(each reply matched to its request by ``id``). When the connection drops it reconnects with
exponential backoff and full jitter, presenting the reconnection token it fetched ahead of
time so the hub resumes the session; when that is impossible it subscribes again with
``recover`` from the last offsets it saw; and when even that fails it tells the application
(:class:`~wshub.messages.ResyncRequired`). Events are deduplicated by (topic, epoch, offset),
so none is delivered twice.

Tasks: one reads the socket (replies resolve their requests there, events go to a bounded
queue), one delivers queued events to handlers in order, and per connection a heartbeat and
the reconnection-token keeper run beside them. A full queue pauses reading, which pushes back
on the hub (whose answer to a client that stops reading is close 4008, then a resumption).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Union

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .backoff import ReconnectPolicy
from .binary import decode_frame
from .connection import AUTH_CODES, FATAL_STATUSES, STOP_CODES, connection_url, open_connection
from .delivery import Delivery, Handler, Subscription, Topic
from .errors import (
    BinaryFrameError,
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    RateLimited,
    RequestTimeout,
    Unauthorized,
    WshubError,
)
from .messages import (
    BinaryEvent,
    Established,
    ErrorMessage,
    Event,
    HistoryPage,
    Message,
    Published,
    Reply,
    ResyncRequired,
    Status,
    SubscribeResult,
    build_auth,
    build_get_reconnection_token,
    build_history,
    build_ping,
    build_presence,
    build_publish,
    build_request,
    build_subscribe,
    build_unsubscribe,
    parse_message,
)
from .streams import Gap, Item, Streams

log = logging.getLogger("wshub")

TokenSource = Callable[[], Union[Optional[str], Awaitable[Optional[str]]]]

#: Largest ``history`` page the hub serves (used to fill gaps).
HISTORY_PAGE = 1000


@dataclass
class _Pending:
    future: asyncio.Future
    #: Runs in the reader when the reply arrives, before any later frame is read; returns
    #: items to deliver (so positions change exactly where the reply sits in the stream).
    hook: Optional[Callable[[Message], list[Item]]] = None


@dataclass
class _Connection:
    ws: ClientConnection
    established: Established
    last_rx: float = 0.0
    reader_blocked: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)


class Client:
    """A wshub client. See the package README for a tour.

    :param url: the hub's WebSocket URL, e.g. ``ws://127.0.0.1:8000/ws``.
    :param token: an access token (JWT), sent as ``Authorization: Bearer``.
    :param client_id: your label for this client, echoed by the hub.
    :param get_token: called (sync or async) for a fresh access token: on the first connect
        when ``token`` is not given, when the hub says ``token_expired`` (the client then
        sends ``auth``), and after a close 4001/4002 (the client reconnects only if it
        returns a new token).
    :param reconnect: a :class:`ReconnectPolicy`, or ``False`` not to reconnect.
    :param resume: fetch a reconnection token and resume the session on reconnect.
    :param heartbeat_interval: seconds between application pings (``{"type":"ping"}``).
    :param heartbeat_timeout: seconds to hear anything back after a ping before the
        connection is taken for dead and dropped (then reconnected).
    :param request_timeout: default timeout of :meth:`request` and friends.
    :param max_pending_events: events received but not yet handled; when full, reading
        pauses (the hub then treats the client as a slow consumer and closes it with 4008,
        after which the client resumes).
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        client_id: Optional[str] = None,
        *,
        get_token: Optional[TokenSource] = None,
        reconnect: Union[ReconnectPolicy, bool] = True,
        resume: bool = True,
        heartbeat_interval: float = 20.0,
        heartbeat_timeout: float = 10.0,
        request_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        max_pending_events: int = 1024,
        max_message_size: Optional[int] = 64 * 1024 * 1024,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self._token = token
        self._get_token = get_token
        if reconnect is True:
            reconnect = ReconnectPolicy()
        elif reconnect is False:
            reconnect = ReconnectPolicy(enabled=False)
        self.reconnect_policy: ReconnectPolicy = reconnect
        self._resume = resume
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self._max_message_size = max_message_size

        self._status = Status.CLOSED
        self._conn: Optional[_Connection] = None
        self._topics: dict[str, Topic] = {}
        self._streams = Streams()
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._delivery = Delivery(max_pending_events, self._topics)
        self._runner: Optional[asyncio.Task] = None
        self._opened = asyncio.Event()
        self._closing = asyncio.Event()
        self._done: Optional[asyncio.Future] = None
        self._reconnection_token: Optional[str] = None
        self._reconnection_deadline = 0.0
        self._background: set[asyncio.Task] = set()
        #: Close code and reason of the last connection that ended.
        self.close_code: Optional[int] = None
        self.close_reason: str = ""

    # ----------------------------------------------------------------- public API

    @property
    def status(self) -> Status:
        return self._status

    @property
    def established(self) -> Optional[Established]:
        """The current connection's ``connection.established`` (``None`` when not open)."""
        return self._conn.established if self._conn else None

    @property
    def connection_id(self) -> Optional[str]:
        return self._conn.established.connection_id if self._conn else None

    async def connect(self) -> Established:
        """Opens the first connection; raises the typed error when it fails (no retry).
        After it succeeds, drops are handled by reconnecting."""
        if self._runner is not None and not self._runner.done():
            raise RuntimeError("connect() was already called")
        loop = asyncio.get_running_loop()
        self._closing.clear()
        self._done = loop.create_future()
        self._delivery.start()
        self._set_status(Status.CONNECTING)
        try:
            ws, established = await self._open()
        except BaseException as error:
            self._set_status(Status.CLOSED)
            self._delivery.stop()
            self._done.set_exception(error)
            self._done.exception()
            raise
        conn = self._adopt(ws, established)
        self._runner = loop.create_task(self._run(conn), name="wshub-connection")
        return established

    async def close(self) -> None:
        """Closes the connection (code 1000) and stops reconnecting. Idempotent."""
        self._closing.set()
        conn = self._conn
        if conn is not None:
            try:
                await conn.ws.close(1000, "client closed")
            except Exception:  # noqa: BLE001 - closing a broken socket may fail; it is gone either way
                pass
        if self._runner is not None:
            try:
                await self._runner
            except Exception:  # noqa: BLE001 - the runner's end is reported through run_forever
                pass
        self._finish(None)

    async def __aenter__(self) -> "Client":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def run_forever(self) -> None:
        """Waits until the client is closed; raises the error that closed it for good
        (e.g. :class:`ClientClosed` after a 1008, :class:`Unauthorized` with no new token)."""
        if self._done is None:
            raise RuntimeError("call connect() first")
        await asyncio.shield(self._done)

    def subscribe(
        self, topic: str, handler: Optional[Handler] = None, *, on_resync: Optional[Handler] = None
    ) -> Subscription:
        """Registers ``handler`` for the events of ``topic`` and subscribes at once (or as
        soon as connected). ``on_resync`` gets this topic's :class:`ResyncRequired`."""
        state = self._topics.get(topic)
        if state is None:
            state = Topic(ready=asyncio.get_running_loop().create_future())
            state.ready.add_done_callback(_consume)
            self._topics[topic] = state
            conn = self._conn
            if conn is not None and self._status is Status.OPEN:
                self._spawn(self._subscribe_topic(conn, topic), conn)
        subscription = Subscription(topic, handler, on_resync, state.ready, self._remove_subscription)
        state.subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, topic: str) -> None:
        """Removes every handler of ``topic`` and leaves it."""
        state = self._topics.get(topic)
        for subscription in list(state.subscriptions if state else []):
            subscription.unsubscribe()

    def on(self, event_type: str, handler: Handler) -> Callable[[], None]:
        """Calls ``handler`` for every event of this type on any subscribed topic
        (``"*"``: every event). Returns a function that removes it."""
        return self._delivery.on(event_type, handler)

    def on_status(self, handler: Handler) -> Callable[[], None]:
        """Calls ``handler(status)`` on every :class:`Status` change."""
        return self._delivery.on_status(handler)

    def on_resync(self, handler: Handler) -> Callable[[], None]:
        """Calls ``handler(ResyncRequired)`` when a topic's missed events are gone for good."""
        return self._delivery.on_resync(handler)

    def on_error(self, handler: Handler) -> Callable[[], None]:
        """Calls ``handler(WshubError)`` for errors that answer no request of yours
        (notices, refused re-subscriptions)."""
        return self._delivery.on_error(handler)

    async def events(self, *, resync: bool = False) -> AsyncIterator[Union[Event, BinaryEvent, ResyncRequired]]:
        """Iterates over every event of every subscribed topic (and :class:`ResyncRequired`
        signals with ``resync=True``) until the client closes."""
        async for item in self._delivery.events(resync):
            yield item

    async def request(
        self,
        type: str,
        payload: Optional[dict] = None,
        *,
        topic: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Reply:
        """Sends a request and returns its reply; raises the typed error of an ``error``
        reply, :class:`RequestTimeout`, or :class:`ConnectionLost` when the connection
        dropped first (the request may or may not have run). While reconnecting it waits
        for the connection (within ``timeout``)."""
        return await self._request(
            lambda rid: build_request(type, rid, topic=topic, payload=payload), timeout=timeout
        )

    async def publish(
        self, topic: str, event: str = "message", payload: Optional[dict] = None, *, timeout: Optional[float] = None
    ) -> Published:
        """Publishes an event; returns its offset and epoch."""
        reply = await self._request(lambda rid: build_publish(rid, topic, event, payload), timeout=timeout)
        return Published(offset=int(reply.payload["offset"]), epoch=str(reply.payload["epoch"]))

    async def history(
        self, topic: str, since: Optional[int] = None, limit: Optional[int] = None, *, timeout: Optional[float] = None
    ) -> HistoryPage:
        """Reads a topic's stored events (``since``: an offset, exclusive)."""
        reply = await self._request(lambda rid: build_history(rid, topic, since, limit), timeout=timeout)
        return HistoryPage.from_payload(reply.payload)

    async def presence(self, topic: str, *, timeout: Optional[float] = None) -> dict:
        """Who is subscribed to ``topic``: ``{"count", "clients": [...]}``."""
        reply = await self._request(lambda rid: build_presence(rid, topic), timeout=timeout)
        return reply.payload

    async def ping(self, *, timeout: Optional[float] = None) -> Reply:
        return await self._request(lambda rid: build_ping(rid), timeout=timeout)

    async def authenticate(self, token: str, *, timeout: Optional[float] = None) -> Reply:
        """Sends ``auth`` with a (fresh) token; it is also used for later reconnects."""
        self._token = token
        return await self._request(lambda rid: build_auth(rid, token), timeout=timeout)

    # ----------------------------------------------------------------- connections

    async def _access_token(self) -> Optional[str]:
        if self._token is None and self._get_token is not None:
            self._token = await _maybe_await(self._get_token())
        return self._token

    async def _open(self) -> tuple[ClientConnection, Established]:
        """One connection attempt, up to ``connection.established``."""
        token = await self._access_token()
        loop = asyncio.get_running_loop()
        resume = self._reconnection_token if self._resume and loop.time() < self._reconnection_deadline else None
        url = connection_url(self.url, self.client_id, resume)
        return await open_connection(url, token, timeout=self.connect_timeout, max_size=self._max_message_size)

    def _adopt(self, ws: ClientConnection, established: Established) -> _Connection:
        """Makes a fresh connection the current one and starts its background work."""
        loop = asyncio.get_running_loop()
        conn = _Connection(ws=ws, established=established, last_rx=loop.time())
        self._conn = conn
        # The reconnection token was spent (or refused) by this handshake.
        self._reconnection_token = None
        items, checks, to_subscribe, to_unsubscribe = self._restore(established)
        self._set_status(Status.OPEN)
        self._opened.set()
        for item in items:
            self._delivery.put_nowait(item)
        conn.tasks.append(
            loop.create_task(self._after_open(conn, established.resumed, checks, to_subscribe, to_unsubscribe))
        )
        conn.tasks.append(loop.create_task(self._heartbeat(conn)))
        return conn

    def _restore(self, established: Established):
        """What a new connection needs: restored topics' positions (resumed), the topics to
        subscribe again, and those to leave (restored but no longer wanted)."""
        items: list[Item] = []
        checks: list[tuple[str, int, str]] = []
        if not established.resumed:
            return items, checks, list(self._topics), []
        restored = {p.topic: p for p in established.subscriptions}
        for topic, state in self._topics.items():
            entry = restored.get(topic)
            if entry is None:
                continue
            signals, target = self._streams.restored(entry)
            items.extend(signals)
            if target is not None:
                checks.append((topic, target, entry.epoch))
            if not state.ready.done():
                state.ready.set_result(entry)
        to_subscribe = [t for t in self._topics if t not in restored]
        to_unsubscribe = [t for t in restored if t not in self._topics]
        return items, checks, to_subscribe, to_unsubscribe

    async def _run(self, conn: _Connection) -> None:
        """Serves connections until the client closes or gives up."""
        error: Optional[BaseException] = None
        try:
            while True:
                code, reason = await self._serve(conn)
                self.close_code, self.close_reason = code, reason
                self._connection_ended(conn, code)
                if self._closing.is_set():
                    break
                conn_or_error = await self._reconnect(code, reason)
                if isinstance(conn_or_error, BaseException):
                    error = conn_or_error
                    break
                conn = conn_or_error
        except asyncio.CancelledError:
            raise
        except Exception as unexpected:  # noqa: BLE001 - reported through run_forever
            log.exception("wshub client stopped by an unexpected error")
            error = unexpected
        self._finish(error)

    async def _reconnect(self, code: int, reason: str) -> Union[_Connection, BaseException]:
        """After a drop: the next connection, or the error that ends the client."""
        policy = self.reconnect_policy
        if code in STOP_CODES:
            return ClientClosed(f"connection closed with {code} ({STOP_CODES[code]}): {reason}", code=code, reason=reason)
        if code in AUTH_CODES and not await self._renew_token():
            return Unauthorized(f"connection closed with {code} ({reason}) and get_token gave no new token")
        if not policy.enabled:
            return ClientClosed(f"connection closed with {code}: {reason}", code=code, reason=reason)
        self._set_status(Status.RECONNECTING)
        attempt = 0
        while True:
            delay = policy.delay(attempt)
            try:
                await asyncio.wait_for(self._closing.wait(), delay)
                return ClientClosed("closed while reconnecting", code=1000)
            except asyncio.TimeoutError:
                pass
            try:
                ws, established = await self._open()
                return self._adopt(ws, established)
            except Unauthorized as error:
                if not await self._renew_token():
                    return error
            except ClientClosed as error:
                if error.code in STOP_CODES:
                    return error
            except ConnectFailed as error:
                if error.status in FATAL_STATUSES:
                    return error
                log.debug("reconnect attempt %d failed: %s", attempt + 1, error)
            except WshubError as error:
                log.debug("reconnect attempt %d refused: %s", attempt + 1, error)
            attempt += 1
            if policy.max_attempts is not None and attempt >= policy.max_attempts:
                return ClientClosed(f"gave up after {attempt} reconnect attempts", code=code, reason=reason)

    async def _renew_token(self) -> bool:
        """Asks get_token for a new access token; ``True`` if it gave one that differs."""
        if self._get_token is None:
            return False
        try:
            token = await _maybe_await(self._get_token())
        except Exception:  # noqa: BLE001 - a failing token source means: no new token
            log.exception("get_token failed")
            return False
        if not token or token == self._token:
            return False
        self._token = token
        return True

    async def _serve(self, conn: _Connection) -> tuple[int, str]:
        """Reads one connection until it ends; returns its close code and reason."""
        loop = asyncio.get_running_loop()
        try:
            async for frame in conn.ws:
                conn.last_rx = loop.time()
                items = self._receive(conn, frame)
                if items:
                    conn.reader_blocked = True
                    for item in items:
                        await self._delivery.put(item)
                    conn.reader_blocked = False
        except ConnectionClosed:
            pass
        rcvd = conn.ws.protocol.close_rcvd
        if rcvd is None:
            return 1006, ""
        return rcvd.code, rcvd.reason

    def _connection_ended(self, conn: _Connection, code: int) -> None:
        for task in conn.tasks:
            task.cancel()
        if self._conn is conn:
            self._conn = None
        self._opened.clear()
        lost = ConnectionLost(f"connection closed with {code} before the reply arrived")
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(lost)
        self._streams.reset_in_flight()

    def _finish(self, error: Optional[BaseException]) -> None:
        if self._done is not None and not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)
                self._done.add_done_callback(_consume)
            for state in self._topics.values():
                if not state.ready.done():
                    state.ready.set_exception(error or ClientClosed("client closed", code=1000))
        for task in list(self._background):
            task.cancel()
        self._delivery.stop()
        self._set_status(Status.CLOSED)

    # ----------------------------------------------------------------- reading

    def _receive(self, conn: _Connection, frame: Union[str, bytes]) -> list[Item]:
        """Handles one frame in the reader; returns what to deliver, in order."""
        if isinstance(frame, bytes):
            try:
                event = BinaryEvent.from_frame(decode_frame(frame))
            except BinaryFrameError as error:
                log.warning("dropping a malformed binary frame: %s", error)
                return []
            return self._accept(conn, event)
        try:
            message = parse_message(frame)
        except ValueError:
            log.warning("dropping a server frame that is not a JSON object")
            return []
        if isinstance(message, Event):
            return self._accept(conn, message)
        request_id = message.id if isinstance(message, (Reply, ErrorMessage)) else None
        pending = self._pending.pop(str(request_id), None) if request_id is not None else None
        if pending is not None:
            items = pending.hook(message) if pending.hook else []
            if not pending.future.done():
                if isinstance(message, ErrorMessage):
                    pending.future.set_exception(message.error)
                else:
                    pending.future.set_result(message)
            return items
        if isinstance(message, ErrorMessage):
            if message.error.code == "token_expired":
                self._spawn(self._refresh_token(conn, message.error), conn)
            else:
                self._delivery.report(message.error)
        elif isinstance(message, Reply) and message.type == "unsubscribed":
            # The hub dropped topics after an auth refresh changed our roles.
            for topic in message.payload.get("unsubscribed") or []:
                if topic in self._topics:
                    del self._topics[topic]
                    self._streams.forget(topic)
                    self._delivery.report(WshubError(f"the hub dropped the subscription to {topic}", code="forbidden"))
        return []

    def _accept(self, conn: _Connection, event: Union[Event, BinaryEvent]) -> list[Item]:
        if event.topic not in self._topics:
            # Still in flight when the topic was left.
            return []
        items, gap = self._streams.accept(event)
        if gap is not None:
            self._fill(conn, gap)
        return items

    def _fill(self, conn: _Connection, gap: Gap) -> None:
        """Reads events ``gap`` lost in transit from history (their successors wait)."""

        def hook(message: Message) -> list[Item]:
            if isinstance(message, Reply) and message.type == "history":
                page = HistoryPage.from_payload(message.payload)
                items, more = self._streams.filled(gap, page.epoch, page.messages)
            else:
                items, more = self._streams.filled(gap, None, [])
            if more is not None:
                self._fill(conn, more)
            return items

        limit = min(HISTORY_PAGE, gap.upto - gap.after)
        log.debug("reading events %d..%d of %s from history (lost in transit)", gap.after + 1, gap.upto, gap.topic)
        self._spawn(
            self._call(conn, lambda rid: build_history(rid, gap.topic, gap.after, limit), hook=hook), conn
        )

    # ----------------------------------------------------------------- per connection

    async def _after_open(self, conn, resumed: bool, checks, to_subscribe, to_unsubscribe) -> None:
        try:
            if resumed:
                # The hub queues the whole resumption replay before it reads our first
                # request, so when this reply arrives the replay is complete.
                def replay_done(_message: Message) -> list[Item]:
                    for topic, target, epoch in checks:
                        gap = self._streams.replay_complete(topic, target, epoch)
                        if gap is not None:
                            self._fill(conn, gap)
                    return []

                await self._call(conn, lambda rid: build_ping(rid), hook=replay_done)
            for topic in to_unsubscribe:
                await self._call(conn, lambda rid, t=topic: build_unsubscribe(rid, t))
            for topic in to_subscribe:
                if topic in self._topics:
                    await self._subscribe_topic(conn, topic)
            if self._resume:
                await self._keep_reconnection_token(conn)
        except (ConnectionLost, ClientClosed, asyncio.CancelledError):
            return

    async def _subscribe_topic(self, conn: _Connection, topic: str) -> None:
        """Subscribes one topic on ``conn``, recovering from its last position if known."""
        recover = self._streams.position(topic)
        state = self._topics.get(topic)

        def hook(message: Message) -> list[Item]:
            if not (isinstance(message, Reply) and message.type == "subscribed"):
                return []
            items: list[Item] = []
            for entry in SubscribeResult.from_payload(message.payload).subscribed:
                current = self._topics.get(entry.topic)
                if current is None or current is not state:
                    continue
                items.extend(self._streams.subscribed(entry, recover))
                if not current.ready.done():
                    current.ready.set_result(entry)
            return items

        build = (
            (lambda rid: build_subscribe(rid, topic, {"epoch": recover[0], "offset": recover[1]}))
            if recover
            else (lambda rid: build_subscribe(rid, topic))
        )
        while True:
            try:
                reply = await self._call(conn, build, hook=hook)
            except RateLimited as error:
                await asyncio.sleep(error.retry_after)
                continue
            except WshubError as error:
                self._refused(topic, state, error)
                return
            break
        denied = SubscribeResult.from_payload(reply.payload, reply.id).denied.get(topic)
        if denied is not None:
            self._refused(topic, state, denied)
        elif self._topics.get(topic) is not state:
            # Unsubscribed while the request was in flight.
            await self._call(conn, lambda rid: build_unsubscribe(rid, topic))

    def _refused(self, topic: str, state: Optional[Topic], error: WshubError) -> None:
        if state is not None and self._topics.get(topic) is state:
            del self._topics[topic]
            self._streams.forget(topic)
            if not state.ready.done():
                state.ready.set_exception(error)
                return
        self._delivery.report(error)

    async def _keep_reconnection_token(self, conn: _Connection) -> None:
        """Fetches a reconnection token now and again before it expires."""
        loop = asyncio.get_running_loop()
        while self._conn is conn:
            try:
                reply = await self._call(conn, lambda rid: build_get_reconnection_token(rid))
            except RateLimited as error:
                await asyncio.sleep(error.retry_after)
                continue
            except WshubError as error:
                log.warning("could not get a reconnection token: %s", error)
                await asyncio.sleep(5.0)
                continue
            expires_in = float(reply.payload.get("expires_in", 300))
            self._reconnection_token = str(reply.payload["token"])
            self._reconnection_deadline = loop.time() + expires_in
            # One token covers the connection's whole life; refresh it only for its expiry.
            await asyncio.sleep(max(1.0, expires_in / 2))

    async def _refresh_token(self, conn: _Connection, notice: WshubError) -> None:
        """The hub said token_expired: ask get_token, then send ``auth``."""
        if self._get_token is None:
            self._delivery.report(notice)
            return
        try:
            token = await _maybe_await(self._get_token())
        except Exception:  # noqa: BLE001 - the hub closes with 4002 after its grace period
            log.exception("get_token failed")
            return
        if not token:
            return
        self._token = token
        try:
            await self._call(conn, lambda rid: build_auth(rid, token))
        except WshubError as error:
            self._delivery.report(error)

    async def _heartbeat(self, conn: _Connection) -> None:
        """Application pings; a connection that stays silent after one is dropped."""
        loop = asyncio.get_running_loop()
        ping = json.dumps(build_ping())
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            sent = loop.time()
            try:
                await conn.ws.send(ping)
            except ConnectionClosed:
                return
            await asyncio.sleep(self.heartbeat_timeout)
            if conn.last_rx < sent and not conn.reader_blocked:
                log.warning("no answer to a ping within %.1fs: dropping the connection", self.heartbeat_timeout)
                conn.ws.transport.abort()
                return

    # ----------------------------------------------------------------- requests

    async def _request(self, build: Callable[[str], dict], *, timeout: Optional[float]) -> Reply:
        timeout = self.request_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conn = await self._wait_open(timeout)
        return await self._call(conn, build, timeout=max(0.0, deadline - loop.time()))

    async def _wait_open(self, timeout: float) -> _Connection:
        if self._status is Status.CLOSED:
            raise ClientClosed("the client is not connected", code=self.close_code)
        try:
            await asyncio.wait_for(self._opened.wait(), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"not connected within {timeout}s") from None
        if self._conn is None:
            raise ConnectionLost("the connection dropped")
        return self._conn

    async def _call(
        self,
        conn: _Connection,
        build: Callable[[str], dict],
        *,
        timeout: Optional[float] = None,
        hook: Optional[Callable[[Message], list[Item]]] = None,
    ) -> Reply:
        """Sends a request on ``conn`` and waits for its reply."""
        if self._conn is not conn:
            raise ConnectionLost("the connection dropped")
        request_id = f"c{next(self._ids)}"
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _Pending(future, hook)
        try:
            await conn.ws.send(json.dumps(build(request_id)))
            return await asyncio.wait_for(future, self.request_timeout if timeout is None else timeout)
        except ConnectionClosed:
            raise ConnectionLost("the connection dropped") from None
        except asyncio.TimeoutError:
            raise RequestTimeout(f"no reply to request {request_id} within {timeout or self.request_timeout}s") from None
        finally:
            self._pending.pop(request_id, None)

    # ----------------------------------------------------------------- bookkeeping

    def _set_status(self, status: Status) -> None:
        if status is self._status:
            return
        self._status = status
        self._delivery.status_changed(status)

    def _spawn(self, coro: Awaitable, conn: Optional[_Connection]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)
        if conn is not None:
            conn.tasks.append(task)

    def _remove_subscription(self, subscription: Subscription) -> None:
        state = self._topics.get(subscription.topic)
        if state is None or subscription not in state.subscriptions:
            return
        state.subscriptions.remove(subscription)
        if state.subscriptions:
            return
        del self._topics[subscription.topic]
        self._streams.forget(subscription.topic)
        conn = self._conn
        if conn is not None and self._status is Status.OPEN and state.ready.done():
            self._spawn(self._call(conn, lambda rid: build_unsubscribe(rid, subscription.topic)), conn)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _consume(future: asyncio.Future) -> None:
    """Marks a future's exception as seen (it is reported elsewhere)."""
    if not future.cancelled():
        future.exception()


def _log_failure(task: asyncio.Task) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and not isinstance(error, (ConnectionLost, ClientClosed, RequestTimeout)):
        log.error("wshub background task failed: %r", error)
