"""Binary messages (CONTRACT §12) with Python's `websockets` library: one client publishes a
binary frame, a second one receives it as a binary WebSocket message and finds it in history."""

import asyncio
import base64
import json
import struct
import time

import jwt
from websockets.asyncio.client import connect

from conftest import SECRET

TIMEOUT = 10
HEADER = struct.Struct(">BBI")  # version, kind, metadata length


def token(sub: str, role: str) -> str:
    return jwt.encode({"sub": sub, "role": role, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


def encode(kind: int, metadata: dict, body: bytes) -> bytes:
    meta = json.dumps(metadata, separators=(",", ":")).encode()
    return HEADER.pack(1, kind, len(meta)) + meta + body


def decode(frame: bytes) -> tuple[int, int, dict, bytes]:
    version, kind, length = HEADER.unpack_from(frame)
    end = HEADER.size + length
    return version, kind, json.loads(frame[HEADER.size:end]), frame[end:]


async def recv_json(ws) -> dict:
    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(message, str), f"expected a text frame, got {message!r}"
    return json.loads(message)


async def request(ws, message: dict) -> dict:
    await ws.send(json.dumps(message))
    while True:
        reply = await recv_json(ws)
        if reply.get("id") == message["id"]:
            return reply


def test_a_binary_publish_reaches_another_client_as_a_binary_message(hub):
    async def scenario():
        camera_url = f"{hub.ws_url}?token={token('py-camera', 'developer')}"
        async with connect(hub.ws_url) as viewer, connect(camera_url) as camera:
            assert (await recv_json(viewer))["type"] == "connection.established"
            assert (await recv_json(camera))["type"] == "connection.established"
            reply = await request(viewer, {"id": "s1", "type": "subscribe", "topic": "py/cams"})
            assert reply["type"] == "subscribed"

            body = bytes(range(256)) * 4
            metadata = {"topic": "py/cams", "id": "b1", "format": "gray", "width": 32, "sender_id": "forged"}
            await camera.send(encode(1, metadata, body))
            published = await recv_json(camera)
            assert published["type"] == "published" and published["id"] == "b1", published

            frame = await asyncio.wait_for(viewer.recv(), TIMEOUT)
            assert isinstance(frame, bytes), "a binary event arrives as a binary message"
            version, kind, delivered, got = decode(frame)
            assert (version, kind, got) == (1, 1, body)
            assert delivered["topic"] == "py/cams"
            assert delivered["format"] == "gray" and delivered["width"] == 32
            assert delivered["offset"] == published["payload"]["offset"]
            assert delivered["epoch"] == published["payload"]["epoch"]
            assert delivered["sender_id"] == "py-camera"
            assert delivered["id"].startswith("evt_")

            history = await request(viewer, {"id": "h1", "type": "history", "topic": "py/cams"})
            [entry] = history["payload"]["messages"]
            assert entry["type"] == "binary" and entry["offset"] == delivered["offset"]
            assert base64.b64decode(entry["frame_b64"]) == frame

    asyncio.run(asyncio.wait_for(scenario(), 30))
