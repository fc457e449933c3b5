"""Drives wshub with Python's `websockets` library, the client most Python users reach for."""

import asyncio
import json
import time

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import SECRET

TIMEOUT = 10


def token(sub: str, role: str, exp_in: int = 3600) -> str:
    return jwt.encode({"sub": sub, "role": role, "exp": int(time.time()) + exp_in}, SECRET, algorithm="HS256")


async def recv_json(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def request(ws, message: dict) -> dict:
    """Sends a request with an id and returns the reply with that id (events are skipped)."""
    await ws.send(json.dumps(message))
    while True:
        reply = await recv_json(ws)
        if reply.get("id") == message["id"] and "offset" not in reply:
            return reply


async def next_of_type(ws, kind: str) -> dict:
    while True:
        message = await recv_json(ws)
        if message["type"] == kind:
            return message


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_established_then_subscribe_and_receive_api_publish(hub):
    async def scenario():
        async with connect(hub.ws_url + "?client_id=py-1") as ws:
            established = await recv_json(ws)
            assert established["type"] == "connection.established"
            assert established["payload"]["client_id"] == "py-1"
            assert established["payload"]["role"] == "anonymous"

            reply = await request(ws, {"id": "s1", "type": "subscribe", "topic": "metrics"})
            assert reply["type"] == "subscribed"
            assert reply["payload"]["subscribed"][0]["topic"] == "metrics"

            status, body = await asyncio.to_thread(
                hub.http_post, "/api/publish", {"topic": "metrics", "event": "cpu", "payload": {"load": 0.5}}
            )
            assert status == 200 and body["offset"] == 1

            event = await next_of_type(ws, "cpu")
            assert event["topic"] == "metrics"
            assert event["payload"] == {"load": 0.5}
            assert event["offset"] == 1 and event["epoch"] == body["epoch"]
            assert event["sender_id"] == "server"

    run(scenario())


def test_permitted_client_publishes_to_another_python_client(hub):
    async def scenario():
        async with connect(hub.ws_url, additional_headers={"Authorization": f"Bearer {token('ana', 'admin')}"}) as admin, \
                connect(hub.ws_url) as viewer:
            assert (await recv_json(admin))["payload"]["user"] == "ana"
            await recv_json(viewer)
            reply = await request(viewer, {"id": "v1", "type": "subscribe", "topics": ["status", "signals"]})
            assert [s["topic"] for s in reply["payload"]["subscribed"]] == ["status"]
            assert reply["payload"]["denied"] == [{"topic": "signals", "code": "forbidden"}]

            published = await request(admin, {"id": "p1", "type": "publish", "topic": "status", "event": "up", "payload": {"ok": True}})
            assert published["type"] == "published" and published["payload"]["offset"] == 1

            event = await next_of_type(viewer, "up")
            assert event["payload"] == {"ok": True} and event["sender_id"] == "ana"

            denied = await request(viewer, {"id": "p2", "type": "publish", "topic": "status", "payload": {}})
            assert denied["type"] == "error" and denied["payload"]["code"] == "forbidden"

    run(scenario())


def test_errors_keep_the_connection_open(hub):
    async def scenario():
        async with connect(hub.ws_url) as ws:
            await recv_json(ws)
            for bad in ["not json", "[1]", '{"id": "x"}']:
                await ws.send(bad)
                reply = await recv_json(ws)
                assert reply["type"] == "error" and reply["payload"]["code"] == "invalid_message"
            reply = await request(ws, {"id": "u1", "type": "no.such.type"})
            assert reply["payload"]["code"] == "unknown_type"
            reply = await request(ws, {"id": "k1", "type": "ping"})
            assert reply["type"] == "pong"

    run(scenario())


def test_bad_token_gets_unauthorized_then_close_4001(hub):
    async def scenario():
        async with connect(hub.ws_url + "?token=not-a-jwt") as ws:
            error = await recv_json(ws)
            assert error["type"] == "error" and error["payload"]["code"] == "unauthorized"
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert closed.value.rcvd.code == 4001

    run(scenario())
