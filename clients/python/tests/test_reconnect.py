"""Staying connected, against the real wshub binary: resume, recovery, resync, close codes."""

import asyncio
import logging
import os
import signal

import pytest

import wshub
from wshub import Client, ReconnectPolicy, Status
from conftest import run, token, until

FAST = ReconnectPolicy(initial_delay=0.05, max_delay=0.5)


class Recorder:
    """Collects one topic's events and the client's status changes, with waits on both."""

    def __init__(self, client: Client):
        self.events: list[wshub.Event] = []
        self.resyncs: list[wshub.ResyncRequired] = []
        self.statuses: list[Status] = []
        self._changed = asyncio.Event()
        client.on_status(self._status)

    def on_event(self, event):
        self.events.append(event)
        self._poke()

    def on_resync(self, signal_):
        self.resyncs.append(signal_)
        self._poke()

    def _status(self, status):
        self.statuses.append(status)
        self._poke()

    def _poke(self):
        self._changed.set()

    async def wait(self, predicate, timeout=20, what="condition"):
        async def loop():
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


class Publisher:
    """Publishes ``{"n": 0, 1, …}`` to a topic through the HTTP API until stopped, retrying
    while the hub is down; remembers where each accepted event landed."""

    def __init__(self, hub, topic):
        self.hub, self.topic = hub, topic
        self.accepted: list[tuple[int, str, int]] = []  # (n, epoch, offset)
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        n = 0
        while not self._stop.is_set():
            try:
                status, body = await self.hub.api("POST", "/api/publish", {"topic": self.topic, "event": "tick", "payload": {"n": n}})
            except OSError:
                status, body = 0, {}
            if status == 200:
                self.accepted.append((n, body["epoch"], body["offset"]))
                n += 1
            # Pace the stream so it spans the disruptions.
            await asyncio.sleep(0.003 if status == 200 else 0.02)

    async def stop(self):
        self._stop.set()
        await self.task


def offsets(events, epoch=None):
    return [e.offset for e in events if epoch is None or e.epoch == epoch]


def test_resume_after_dropped_connections_loses_and_repeats_nothing(hub):
    async def scenario():
        client = Client(hub.ws_url, reconnect=FAST)
        rec = Recorder(client)
        await client.connect()
        await client.subscribe("feed", rec.on_event, on_resync=rec.on_resync)
        publisher = Publisher(hub, "feed")

        # 1. The hub closes the connection (as for a slow consumer: 4008); the session resumes.
        await rec.wait(lambda: len(rec.events) >= 40, what="40 events")
        first = client.connection_id
        status, _ = await hub.api("POST", "/api/disconnect", {"connection_id": first, "code": 4008})
        assert status == 200
        await rec.wait(lambda: client.status is Status.OPEN and client.connection_id not in (None, first), what="reconnect 1")
        assert client.close_code == 4008 and client.established.resumed is True
        assert [s.topic for s in client.established.subscriptions] == ["feed"]

        # 2. The TCP connection dies under the client (1006): events in flight are lost in
        # transit; the client fills them from history.
        seen = len(rec.events)
        await rec.wait(lambda: len(rec.events) >= seen + 40, what="40 more events")
        second = client.connection_id
        client._conn.ws.transport.abort()
        await rec.wait(lambda: client.status is Status.OPEN and client.connection_id not in (None, second), what="reconnect 2")
        assert client.close_code == 1006 and client.established.resumed is True

        seen = len(rec.events)
        await rec.wait(lambda: len(rec.events) >= seen + 20, what="20 events after the second resume")
        await publisher.stop()
        last = publisher.accepted[-1][2]
        await rec.wait(lambda: rec.events and rec.events[-1].offset == last, what=f"event {last}")

        assert offsets(rec.events) == list(range(1, last + 1))
        assert [e.payload["n"] for e in rec.events] == [n for n, _, _ in publisher.accepted]
        assert rec.resyncs == []
        assert rec.statuses.count(Status.RECONNECTING) == 2
        await client.close()

    run(scenario(), timeout=90)


