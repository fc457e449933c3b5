"""A terminal monitor for a wshub hub: prints the events of some topics as they arrive.

    pip install ./clients/python
    python examples/python-monitor/monitor.py --topic metrics --topic status

It stays connected across drops and restarts of the hub, says when the connection changes state,
and when events were lost for good (a restarted hub) it refetches the topic's recent history.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time

from wshub import Client, ClientClosed, Event, ResyncRequired, Status, WshubError


def stamp(ms: int | None = None) -> str:
    return time.strftime("%H:%M:%S", time.localtime((ms / 1000) if ms else time.time()))


def show(event: Event) -> None:
    print(f"{stamp(event.timestamp)} {event.topic}#{event.offset} {event.type} {json.dumps(event.payload)}", flush=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws", help="the hub's WebSocket URL")
    parser.add_argument("--topic", action="append", help="a topic to watch (repeatable; default: metrics)")
    parser.add_argument("--token", default=os.environ.get("WSHUB_TOKEN"), help="a JWT (default: $WSHUB_TOKEN)")
    parser.add_argument("--client-id", default="python-monitor")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    client = Client(args.url, token=args.token, client_id=args.client_id)
    client.on_status(lambda status: print(f"{stamp()} -- {status.value}", file=sys.stderr, flush=True))

    async def resync(signal_: ResyncRequired) -> None:
        print(f"{stamp()} -- {signal_.topic}: events lost ({signal_.reason}); refetching history", file=sys.stderr)
        page = await client.history(signal_.topic, limit=20)
        for event in page.messages:
            if event.offset is not None and event.offset <= signal_.offset and isinstance(event, Event):
                show(event)

    try:
        established = await client.connect()
    except (OSError, WshubError) as error:
        print(f"cannot connect to {args.url}: {error}", file=sys.stderr)
        return 1
    print(f"{stamp()} -- connected as {established.role} ({established.connection_id})", file=sys.stderr)
    for topic in args.topic or ["metrics"]:
        subscription = client.subscribe(topic, show, on_resync=resync)
        try:
            await subscription
        except WshubError as error:
            print(f"{stamp()} -- cannot watch {topic}: {error}", file=sys.stderr)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(client.close()))
    try:
        await client.run_forever()
    except ClientClosed as closed:
        print(f"{stamp()} -- closed by the hub ({closed.code}): {closed.reason}", file=sys.stderr)
        return 2
    except WshubError as error:
        print(f"{stamp()} -- closed: {error}", file=sys.stderr)
        return 2
    return 0 if client.status is Status.CLOSED else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
