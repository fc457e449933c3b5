"""The token-app example (examples/token-app): its Python backend behind the real hub.

The flow of its README: a subscriber of `tokens` and a caller that sends `token.create` with
`wshub send`; the caller gets the reply, the subscriber gets `token.created`.
"""

import asyncio
import json
import socket
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect

from conftest import BIN, ROOT, Hub

BACKEND = ROOT / "examples" / "token-app" / "backend.py"
TIMEOUT = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def token_app():
    # The hub needs the backend's address in its config and the backend needs the hub's, so the
    # backend's port is chosen first.
    port = free_port()
    hub = Hub(f'handlers:\n  - {{ match: "token.*", url: "http://127.0.0.1:{port}/rpc", timeout: 5s }}\n')
    backend = subprocess.Popen(
        [sys.executable, str(BACKEND), "--port", str(port), "--hub", f"http://{hub.addr}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = backend.stdout.readline()
        assert "listening" in line, f"backend did not start: {line!r}"
        yield hub
    finally:
        backend.terminate()
        backend.wait(timeout=TIMEOUT)
        hub.stop()


def send(hub: Hub, kind: str, payload: dict) -> tuple[int, dict]:
    """`wshub send --json`, as in the example's README."""
    done = subprocess.run(
        [BIN, "send", "--url", hub.addr, "--type", kind, "--payload", json.dumps(payload), "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return done.returncode, json.loads(done.stdout)


async def recv_json(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def test_create_replies_to_the_caller_and_tells_the_subscribers(token_app):
    async def scenario():
        async with connect(token_app.ws_url) as subscriber:
            assert (await recv_json(subscriber))["type"] == "connection.established"
            await subscriber.send(json.dumps({"id": "s1", "type": "subscribe", "topic": "tokens"}))
            assert (await recv_json(subscriber))["type"] == "subscribed"

            status, reply = await asyncio.to_thread(send, token_app, "token.create", {"name": "ci"})
            assert status == 0, reply
            assert reply["type"] == "token.create.result"
            token = reply["payload"]["token"]
            assert token["name"] == "ci" and token["created_by"] == "anonymous"

            event = await recv_json(subscriber)
            assert event["type"] == "token.created"
            assert event["topic"] == "tokens" and event["sender_id"] == "server"
            assert event["payload"] == token

    asyncio.run(asyncio.wait_for(scenario(), 30))

    status, listed = send(token_app, "token.list", {})
    assert status == 0 and listed["type"] == "token.list.result"
    assert [t["name"] for t in listed["payload"]["tokens"]] == ["ci"]


def test_refusals_and_unknown_operations(token_app):
    status, rejected = send(token_app, "token.create", {})
    assert status == 0, "a refusal is a reply of its own type"
    assert rejected["type"] == "token.create.rejected"
    assert "name" in rejected["payload"]["reason"]

    status, failed = send(token_app, "token.delete", {})
    assert status == 1
    assert failed["payload"]["code"] == "handler_failed"
    assert "not a request" not in failed["payload"]["message"], "the backend's error stays in the hub's log"

    status, unknown = send(token_app, "other.thing", {})
    assert status == 1 and unknown["payload"]["code"] == "unknown_type"
