#!/usr/bin/env python3
"""The token-app backend: answers `token.create` and `token.list` for a wshub hub.

The hub POSTs each request routed to it (see wshub.yaml) as
    {"type", "payload", "connection_id", "user", "role", "roles", "client_id"}
and relays the answer {"type"?, "payload"?} to the caller as the reply. A new token is also
published to the `tokens` topic as `token.created`, through the hub's server API, so every
subscriber hears about it. Python standard library only.

    python3 backend.py --port 9000 --hub http://127.0.0.1:8000 [--api-key KEY]
"""

import argparse
import itertools
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
MAX_NAME = 100


class PublishFailed(Exception):
    """The hub did not take the event."""


class Tokens:
    """The application's state: tokens kept in memory."""

    def __init__(self, hub: str, api_key: str | None):
        self._hub = hub.rstrip("/")
        self._api_key = api_key
        self._lock = threading.Lock()
        self._tokens: list[dict] = []
        self._ids = itertools.count(1)

    def create(self, request: dict) -> dict:
        name = request["payload"].get("name")
        if not isinstance(name, str) or not name.strip():
            # A refusal the caller should read is a reply of its own type, not an HTTP error
            # (which the hub reports only as `handler_failed`).
            return {"type": "token.create.rejected", "payload": {"reason": "`name` is required"}}
        if len(name) > MAX_NAME:
            return {"type": "token.create.rejected", "payload": {"reason": f"`name` is longer than {MAX_NAME}"}}
        token = {
            "id": f"tok_{next(self._ids)}",
            "name": name.strip(),
            "created_by": request.get("user") or "anonymous",
            "created_at": int(time.time() * 1000),
        }
        self._publish("tokens", "token.created", token)
        with self._lock:
            self._tokens.append(token)
        return {"payload": {"token": token}}

    def list(self, request: dict) -> dict:
        with self._lock:
            return {"payload": {"tokens": list(self._tokens)}}

    def _publish(self, topic: str, event: str, payload: dict) -> None:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = json.dumps({"topic": topic, "event": event, "payload": payload}).encode()
        request = urllib.request.Request(f"{self._hub}/api/publish", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
        except (urllib.error.URLError, OSError) as error:
            raise PublishFailed(f"publishing {event} to {topic} failed: {error}") from error


def make_handler(tokens: Tokens):
    operations = {"token.create": tokens.create, "token.list": tokens.list}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the hub reuses its connections
        # Headers and body go out in two writes; with Nagle on, the second waits for the hub's
        # delayed ACK (about 40 ms a call on Linux).
        disable_nagle_algorithm = True

        def do_POST(self):
            if self.path != "/rpc":
                return self._answer(404, {"error": "not found"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._answer(413, {"error": "request too large"})
            try:
                request = json.loads(self.rfile.read(length))
                operation = operations[request["type"]]
                request.setdefault("payload", {})
            except (ValueError, KeyError, TypeError):
                return self._answer(400, {"error": "not a request this backend serves"})
            try:
                self._answer(200, operation(request))
            except PublishFailed as error:
                # The hub logs the status and body and tells the caller only `handler_failed`.
                self.log_message("%s", error)
                self._answer(502, {"error": str(error)})

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            sys.stderr.write("token-app: " + (format % args) + "\n")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--hub", default="http://127.0.0.1:8000", help="the hub's HTTP address, for /api/publish")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("WSHUB_API_KEY"),
        help="an auth.api_keys entry of the hub (default $WSHUB_API_KEY; none: the hub must be on loopback)",
    )
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Tokens(args.hub, args.api_key)))
    host, port = server.server_address[:2]
    print(f"token-app backend listening on http://{host}:{port}/rpc (hub {args.hub})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
