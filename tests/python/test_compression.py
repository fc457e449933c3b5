"""permessage-deflate with Python's `websockets`, which offers it by default.

The frames as they came off the wire are seen through a spy on the negotiated extension's
`decode`/`encode` (websockets runs every frame through them, RSV1 still set on the way in).
The bomb and the disabled-compression cases use a raw socket, since a library will not send
a frame the other side did not agree to.
"""

import asyncio
import base64
import json
import os
import socket
import struct
import zlib

from websockets.asyncio.client import connect
from websockets.frames import OP_TEXT

from conftest import Hub
from test_websockets_client import next_of_type, recv_json, request, run, token

BIG = {"rows": [{"n": i, "name": f"row {i}", "ok": True} for i in range(120)]}  # about 4 KiB
SMALL = {"text": "x" * 60}  # about 100 bytes with the envelope


def spy_on_frames(ws):
    """Records (opcode, rsv1) of every frame received and sent, before deflate touches them."""
    extension = ws.protocol.extensions[0]
    received, sent = [], []
    decode, encode = extension.decode, extension.encode

    def spying_decode(frame, *, max_size=None):
        received.append((frame.opcode, frame.rsv1))
        return decode(frame, max_size=max_size)

    def spying_encode(frame):
        encoded = encode(frame)
        sent.append((encoded.opcode, encoded.rsv1))
        return encoded

    extension.decode = spying_decode
    extension.encode = spying_encode
    return received, sent


def test_big_events_arrive_compressed_and_small_ones_plain(hub):
    async def scenario():
        async with connect(hub.ws_url) as ws:
            extensions = ws.response.headers["Sec-WebSocket-Extensions"]
            assert extensions.startswith("permessage-deflate; server_no_context_takeover"), extensions
            received, _ = spy_on_frames(ws)
            await recv_json(ws)
            reply = await request(ws, {"id": "s1", "type": "subscribe", "topic": "room"})
            assert reply["type"] == "subscribed"

            for event, payload in (("big", BIG), ("small", SMALL)):
                status, _ = await asyncio.to_thread(
                    hub.http_post, "/api/publish", {"topic": "room", "event": event, "payload": payload}
                )
                assert status == 200
            big = await next_of_type(ws, "big")
            small = await next_of_type(ws, "small")
            assert big["payload"] == BIG and small["payload"] == SMALL
            assert len(json.dumps(big)) >= 4000

            texts = [rsv1 for opcode, rsv1 in received if opcode == OP_TEXT]
            # established, subscribed, big, small: only the big event crossed the threshold.
            assert texts[-2:] == [True, False], received

    run(scenario())


def test_a_compressed_publish_is_accepted(hub):
    async def scenario():
        admin = {"Authorization": f"Bearer {token('ana', 'admin')}"}
        async with connect(hub.ws_url, additional_headers=admin) as ws:
            _, sent = spy_on_frames(ws)
            await recv_json(ws)
            await request(ws, {"id": "s1", "type": "subscribe", "topic": "room"})
            await ws.send(json.dumps({"id": "p1", "type": "publish", "topic": "room", "event": "chat", "payload": BIG}))
            assert (OP_TEXT, True) in sent, "websockets compressed what it sent"
            # The reply and the event may come in either order.
            seen = {}
            while len(seen) < 2:
                message = await recv_json(ws)
                seen[message["type"]] = message
            assert set(seen) == {"published", "chat"}, seen
            assert seen["chat"]["payload"] == BIG

    run(scenario())


# ---------------------------------------------------------------- raw socket


def raw_connect(hub, offer: str | None):
    host, port = hub.addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    extension = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {hub.addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n{extension}\r\n"
        ).encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, head.decode().lower()


def send_frame(sock, first: int, payload: bytes):
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if length < 65536 else None
    if masked is None:
        # Fast XOR for big payloads.
        repeated = (mask * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    sock.sendall(header + mask + masked)


def read_exact(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def close_code(sock) -> int:
    """Reads frames until the close frame; returns its code."""
    while True:
        first, second = read_exact(sock, 2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", read_exact(sock, 2))
        elif length == 127:
            (length,) = struct.unpack("!Q", read_exact(sock, 8))
        payload = read_exact(sock, length)
        if first & 0x0F == 0x8:
            return struct.unpack("!H", payload[:2])[0]


def client_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM): a buffer inflated and freed again still
    shows in it, where the current RSS would have shrunk back."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def test_a_decompression_bomb_closes_with_1009_and_rss_stays_flat(hub):
    sock, head = raw_connect(hub, "permessage-deflate; client_max_window_bits")
    assert "sec-websocket-extensions: permessage-deflate" in head
    bomb = client_deflate(bytes(10 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    before = peak_rss_kib(hub.proc.pid)
    send_frame(sock, 0x80 | 0x40 | 0x2, bomb)
    assert close_code(sock) == 1009
    after = peak_rss_kib(hub.proc.pid)
    assert after - before < 8 * 1024, f"peak RSS {before} KiB -> {after} KiB"
    sock.close()


def test_compression_disabled_negotiates_nothing_and_refuses_rsv1():
    hub = Hub("compression:\n  enabled: false\n")
    try:

        async def scenario():
            async with connect(hub.ws_url) as ws:
                assert "Sec-WebSocket-Extensions" not in ws.response.headers
                assert ws.protocol.extensions == []
                await recv_json(ws)
                assert (await request(ws, {"id": "p", "type": "ping"}))["type"] == "pong"

        run(scenario())
        sock, head = raw_connect(hub, "permessage-deflate")
        assert "sec-websocket-extensions" not in head
        send_frame(sock, 0x80 | 0x40 | 0x1, client_deflate(b'{"type":"ping"}'))
        assert close_code(sock) == 1002
        sock.close()
    finally:
        hub.stop()
