"""Prometheus `/metrics` parsed by the reference Python parser, and the `/ws/metrics`
snapshot and live stream (CONTRACT §8, §10) driven by the `websockets` client."""

import asyncio
import json
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from conftest import Hub

TIMEOUT = 10

CONTRACT_METRICS = {
    "wshub_connections": "gauge",
    "wshub_connections_opened": "counter",
    "wshub_connections_closed": "counter",
    "wshub_connection_duration_seconds": "histogram",
    "wshub_messages_sent": "counter",
    "wshub_messages_received": "counter",
    "wshub_message_size_bytes": "histogram",
    "wshub_message_latency_seconds": "histogram",
    "wshub_subscriptions": "gauge",
    "wshub_channel_subscribers": "gauge",
    "wshub_buffered_events": "gauge",
    "wshub_errors": "counter",
    "wshub_broadcast_duration_seconds": "histogram",
    "wshub_reconnections": "counter",
    "wshub_rate_limit_hits": "counter",
    "wshub_compression_saved_bytes": "counter",
}


def get(hub: Hub, path: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(f"http://{hub.addr}{path}", timeout=TIMEOUT) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def scrape(hub: Hub) -> dict:
    """Every sample as {(name, sorted labels): value}, and the families by name."""
    status, content_type, text = get(hub, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {}
    for family in families.values():
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return families, samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def recv_json(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def until(ws, kind: str) -> dict:
    while True:
        message = await recv_json(ws)
        if message["type"] == kind:
            return message


def eventually(check, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_every_contract_metric_is_exposed_with_its_type_and_counters_move(hub):
    families, before = scrape(hub)
    for name, kind in CONTRACT_METRICS.items():
        assert name in families, f"{name} missing"
        assert families[name].type == kind, f"{name} is {families[name].type}, not {kind}"
    # Gauges are not named like counters.
    for name, family in families.items():
        if family.type == "gauge":
            assert not name.endswith("_total"), name

    async def traffic():
        async with connect(hub.ws_url) as subscriber, connect(hub.ws_url) as other:
            await until(subscriber, "connection.established")
            await until(other, "connection.established")
            await subscriber.send(json.dumps({"id": "s", "type": "subscribe", "topic": "metrics"}))
            await until(subscriber, "subscribed")
            await other.send(json.dumps({"id": "f", "type": "subscribe", "topic": "signals"}))
            await until(other, "error")
            for n in range(5):
                status, _ = hub.http_post("/api/publish", {"topic": "metrics", "event": "tick", "payload": {"n": n}})
                assert status == 200
            for _ in range(5):
                await until(subscriber, "tick")
            # Writers fold their counts at least every 100 ms, idle or not: no close needed.
            _, during = eventually(
                lambda: (lambda s: s if value(s[1], "wshub_message_latency_seconds_count") >= 5 else None)(scrape(hub)),
                "the open connections' deliveries to be counted",
            )
            assert value(during, "wshub_messages_sent_total") >= 9
            assert value(during, "wshub_connections") == 2
            assert value(during, "wshub_subscriptions") == 1
            assert value(during, "wshub_channel_subscribers", topic="metrics") == 1

    asyncio.run(traffic())
    _, after = eventually(lambda: (lambda s: s if value(s[1], "wshub_connections_closed_total", reason="normal") >= 2 else None)(scrape(hub)), "both closes counted")
    assert value(after, "wshub_connections_opened_total") - value(before, "wshub_connections_opened_total") == 2
    assert value(after, "wshub_messages_received_total", type="subscribe") == 2
    assert value(after, "wshub_errors_total", code="forbidden") == 1
    # 2 established + 1 subscribed + 1 error + 5 events, at least.
    assert value(after, "wshub_messages_sent_total") >= 9
    assert value(after, "wshub_message_latency_seconds_count") >= 5
    assert value(after, "wshub_broadcast_duration_seconds_count") >= 5
    assert value(after, "wshub_message_size_bytes_count", direction="in") == 2
    assert value(after, "wshub_connection_duration_seconds_count") == 2
    assert value(after, "wshub_connections") == 0


def test_rate_limit_hits_and_handler_types_are_labelled():
    hub = Hub(
        "rate_limits:\n  ping: { capacity: 1, refill_per_sec: 0.01 }\n"
        "handlers:\n  - { match: \"token.*\", url: \"http://127.0.0.1:9/rpc\", timeout: 1s }\n"
    )
    try:

        async def run():
            async with connect(hub.ws_url) as ws:
                await until(ws, "connection.established")
                await ws.send(json.dumps({"id": "1", "type": "ping"}))
                await until(ws, "pong")
                await ws.send(json.dumps({"id": "2", "type": "ping"}))
                error = await until(ws, "error")
                assert error["payload"]["code"] == "rate_limited"
                await ws.send(json.dumps({"id": "3", "type": "token.create"}))
                failed = await until(ws, "error")
                assert failed["payload"]["code"] == "handler_failed"

        asyncio.run(run())
        _, samples = scrape(hub)
        assert value(samples, "wshub_rate_limit_hits_total", type="ping") == 1
        assert value(samples, "wshub_messages_received_total", type="token.*") == 1
        assert value(samples, "wshub_errors_total", code="handler_failed") == 1
    finally:
        hub.stop()


def test_the_prefix_is_configurable():
    hub = Hub("metrics:\n  prefix: hubx\n")
    try:
        families, _ = scrape(hub)
        assert "hubx_connections" in families
        assert not any(name.startswith("wshub_") for name in families)
    finally:
        hub.stop()


def test_a_plain_get_of_the_stream_path_is_a_snapshot(hub):
    hub.http_post("/api/publish", {"topic": "news", "event": "x", "payload": {}})

    def snapshot():
        status, content_type, body = get(hub, "/ws/metrics")
        assert status == 200 and content_type.startswith("application/json")
        s = json.loads(body)
        return s if s["requests_total"] >= 1 else None

    s = eventually(snapshot, "the API call to be counted")
    assert s["type"] == "Snapshot"
    assert s["requests_total"] == s["requests_success"] + s["requests_error"]
    assert isinstance(s["avg_response_time"], (int, float))
    assert 0 <= s["success_rate"] <= 100
    assert s["timestamp"].endswith("Z") and "T" in s["timestamp"]


def test_success_rate_is_100_before_any_request(hub):
    status, _, body = get(hub, "/ws/metrics")
    s = json.loads(body)
    assert s["requests_total"] == 0
    assert s["success_rate"] == 100.0


def test_system_and_alerts_topics_carry_hub_events():
    import jwt

    secret = "observability-secret"
    hub = Hub(
        f"auth:\n  jwt:\n    hs256_secret: {secret}\n"
        "system:\n  interval: 1s\n"
        "websocket:\n  outbound_queue: 16\n"
    )
    admin = jwt.encode({"sub": "ops", "role": "admin", "exp": int(time.time()) + 600}, secret, algorithm="HS256")
    try:

        async def run():
            async with connect(f"{hub.ws_url}?token={admin}") as ws:
                await until(ws, "connection.established")
                await ws.send(json.dumps({"id": "s", "type": "subscribe", "topics": ["system", "alerts"]}))
                await until(ws, "subscribed")
                metrics = await until(ws, "system_metrics")
                assert metrics["topic"] == "system"
                assert metrics["payload"]["active_connections"] >= 1
                assert "memory_rss_bytes" in metrics["payload"]
                # A subscriber that never reads, flooded past its queue of 16: closed 4008.
                async with connect(hub.ws_url, max_queue=1, close_timeout=0.5) as slow:
                    await until(slow, "connection.established")
                    await slow.send(json.dumps({"id": "x", "type": "subscribe", "topic": "flood"}))
                    await until(slow, "subscribed")
                    # 256 KiB each: kernel buffers hold a few dozen, then the queue overflows.
                    filler = "x" * (256 * 1024)
                    for n in range(120):
                        hub.http_post("/api/publish", {"topic": "flood", "event": "e", "payload": {"pad": filler, "n": n}})
                alert = await until(ws, "performance_alert")
                assert alert["topic"] == "alerts"
                assert alert["payload"]["kind"] == "slow_consumer"

        asyncio.run(run())
    finally:
        hub.stop()