def test_restarted_hub_means_no_resume_no_recovery_and_one_resync_signal(hub):
    async def scenario():
        client = Client(hub.ws_url, reconnect=FAST)
        rec = Recorder(client)
        refetched: list[wshub.Event] = []

        async def resync(signal_):
            # What an application does: refetch the state, here the new stream's history.
            page = await client.history("feed", limit=1000)
            refetched.extend(m for m in page.messages if m.offset <= signal_.offset)
            rec.on_resync(signal_)

        await client.connect()
        await client.subscribe("feed", rec.on_event, on_resync=resync)
        publisher = Publisher(hub, "feed")
        await rec.wait(lambda: len(rec.events) >= 30, what="30 events")

        await asyncio.to_thread(hub.restart)  # SIGTERM (graceful), then a new process on the same port
        await rec.wait(lambda: rec.resyncs, what="resync_required")
        assert client.established.resumed is False
        assert client.established.resume_error == "invalid_reconnection_token"
        old_epoch = publisher.accepted[0][1]
        await rec.wait(lambda: len([e for e in rec.events if e.epoch != old_epoch]) >= 30, what="30 new-epoch events")
        await publisher.stop()
        last_old = max(o for _, e, o in publisher.accepted if e == old_epoch)
        new_epoch = publisher.accepted[-1][1]
        last_new = publisher.accepted[-1][2]
        assert {epoch for _, epoch, _ in publisher.accepted} == {old_epoch, new_epoch}
        await rec.wait(lambda: rec.events[-1].offset == last_new and rec.events[-1].epoch == new_epoch, what="last event")

        [signal_] = rec.resyncs
        assert (signal_.topic, signal_.reason) == ("feed", "not_recovered")
        assert (signal_.previous_epoch, signal_.previous_offset) == (old_epoch, last_old)
        assert signal_.epoch == new_epoch
        # Every event the old hub accepted arrived (the graceful shutdown flushed them) ...
        assert offsets(rec.events, old_epoch) == list(range(1, last_old + 1))
        # ... and in the new stream, the refetch covers up to the signal, live events follow it.
        assert [e.offset for e in refetched] == list(range(1, signal_.offset + 1))
        assert offsets(rec.events, new_epoch) == list(range(signal_.offset + 1, last_new + 1))
        everything = [e.payload["n"] for e in rec.events if e.epoch == old_epoch] + [
            e.payload["n"] for e in refetched + [e for e in rec.events if e.epoch == new_epoch]
        ]
        assert sorted(everything) == [n for n, _, _ in publisher.accepted]
        assert len(everything) == len(set(everything))
        await client.close()

    run(scenario(), timeout=90)


def test_slow_consumer_closed_with_4008_resumes_without_loss(hub_factory):
    hub = hub_factory(
        "websocket:\n  outbound_queue: 16\nhistory: { size: 400 }\n"
    )
    big = "x" * 200_000

    async def scenario():
        gate = asyncio.Event()
        received: list[wshub.Event] = []
        changed = asyncio.Event()

        async def slow(event):
            await gate.wait()  # the application stops consuming: reading stops behind it
            received.append(event)
            changed.set()

        client = Client(hub.ws_url, reconnect=FAST, max_pending_events=1)
        opened = []
        client.on_status(lambda status: status is Status.OPEN and opened.append(client.established.resumed))
        await client.connect()
        await client.subscribe("bulk", slow)
        total = 120
        for n in range(total):
            await hub.publish("bulk", "blob", {"n": n, "data": big})
        # The hub gives up on the connection (close 4008) and leaves its topics at once.
        async def left():
            return await hub.subscribers("bulk") == 0

        await until(left, timeout=20, what="the hub to close the slow consumer")
        gate.set()

        async def all_received():
            while len(received) < total:
                changed.clear()
                await changed.wait()

        await asyncio.wait_for(all_received(), 30)
        assert [e.offset for e in received] == list(range(1, total + 1))
        assert [e.payload["n"] for e in received] == list(range(total))
        assert client.close_code in (4008, 1006)
        # The first reconnection resumed the session. (A request right after a long replay
        # can overflow a 16-message queue again; the client then recovers by offset.)
        assert opened[0] is False and opened[1] is True
        await client.close()

    run(scenario(), timeout=90)


