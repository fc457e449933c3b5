"""The live metrics stream on `/ws/metrics` (CONTRACT §8), driven by the `websockets` client
through every message type: Snapshot, subscriptions, TimeSeries, Error and Heartbeat."""

import asyncio
import json

from websockets.asyncio.client import connect

from conftest import Hub
from test_observability import recv_json, until
def metrics_url(hub: Hub) -> str:
    return f"ws://{hub.addr}/ws/metrics"


def test_the_stream_sends_a_snapshot_at_once_then_every_interval(hub):
    async def run():
        async with connect(metrics_url(hub)) as ws:
            first = await recv_json(ws)
            assert first["type"] == "Snapshot"
            for key in ("requests_total", "requests_success", "requests_error", "active_connections",
                        "avg_response_time", "success_rate", "top_topics"):
                assert key in first, key
            assert first["timestamp"].endswith("Z")
            second = await until(ws, "Snapshot")
            assert second["timestamp"] >= first["timestamp"]

    asyncio.run(run())


def test_a_subscription_narrows_the_snapshot_and_returns_history(hub):
    async def run():
        async with connect(metrics_url(hub)) as ws:
            await until(ws, "Snapshot")
            await ws.send(json.dumps({"metrics": ["requests_total", "active_connections"],
                                      "interval_seconds": 1, "include_history": True}))
            series = [await until(ws, "TimeSeries") for _ in range(2)]
            assert sorted(s["metric_name"] for s in series) == ["active_connections", "requests_total"]
            for s in series:
                assert s["data_points"], "the hub keeps a point from its first second"
                point = s["data_points"][0]
                assert point["timestamp"].endswith("Z") and isinstance(point["value"], (int, float))
            snapshot = await until(ws, "Snapshot")
            assert set(snapshot) == {"type", "timestamp", "requests_total", "active_connections"}
            # The stream itself is not a /ws connection; one /ws client moves the number.
            async with connect(hub.ws_url) as client:
                await until(client, "connection.established")
                while (await until(ws, "Snapshot"))["active_connections"] < 2:
                    pass

    asyncio.run(run())


def test_invalid_subscriptions_get_an_error_and_the_stream_goes_on(hub):
    async def run():
        async with connect(metrics_url(hub)) as ws:
            await until(ws, "Snapshot")
            await ws.send(json.dumps({"metrics": ["success_rate"]}))
            narrowed = await until(ws, "Snapshot")
            assert set(narrowed) == {"type", "timestamp", "success_rate"}
            for bad, expected in [
                ("not json", "Invalid subscription"),
                (json.dumps({"interval_seconds": 2}), "missing field `metrics`"),
                (json.dumps({"metrics": [], "interval_seconds": 0}), "interval_seconds"),
                (json.dumps({"metrics": [], "interval_seconds": 61}), "interval_seconds"),
            ]:
                await ws.send(bad)
                error = await until(ws, "Error")
                assert expected in error["message"], (bad, error)
                unchanged = await until(ws, "Snapshot")
                assert set(unchanged) == {"type", "timestamp", "success_rate"}, "the stream goes on unchanged"
            await ws.send(json.dumps({"metrics": ["bogus_metric", "requests_error"]}))
            error = await until(ws, "Error")
            assert "bogus_metric" in error["message"]
            applied = await until(ws, "Snapshot")
            assert set(applied) == {"type", "timestamp", "requests_error"}

    asyncio.run(run())


def test_heartbeats_follow_the_configured_interval():
    hub = Hub("metrics:\n  heartbeat_interval: 1s\n")
    try:

        async def run():
            async with connect(metrics_url(hub)) as ws:
                beat = await until(ws, "Heartbeat")
                assert beat["timestamp"].endswith("Z")

        asyncio.run(run())
    finally:
        hub.stop()

