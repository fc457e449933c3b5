"""Unit tests of the pure parts: backoff and per-topic stream positions."""

import random

from wshub import ReconnectPolicy
from wshub.messages import Event, Position, ResyncRequired
from wshub.streams import Streams


def ev(offset: int, epoch: str = "e1", topic: str = "t") -> Event:
    return Event(type="x", topic=topic, payload={"n": offset}, offset=offset, epoch=epoch, timestamp=0, sender_id="s")


def test_backoff_doubles_from_one_second_to_thirty_with_full_jitter():
    policy = ReconnectPolicy()
    assert [policy.ceiling(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.ceiling(10_000) == 30
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(2000)]
    assert all(0 <= d <= 8 for d in delays)
    # Full jitter: spread over the whole range, not clustered at the ceiling.
    assert min(delays) < 0.5 and max(delays) > 7.5
    custom = ReconnectPolicy(initial_delay=0.1, max_delay=0.4, factor=3)
    assert [round(custom.ceiling(n), 3) for n in range(3)] == [0.1, 0.3, 0.4]


def test_duplicates_are_dropped_and_order_kept():
    s = Streams()
    s.subscribed(Position("t", "e1", 0), None)
    delivered = []
    for offset in [1, 2, 2, 1, 3]:
        items, gap = s.accept(ev(offset))
        assert gap is None
        delivered += [i.offset for i in items]
    assert delivered == [1, 2, 3]
    assert s.position("t") == ("e1", 3)


def test_a_gap_holds_later_events_until_history_fills_it():
    s = Streams()
    s.subscribed(Position("t", "e1", 0), None)
    assert s.accept(ev(1))[0] == [ev(1)]
    items, gap = s.accept(ev(4))
    assert items == [] and (gap.after, gap.upto) == (1, 3)
    assert s.accept(ev(5)) == ([], None)
    items, more = s.filled(gap, "e1", [ev(2), ev(3)])
    assert more is None
    assert [i.offset for i in items] == [2, 3, 4, 5]


def test_an_unfillable_gap_signals_resync_then_continues():
    s = Streams()
    s.subscribed(Position("t", "e1", 0), None)
    s.accept(ev(1))
    _, gap = s.accept(ev(5))
    items, more = s.filled(gap, "e1", [])
    assert more is None
    assert isinstance(items[0], ResyncRequired) and items[0].reason == "gap"
    assert (items[0].previous_offset, items[0].offset) == (1, 4)
    assert [i.offset for i in items[1:]] == [5]


def test_recovery_refused_signals_resync_and_moves_to_the_new_epoch():
    s = Streams()
    s.subscribed(Position("t", "e1", 0), None)
    s.accept(ev(1))
    signals = s.subscribed(Position("t", "e2", 9, recovered=False), ("e1", 1))
    assert signals == [ResyncRequired("t", "e2", 9, "e1", 1, "not_recovered")]
    assert s.accept(ev(9, "e2")) == ([], None)
    assert s.accept(ev(10, "e2"))[0] == [ev(10, "e2")]


def test_resumed_replay_that_never_arrived_is_a_gap():
    s = Streams()
    s.subscribed(Position("t", "e1", 0), None)
    s.accept(ev(1))
    signals, target = s.restored(Position("t", "e1", 3, recovered=True))
    assert signals == [] and target == 3
    gap = s.replay_complete("t", 3, "e1")
    assert (gap.after, gap.upto) == (1, 3)
    items, _ = s.filled(gap, "e1", [ev(2), ev(3)])
    assert [i.offset for i in items] == [2, 3]
