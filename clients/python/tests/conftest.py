"""Starts the real wshub binary (WSHUB_BIN, default target/debug/wshub) on an ephemeral port.

The same approach as tests/python/conftest.py, plus what the client tests need: restarting
the hub on the same port, stopping it gracefully (SIGTERM) and the HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt
import pytest

ROOT = Path(__file__).resolve().parents[3]
BIN = os.environ.get("WSHUB_BIN", str(ROOT / "target" / "debug" / "wshub"))
SECRET = "python-client-test-secret"
FIXTURES = ROOT / "tests" / "fixtures" / "protocol"


def token(sub: str, role: str, exp_in: float = 3600) -> str:
    return jwt.encode({"sub": sub, "role": role, "exp": int(time.time() + exp_in)}, SECRET, algorithm="HS256")


class Hub:
    """One wshub process; ``restart()`` starts a new one on the same port."""

    def __init__(self, config_yaml: str = "", port: int = 0, auth: str = "", jwt_extra: str = ""):
        if not Path(BIN).exists():
            raise RuntimeError(f"{BIN} not found: run `cargo build -p wshub` or scripts/test")
        self._dir = tempfile.TemporaryDirectory()
        self.config = Path(self._dir.name) / "wshub.yaml"
        # `auth` lines go under `auth:` (indented 2), `jwt_extra` under `auth.jwt:` (indented 4).
        self.config.write_text(f"auth:\n  jwt:\n    hs256_secret: {SECRET}\n{jwt_extra}{auth}{config_yaml}")
        self.log = Path(self._dir.name) / "wshub.log"
        self._start(port)

    def _start(self, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WSHUB_")}
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", str(self.config), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            env=env,
            text=True,
        )
        deadline = time.monotonic() + 15
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "listening on" in line or self.proc.poll() is not None:
                break
        match = re.search(r"http://(\S+)", line)
        if not match:
            raise RuntimeError(f"wshub did not start:\n{self.log.read_text()}")
        self.addr = match.group(1)
        self.port = int(self.addr.rsplit(":", 1)[1])
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()

    @staticmethod
    def _drain(proc: subprocess.Popen) -> None:
        for _ in proc.stdout:
            pass

    @property
    def ws_url(self) -> str:
        return f"ws://{self.addr}/ws"

    def http(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://{self.addr}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    async def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        return await asyncio.to_thread(self.http, method, path, body)

    async def publish(self, topic: str, event: str, payload: dict) -> dict:
        status, body = await self.api("POST", "/api/publish", {"topic": topic, "event": event, "payload": payload})
        assert status == 200, body
        return body

    async def subscribers(self, topic: str) -> int:
        status, body = await self.api("GET", f"/api/channels/{topic}")
        assert status == 200, body
        return body["subscribers"]

    def terminate(self) -> None:
        """Graceful stop (SIGTERM): flushes, closes every connection with 1001, exits 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.terminate()
        self._start(self.port)

    def stop(self) -> None:
        self.terminate()
        self._dir.cleanup()


@pytest.fixture
def hub_factory():
    hubs: list[Hub] = []

    def make(config_yaml: str = "", **kwargs) -> Hub:
        hub = Hub(config_yaml, **kwargs)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.stop()


@pytest.fixture
def hub(hub_factory):
    return hub_factory()


def run(coro, timeout: float = 60):
    """Runs one test scenario with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate, timeout: float = 10, what: str = "condition"):
    """Polls a condition that no event announces (e.g. server-side state over HTTP)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
