"""The Python client against the real wshub binary: requests, events and typed errors."""

import asyncio

import pytest

import wshub
from wshub import Client, Status
from conftest import run, token

TOPICS_WITH_PRESENCE = """
topics:
  - { match: "room/*", subscribe: [admin, developer, viewer, anonymous], publish: [admin, developer], presence: true }
  - { match: signals, subscribe: [admin, developer, bot], publish: [admin] }
  - { match: metrics, subscribe: [admin, developer, viewer, bot, anonymous], publish: [admin] }
  - { match: "feed*", subscribe: [admin, developer, viewer, anonymous], publish: [admin, developer] }
"""


def test_subscribe_receives_typed_events_through_handler_on_and_iterator(hub):
    async def scenario():
        async with Client(hub.ws_url, client_id="py-client") as client:
            assert client.status is Status.OPEN
            assert client.established.client_id == "py-client"
            got, by_type = asyncio.Queue(), asyncio.Queue()
            subscription = client.subscribe("metrics", got.put_nowait)
            client.on("cpu", by_type.put_nowait)
            position = await subscription
            assert (position.topic, position.offset, position.recovered) == ("metrics", 0, False)

            async def first_from_iterator():
                async for event in client.events():
                    return event

            iterator = asyncio.create_task(first_from_iterator())
            await asyncio.sleep(0)  # let the iterator register before the event is published
            published = await hub.publish("metrics", "cpu", {"load": 0.5})

            event = await asyncio.wait_for(got.get(), 5)
            assert isinstance(event, wshub.Event)
            assert (event.type, event.topic, event.payload) == ("cpu", "metrics", {"load": 0.5})
            assert (event.offset, event.epoch) == (1, published["epoch"])
            assert event.sender_id == "server" and event.id.startswith("evt_") and event.timestamp > 0
            assert (await asyncio.wait_for(by_type.get(), 5)) == event
            assert (await asyncio.wait_for(iterator, 5)) == event
        assert client.status is Status.CLOSED

    run(scenario())


def test_publish_by_a_permitted_client_reaches_another(hub):
    async def scenario():
        async with Client(hub.ws_url, token=token("ana", "developer")) as publisher, Client(hub.ws_url) as reader:
            got = asyncio.Queue()
            await reader.subscribe("news", got.put_nowait)
            published = await publisher.publish("news", "headline", {"title": "hi"})
            assert published.offset == 1
            event = await asyncio.wait_for(got.get(), 5)
            assert (event.type, event.payload, event.sender_id, event.epoch) == (
                "headline",
                {"title": "hi"},
                "ana",
                published.epoch,
            )

    run(scenario())


def test_requests_are_matched_to_their_replies_by_id(hub_factory):
    hub = hub_factory(TOPICS_WITH_PRESENCE)

    async def scenario():
        async with Client(hub.ws_url, token=token("u1", "developer"), client_id="me") as client:
            await client.subscribe("room/1")
            for n in range(3):
                await client.publish("room/1", "chat", {"n": n})
            # Sent together; each reply finds its own request whatever the order.
            pong, history, presence, error = await asyncio.gather(
                client.request("ping"),
                client.history("room/1", since=1),
                client.presence("room/1"),
                client.request("token.create", {"type": "demo"}),
                return_exceptions=True,
            )
            assert isinstance(pong, wshub.Reply) and pong.type == "pong"
            assert [m.payload["n"] for m in history.messages] == [1, 2] and history.offset == 3
            assert presence["count"] == 1 and presence["clients"][0]["client_id"] == "me"
            assert isinstance(error, wshub.UnknownType) and "token.create" in error.message
            assert error.request_id is not None

    run(scenario())


def test_typed_errors(hub_factory):
    hub = hub_factory(
        TOPICS_WITH_PRESENCE
        + "rate_limits:\n  default: { capacity: 3, refill_per_sec: 1 }\n"
    )

    async def scenario():
        async with Client(hub.ws_url) as anonymous:
            with pytest.raises(wshub.Forbidden):
                await anonymous.publish("metrics", "x", {})
            with pytest.raises(wshub.Forbidden):
                await anonymous.subscribe("signals")
            with pytest.raises(wshub.UnknownChannel):
                await anonymous.subscribe("nowhere")
            with pytest.raises(wshub.Unavailable):  # presence is not enabled on feed*
                await anonymous.presence("feed")
        async with Client(hub.ws_url, token=token("dev", "developer")) as dev:
            with pytest.raises(wshub.InvalidMessage):
                await dev.publish("feed", "error", {})  # a reserved event name
            with pytest.raises(wshub.RateLimited) as limited:
                for n in range(10):
                    await dev.publish("feed", "tick", {"n": n})
            assert 0 < limited.value.retry_after <= 1.0
        with pytest.raises(wshub.Unauthorized):
            await Client(hub.ws_url, token="not-a-jwt").connect()

    run(scenario())


def test_unsubscribe_leaves_no_subscription_on_the_hub(hub):
    async def scenario():
        async with Client(hub.ws_url) as client:
            first = client.subscribe("room/9", lambda e: None)
            second = client.subscribe("room/9", lambda e: None)
            await first
            assert await hub.subscribers("room/9") == 1
            first.unsubscribe()
            await client.ping()
            assert await hub.subscribers("room/9") == 1  # the other handler still holds it
            second.unsubscribe()
            await client.ping()  # requests run in order: the unsubscribe is done
            assert await hub.subscribers("room/9") == 0

    run(scenario())


def test_token_expiry_calls_get_token_and_refreshes_with_auth(hub_factory):
    hub = hub_factory(TOPICS_WITH_PRESENCE, jwt_extra="    leeway: 0s\n", auth="  refresh_grace: 1s\n")

    async def scenario():
        calls = asyncio.Queue()

        async def get_token():
            fresh = token("tim", "developer")
            calls.put_nowait(fresh)
            return fresh

        client = Client(hub.ws_url, token=token("tim", "developer", exp_in=1.5), get_token=get_token)
        await client.connect()
        connection = client.connection_id
        await asyncio.wait_for(calls.get(), 10)  # the hub said token_expired
        for _ in range(50):  # the auth request follows get_token; publish works once it is done
            try:
                await client.publish("feed", "after-refresh", {})
                break
            except wshub.TokenExpired:
                continue
        else:
            raise AssertionError("publish kept failing with token_expired after the refresh")
        # Past the refresh grace (1 s) the connection is still the same one.
        closed = asyncio.Event()
        client.on_status(lambda status: closed.set())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(closed.wait(), 1.5)
        assert client.connection_id == connection and client.status is Status.OPEN
        await client.close()

    run(scenario())


def test_token_expired_without_get_token_is_typed_then_closes_for_good(hub_factory):
    hub = hub_factory(TOPICS_WITH_PRESENCE, jwt_extra="    leeway: 0s\n", auth="  refresh_grace: 1s\n")

    async def scenario():
        client = Client(hub.ws_url, token=token("tim", "developer", exp_in=1))
        errors = asyncio.Queue()
        client.on_error(errors.put_nowait)
        await client.connect()
        notice = await asyncio.wait_for(errors.get(), 10)
        assert isinstance(notice, wshub.TokenExpired)
        with pytest.raises(wshub.TokenExpired):
            await client.publish("feed", "x", {})
        with pytest.raises(wshub.Unauthorized):
            await asyncio.wait_for(client.run_forever(), 10)  # closed 4002, no new token
        assert client.close_code == 4002 and client.status is Status.CLOSED

    run(scenario())