@pytest.mark.parametrize("code", [1000, 1008])
def test_server_close_1000_and_1008_do_not_reconnect(hub, code):
    async def scenario():
        client = Client(hub.ws_url, reconnect=FAST)
        statuses = []
        client.on_status(statuses.append)
        await client.connect()
        status, _ = await hub.api("POST", "/api/disconnect", {"connection_id": client.connection_id, "code": code})
        assert status == 200
        with pytest.raises(wshub.ClientClosed) as closed:
            await client.run_forever()
        assert closed.value.code == code
        assert statuses == [Status.CONNECTING, Status.OPEN, Status.CLOSED]

    run(scenario())


def test_4001_reconnects_only_with_a_new_token_from_get_token(hub):
    async def scenario():
        tokens = [token("ida", "developer", exp_in=3600 + n) for n in range(2)]
        handed = []

        def get_token():
            handed.append(tokens[len(handed)] if len(handed) < 2 else tokens[-1])
            return handed[-1]

        client = Client(hub.ws_url, get_token=get_token, reconnect=FAST)
        await client.connect()
        assert handed == tokens[:1] and client.established.user == "ida"
        first = client.connection_id
        await hub.api("POST", "/api/disconnect", {"connection_id": first, "code": 4001})
        await until(lambda: client.status is Status.OPEN and client.connection_id not in (None, first), what="reconnect")
        assert handed == tokens  # a new token: reconnected
        await hub.api("POST", "/api/disconnect", {"connection_id": client.connection_id, "code": 4001})
        with pytest.raises(wshub.Unauthorized):
            await client.run_forever()  # get_token gave the same token again: closed for good
        assert client.status is Status.CLOSED and client.close_code == 4001

    run(scenario())


def test_heartbeat_drops_a_silent_connection_and_reconnects(hub):
    async def scenario():
        client = Client(
            hub.ws_url, reconnect=FAST, heartbeat_interval=0.2, heartbeat_timeout=0.3, connect_timeout=1
        )
        rec = Recorder(client)
        await client.connect()
        await client.subscribe("feed", rec.on_event)
        first = client.connection_id
        os.kill(hub.proc.pid, signal.SIGSTOP)  # the hub stops answering, the TCP connection stays up
        try:
            await rec.wait(lambda: client.status is Status.RECONNECTING, timeout=5, what="dead connection noticed")
            assert client.close_code == 1006
        finally:
            os.kill(hub.proc.pid, signal.SIGCONT)
        await rec.wait(lambda: client.status is Status.OPEN, timeout=15, what="reconnected")
        assert client.connection_id != first and client.established.resumed is True
        await hub.publish("feed", "after", {})
        await rec.wait(lambda: rec.events, what="an event after reconnecting")
        await client.close()

    run(scenario())


def test_events_lost_in_transit_are_read_back_from_history(hub, caplog):
    caplog.set_level(logging.DEBUG, logger="wshub")

    async def scenario():
        gate = asyncio.Event()
        received: list[wshub.Event] = []
        changed = asyncio.Event()

        async def paused(event):
            await gate.wait()
            received.append(event)
            changed.set()

        client = Client(hub.ws_url, reconnect=FAST, max_pending_events=1)
        opened = []
        client.on_status(lambda status: status is Status.OPEN and opened.append(client.established.resumed))
        await client.connect()
        await client.subscribe("feed", paused)
        total = 100
        for n in range(total):
            await hub.publish("feed", "chunk", {"n": n, "data": "y" * 5000})
        # The hub has written far more than the client library reads ahead (256 KiB): the
        # rest sits in the client's kernel buffers, and dies with the TCP connection.
        client._conn.ws.transport.abort()
        gate.set()

        async def all_received():
            while len(received) < total:
                changed.clear()
                await changed.wait()

        await asyncio.wait_for(all_received(), 30)
        assert [e.offset for e in received] == list(range(1, total + 1))
        assert opened == [False, True] and client.close_code == 1006
        assert any("from history (lost in transit)" in r.getMessage() for r in caplog.records)
        await client.close()

    run(scenario())
