"""Broadcast with the `websockets` library, as its broadcasting guide does it: every message a
client sends goes to every connected client through `broadcast()`, which pushes the frame into
each connection's write buffer at once, without backpressure (a slow client's buffer grows until
its ping times out). The text is encoded to UTF-8 once; each connection frames it.

    python server.py [PORT]     (PORT also from $PORT; default 8093; listens on 127.0.0.1)
"""

import asyncio
import os
import signal
import sys

from websockets.asyncio.server import broadcast, serve

CONNECTIONS = set()


async def handler(websocket):
    CONNECTIONS.add(websocket)
    try:
        async for message in websocket:
            broadcast(CONNECTIONS, message)
    finally:
        CONNECTIONS.discard(websocket)


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(handler, "127.0.0.1", port):
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "8093"))))
