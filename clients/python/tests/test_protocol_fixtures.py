"""The golden protocol fixtures (tests/fixtures/protocol), parsed and built by the Python client.

The Rust side (crates/wshub/tests/protocol_fixtures.rs) and the TypeScript client parse the same
files, so the three cannot drift apart silently.
"""

import base64
import json
import re

import pytest

import wshub
from wshub import binary, messages
from wshub.messages import Established, ErrorMessage, Event, HistoryPage, Reply, SubscribeResult
from conftest import FIXTURES, ROOT

CASES = json.loads((FIXTURES / "cases.json").read_text())


@pytest.mark.parametrize("case", CASES["server"], ids=lambda c: c["file"])
def test_server_message(case):
    message = messages.parse_message((FIXTURES / case["file"]).read_text())
    expect = case["expect"]
    kind = case["kind"]
    if kind == "established":
        assert isinstance(message, Established)
        got = {
            "connection_id": message.connection_id,
            "client_id": message.client_id,
            "user": message.user,
            "role": message.role,
            "roles": message.roles,
            "resumed": message.resumed,
            "resume_error": message.resume_error,
            "subscriptions": [
                {"topic": s.topic, "epoch": s.epoch, "offset": s.offset, "recovered": s.recovered}
                for s in message.subscriptions
            ],
            "ping_period": message.ping_period,
            "pong_wait": message.pong_wait,
            "server_version": message.server_version,
        }
        assert got == expect
    elif kind == "event":
        assert isinstance(message, Event)
        assert {k: getattr(message, k) for k in expect} == expect
    elif kind == "error":
        assert isinstance(message, ErrorMessage)
        error = message.error
        assert message.id == expect["id"] and error.request_id == expect["id"]
        assert type(error).__name__ == expect["error_class"]
        assert isinstance(error, wshub.WshubError)
        assert error.code == expect["code"]
        assert error.message == expect["message"]
        if expect["retry_after"] is not None:
            assert isinstance(error, wshub.RateLimited)
            assert error.retry_after == expect["retry_after"]
    else:
        assert kind == "reply"
        assert isinstance(message, Reply)
        assert (message.id, message.type, message.timestamp) == (expect["id"], expect["type"], expect["timestamp"])
        if "payload" in expect:
            assert message.payload == expect["payload"]
        if message.type == "subscribed":
            result = SubscribeResult.from_payload(message.payload, message.id)
            assert [
                {"topic": p.topic, "epoch": p.epoch, "offset": p.offset, "recovered": p.recovered}
                for p in result.subscribed
            ] == expect["subscribed"]
            assert [
                {"topic": topic, "code": error.code, "error_class": type(error).__name__}
                for topic, error in result.denied.items()
            ] == expect["denied"]
        if message.type == "history":
            page = HistoryPage.from_payload(message.payload)
            assert (page.epoch, page.offset) == (expect["history_epoch"], expect["history_offset"])
            assert [
                {k: getattr(m, k) for k in ("type", "topic", "payload", "id", "offset", "epoch", "timestamp", "sender_id")}
                for m in page.messages
            ] == expect["messages"]


BUILDERS = {
    "subscribe": lambda rid, a: messages.build_subscribe(rid, a["topic"], a.get("recover")),
    "unsubscribe": lambda rid, a: messages.build_unsubscribe(rid, a["topic"]),
    "publish": lambda rid, a: messages.build_publish(rid, a["topic"], a["event"], a["payload"]),
    "ping": lambda rid, a: messages.build_ping(rid),
    "auth": lambda rid, a: messages.build_auth(rid, a["token"]),
    "history": lambda rid, a: messages.build_history(rid, a["topic"], a.get("since"), a.get("limit")),
    "presence": lambda rid, a: messages.build_presence(rid, a["topic"]),
    "get_reconnection_token": lambda rid, a: messages.build_get_reconnection_token(rid),
    "request": lambda rid, a: messages.build_request(a["type"], rid, payload=a.get("payload")),
}


@pytest.mark.parametrize("case", CASES["client"], ids=lambda c: c["file"])
def test_client_request(case):
    built = BUILDERS[case["call"]](case["id"], case["args"])
    assert built == json.loads((FIXTURES / case["file"]).read_text())


@pytest.mark.parametrize("case", CASES["binary"], ids=lambda c: c["file"])
def test_binary_frame(case):
    data = (FIXTURES / case["file"]).read_bytes()
    expected = json.loads((FIXTURES / case["decoded"]).read_text())
    if "error" in expected:
        with pytest.raises(wshub.BinaryFrameError):
            binary.decode_frame(data)
        return
    frame = binary.decode_frame(data)
    assert {
        "version": frame.version,
        "kind": frame.kind,
        "kind_name": frame.kind_name,
        "metadata": frame.metadata,
        "body_base64": base64.b64encode(frame.body).decode(),
    } == expected
    # The encoder writes the same bytes (compact JSON, keys in order).
    assert binary.encode_frame(frame.kind_name, frame.metadata, frame.body) == data
    event = messages.BinaryEvent.from_frame(frame)
    assert event.topic == expected["metadata"]["topic"]
    assert event.offset == expected["metadata"].get("offset")
    assert event.epoch == expected["metadata"].get("epoch")
    assert event.body == frame.body


def test_versions_match_the_server():
    cargo = (ROOT / "Cargo.toml").read_text()
    workspace_version = re.search(r'\[workspace\.package\][^\[]*?version = "([^"]+)"', cargo, re.S).group(1)
    pyproject = (ROOT / "clients" / "python" / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1) == workspace_version
    assert wshub.__version__ == workspace_version
    package = json.loads((ROOT / "clients" / "typescript" / "package.json").read_text())
    assert package["version"] == workspace_version
