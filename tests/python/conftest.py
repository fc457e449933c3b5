"""Starts the real wshub binary (WSHUB_BIN, default target/debug/wshub) on an ephemeral port."""

import json
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("WSHUB_BIN", str(ROOT / "target" / "debug" / "wshub"))
SECRET = "python-test-secret"


class Hub:
    def __init__(self, config_yaml: str = ""):
        if not Path(BIN).exists():
            raise RuntimeError(f"{BIN} not found: run `cargo build -p wshub` or scripts/test")
        self._dir = tempfile.TemporaryDirectory()
        config = Path(self._dir.name) / "wshub.yaml"
        config.write_text(config_yaml)
        self.log = Path(self._dir.name) / "wshub.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WSHUB_")}
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", str(config), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            env=env,
            text=True,
        )
        line = self._read_listening_line()
        self.addr = re.search(r"http://(\S+)", line).group(1)
        threading.Thread(target=self._drain, daemon=True).start()

    def _read_listening_line(self) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "listening on" in line:
                return line
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"wshub did not start:\n{self.log.read_text()}")

    def _drain(self):
        for _ in self.proc.stdout:
            pass

    @property
    def ws_url(self) -> str:
        return f"ws://{self.addr}/ws"

    def http_post(self, path: str, body: dict) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            f"http://{self.addr}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._dir.cleanup()


@pytest.fixture
def hub():
    h = Hub(f"auth:\n  jwt:\n    hs256_secret: {SECRET}\n")
    yield h
    h.stop()
