"""Handing received events and signals to the application, in order.

The client's reader puts each accepted event (and each :class:`ResyncRequired`) into one
bounded queue; a single task takes them out and calls the handlers — the topic's
subscriptions, then those registered by event type — awaiting coroutine handlers, so a topic's
events are handled one at a time and in order. A full queue makes the reader wait, which is
how a slow application pushes back on the hub.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Optional, Union

from .errors import WshubError
from .messages import BinaryEvent, Event, Position, ResyncRequired, Status

log = logging.getLogger("wshub")

Handler = Callable[[Any], Any]
Item = Union[Event, BinaryEvent, ResyncRequired]

_STOP = object()


class Subscription:
    """One handler's subscription to a topic, from :meth:`Client.subscribe`.

    ``await subscription`` waits for the hub's answer: the topic's :class:`Position`, or the
    typed error (``Forbidden``, ``UnknownChannel``, …) when it was refused.
    """

    def __init__(
        self,
        topic: str,
        handler: Optional[Handler],
        on_resync: Optional[Handler],
        ready: "asyncio.Future[Position]",
        remove: Callable[["Subscription"], None],
    ):
        self.topic = topic
        self.handler = handler
        self.on_resync = on_resync
        self.active = True
        self._ready = ready
        self._remove = remove

    def unsubscribe(self) -> None:
        """Removes this handler; the topic is left on the hub when no handler remains."""
        if self.active:
            self.active = False
            self._remove(self)

    def __await__(self):
        return asyncio.shield(self._ready).__await__()

    def __repr__(self) -> str:
        return f"Subscription({self.topic!r}, active={self.active})"


@dataclass
class Topic:
    """A topic the application wants: its handlers, and the hub's first answer."""

    ready: "asyncio.Future[Position]"
    subscriptions: list[Subscription] = field(default_factory=list)


class Delivery:
    """The handler registries and the queue between the reader and the handlers."""

    def __init__(self, max_pending: int, topics: dict[str, Topic]) -> None:
        self._max_pending = max_pending
        self._topics = topics
        self._type_handlers: dict[str, list[Handler]] = {}
        self._status_handlers: list[Handler] = []
        self._resync_handlers: list[Handler] = []
        self._error_handlers: list[Handler] = []
        self._iterators: list[tuple[asyncio.Queue, bool]] = []
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None
        self._stragglers: set[asyncio.Task] = set()

    # Registration (the client's public on_* methods).

    def on(self, event_type: str, handler: Handler) -> Callable[[], None]:
        return _add(self._type_handlers.setdefault(event_type, []), handler)

    def on_status(self, handler: Handler) -> Callable[[], None]:
        return _add(self._status_handlers, handler)

    def on_resync(self, handler: Handler) -> Callable[[], None]:
        return _add(self._resync_handlers, handler)

    def on_error(self, handler: Handler) -> Callable[[], None]:
        return _add(self._error_handlers, handler)

    async def events(self, resync: bool) -> AsyncIterator[Item]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=self._max_pending)
        entry = (queue, resync)
        self._iterators.append(entry)
        try:
            while True:
                item = await queue.get()
                if item is _STOP:
                    return
                yield item
        finally:
            if entry in self._iterators:
                self._iterators.remove(entry)

    # The queue.

    def start(self) -> None:
        # Bounded: a full queue blocks the reader (back-pressure to the hub, which closes a
        # client that stops reading with 4008; the client then resumes).
        self._queue = asyncio.Queue(maxsize=self._max_pending)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="wshub-delivery")

    def stop(self) -> None:
        """Stops delivering; what is still queued is dropped, iterators end."""
        if self._task is not None:
            self._task.cancel()
        for task in list(self._stragglers):
            task.cancel()
        for queue, _ in self._iterators:
            _force_put(queue, _STOP)

    async def put(self, item: Item) -> None:
        """Queues an item, waiting while the queue is full."""
        assert self._queue is not None, "start() first"
        await self._queue.put(item)

    def put_nowait(self, item: Item) -> None:
        """Queues an item from synchronous code; a full queue only delays it."""
        assert self._queue is not None, "start() first"
        if self._queue.full():
            task = asyncio.ensure_future(self._queue.put(item))
            self._stragglers.add(task)
            task.add_done_callback(self._stragglers.discard)
        else:
            self._queue.put_nowait(item)

    async def _loop(self) -> None:
        assert self._queue is not None
        while True:
            await self._deliver(await self._queue.get())

    async def _deliver(self, item: Item) -> None:
        state = self._topics.get(item.topic)
        subscriptions = list(state.subscriptions) if state else []
        if isinstance(item, ResyncRequired):
            handlers = [s.on_resync for s in subscriptions if s.on_resync] + list(self._resync_handlers)
        else:
            handlers = [s.handler for s in subscriptions if s.handler]
            handlers += self._type_handlers.get(item.type, []) + self._type_handlers.get("*", [])
        for handler in handlers:
            try:
                result = handler(item)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - one bad handler must not stop delivery
                log.exception("wshub handler failed for %s on %s", item.type, item.topic)
        for queue, wants_resync in list(self._iterators):
            if wants_resync or not isinstance(item, ResyncRequired):
                await queue.put(item)

    # Notices.

    def report(self, error: WshubError) -> None:
        """An error that answers no request of the application's."""
        if not self._error_handlers:
            log.warning("wshub: %s", error)
        for handler in list(self._error_handlers):
            try:
                result = handler(error)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._stragglers.add(task)
                    task.add_done_callback(self._stragglers.discard)
            except Exception:  # noqa: BLE001
                log.exception("wshub error handler failed")

    def status_changed(self, status: Status) -> None:
        for handler in list(self._status_handlers):
            try:
                handler(status)
            except Exception:  # noqa: BLE001
                log.exception("wshub status handler failed")


def _add(handlers: list, handler: Handler) -> Callable[[], None]:
    handlers.append(handler)

    def remove() -> None:
        if handler in handlers:
            handlers.remove(handler)

    return remove


def _force_put(queue: asyncio.Queue, item: Any) -> None:
    while True:
        try:
            queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            queue.get_nowait()
