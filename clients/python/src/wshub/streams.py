"""Per-topic stream positions: drop duplicates, find gaps, and say when state must be refetched.

For every subscribed topic the client keeps the ``epoch`` and ``offset`` of the last event
it accepted. An event at or below that offset (same epoch) is a duplicate and is dropped, so
nothing is delivered twice across reconnects. An event above ``offset + 1`` reveals a gap —
events lost in transit when a connection dropped — which the client fills from the topic's
``history`` while later events of that topic wait here, so delivery stays in order. When
history cannot fill it, a :class:`ResyncRequired` is produced instead. No I/O: the client
calls in and acts on what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .messages import BinaryEvent, Event, Position, ResyncRequired

Item = Union[Event, BinaryEvent, ResyncRequired]


@dataclass
class Gap:
    """Events ``(after, upto]`` of ``topic`` in ``epoch`` must be read from history."""

    topic: str
    epoch: str
    after: int
    upto: int


@dataclass
class _Stream:
    epoch: Optional[str] = None
    offset: Optional[int] = None
    #: A gap is being filled: events of the topic wait in ``held``.
    filling: Optional[Gap] = None
    held: list = field(default_factory=list)


class Streams:
    """The positions of all subscribed topics."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    def position(self, topic: str) -> Optional[tuple[str, int]]:
        s = self._streams.get(topic)
        if s is None or s.epoch is None or s.offset is None:
            return None
        return s.epoch, s.offset

    def forget(self, topic: str) -> None:
        self._streams.pop(topic, None)

    def reset_in_flight(self) -> None:
        """After a connection drop: events held behind a gap come again (replay or recovery)."""
        for s in self._streams.values():
            s.filling = None
            s.held = []

    def is_filling(self, topic: str) -> bool:
        s = self._streams.get(topic)
        return s is not None and s.filling is not None

    def accept(self, event: Union[Event, BinaryEvent]) -> tuple[list[Item], Optional[Gap]]:
        """An event arrived: what to deliver now, and a gap to fill, if one opened."""
        if event.offset is None or event.epoch is None:
            return [event], None
        s = self._streams.setdefault(event.topic, _Stream())
        if s.filling is not None:
            s.held.append(event)
            return [], None
        if s.epoch is None or s.offset is None:
            s.epoch, s.offset = event.epoch, event.offset
            return [event], None
        if event.epoch != s.epoch:
            out: list[Item] = []
            if event.offset != 1:
                out.append(
                    ResyncRequired(event.topic, event.epoch, event.offset - 1, s.epoch, s.offset, "epoch_changed")
                )
            s.epoch, s.offset = event.epoch, event.offset
            out.append(event)
            return out, None
        if event.offset <= s.offset:
            return [], None
        if event.offset == s.offset + 1:
            s.offset = event.offset
            return [event], None
        gap = Gap(event.topic, s.epoch, s.offset, event.offset - 1)
        s.filling = gap
        s.held = [event]
        return [], gap

    def subscribed(self, entry: Position, recover: Optional[tuple[str, int]]) -> list[Item]:
        """A ``subscribed`` entry (``recover``: the position sent with the request, if any)."""
        s = self._streams.setdefault(entry.topic, _Stream())
        if recover is None:
            if s.epoch is None:
                s.epoch, s.offset = entry.epoch, entry.offset
            return []
        if entry.recovered and entry.epoch == recover[0]:
            # The replay of (recover, entry.offset] follows.
            return []
        s.epoch, s.offset = entry.epoch, entry.offset
        s.filling, s.held = None, []
        return [ResyncRequired(entry.topic, entry.epoch, entry.offset, recover[0], recover[1], "not_recovered")]

    def restored(self, entry: Position) -> tuple[list[Item], Optional[int]]:
        """A subscription restored by a resumption. Returns signals, and the offset the
        replay must reach (checked once the replay is known to be complete)."""
        s = self._streams.setdefault(entry.topic, _Stream())
        if s.epoch is None or s.offset is None:
            s.epoch, s.offset = entry.epoch, entry.offset
            return [], None
        if entry.recovered and entry.epoch == s.epoch:
            return [], entry.offset
        previous = (s.epoch, s.offset)
        s.epoch, s.offset = entry.epoch, entry.offset
        s.filling, s.held = None, []
        return [ResyncRequired(entry.topic, entry.epoch, entry.offset, previous[0], previous[1], "not_recovered")], None

    def replay_complete(self, topic: str, target: int, epoch: str) -> Optional[Gap]:
        """The resumption replay is complete: a gap if the tail up to ``target`` never came."""
        s = self._streams.get(topic)
        if s is None or s.filling is not None or s.epoch != epoch or s.offset is None or s.offset >= target:
            return None
        gap = Gap(topic, epoch, s.offset, target)
        s.filling, s.held = gap, []
        return gap

    def filled(
        self, gap: Gap, epoch: Optional[str], messages: list[Union[Event, BinaryEvent]]
    ) -> tuple[list[Item], Optional[Gap]]:
        """A history page for ``gap`` arrived (``epoch`` ``None``: it could not be read).
        Returns what to deliver, and the gap still to fill (the next page), if any."""
        s = self._streams.get(gap.topic)
        if s is None or s.filling is not gap:
            return [], None
        out: list[Item] = []
        if epoch == gap.epoch:
            for m in messages:
                if m.epoch == gap.epoch and m.offset == (s.offset or 0) + 1 and m.offset <= gap.upto:
                    s.offset = m.offset
                    out.append(m)
        if s.offset is not None and s.offset < gap.upto:
            if epoch == gap.epoch and messages and out:
                # A page ended before the gap did: ask for the next one.
                next_gap = Gap(gap.topic, gap.epoch, s.offset, gap.upto)
                s.filling = next_gap
                return out, next_gap
            out.append(ResyncRequired(gap.topic, gap.epoch, gap.upto, s.epoch, s.offset, "gap"))
            s.offset = gap.upto
        s.filling = None
        held, s.held = s.held, []
        for index, event in enumerate(held):
            items, again = self.accept(event)
            out.extend(items)
            if again is not None:
                # Another gap behind the first: the rest waits for it.
                s.held.extend(held[index + 1 :])
                return out, again
        return out, None
