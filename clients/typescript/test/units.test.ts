/** Unit tests of the pure parts: backoff and per-topic stream positions. */

import { expect, it } from "vitest";
import { ReconnectPolicy } from "../src/backoff.js";
import type { WshubEvent } from "../src/messages.js";
import { Streams } from "../src/streams.js";

const ev = (offset: number, epoch = "e1", topic = "t"): WshubEvent => ({
  kind: "event", type: "x", topic, payload: { n: offset }, offset, epoch, timestamp: 0, senderId: "s", id: "",
});
const pos = (offset: number, epoch = "e1", recovered = false) => ({ topic: "t", epoch, offset, recovered });
const offsets = (items: Array<{ offset: number | null }>) => items.map((i) => i.offset);

it("backoff doubles from 1 s to 30 s with full jitter", () => {
  const policy = new ReconnectPolicy();
  expect([0, 1, 2, 3, 4, 5, 6].map((n) => policy.ceiling(n))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  expect(policy.ceiling(10000)).toBe(30000);
  let seed = 7;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const delays = Array.from({ length: 2000 }, () => policy.delay(3, random));
  expect(delays.every((d) => d >= 0 && d <= 8000)).toBe(true);
  expect(Math.min(...delays)).toBeLessThan(500);
  expect(Math.max(...delays)).toBeGreaterThan(7500);
});

it("drops duplicates and keeps order", () => {
  const s = new Streams();
  s.subscribed(pos(0), null);
  const delivered: Array<number | null> = [];
  for (const o of [1, 2, 2, 1, 3]) {
    const [items, gap] = s.accept(ev(o));
    expect(gap).toBeNull();
    delivered.push(...offsets(items as WshubEvent[]));
  }
  expect(delivered).toEqual([1, 2, 3]);
});

it("holds later events until history fills a gap", () => {
  const s = new Streams();
  s.subscribed(pos(0), null);
  s.accept(ev(1));
  const [items, gap] = s.accept(ev(4));
  expect(items).toEqual([]);
  expect([gap!.after, gap!.upto]).toEqual([1, 3]);
  expect(s.accept(ev(5))).toEqual([[], null]);
  const [filled, more] = s.filled(gap!, "e1", [ev(2), ev(3)]);
  expect(more).toBeNull();
  expect(offsets(filled as WshubEvent[])).toEqual([2, 3, 4, 5]);
});

it("signals resync when a gap cannot be filled, then continues", () => {
  const s = new Streams();
  s.subscribed(pos(0), null);
  s.accept(ev(1));
  const [, gap] = s.accept(ev(5));
  const [items] = s.filled(gap!, "e1", []);
  expect(items[0]).toMatchObject({ kind: "resync_required", reason: "gap", previousOffset: 1, offset: 4 });
  expect(offsets(items.slice(1) as WshubEvent[])).toEqual([5]);
});

it("signals resync when recovery is refused and moves to the new epoch", () => {
  const s = new Streams();
  s.subscribed(pos(0), null);
  s.accept(ev(1));
  const signals = s.subscribed(pos(9, "e2"), { epoch: "e1", offset: 1 });
  expect(signals).toEqual([
    { kind: "resync_required", type: "resync_required", topic: "t", epoch: "e2", offset: 9, previousEpoch: "e1", previousOffset: 1, reason: "not_recovered" },
  ]);
  expect(s.accept(ev(9, "e2"))).toEqual([[], null]);
  expect(offsets(s.accept(ev(10, "e2"))[0] as WshubEvent[])).toEqual([10]);
});

it("treats a resumed replay that never arrived as a gap", () => {
  const s = new Streams();
  s.subscribed(pos(0), null);
  s.accept(ev(1));
  expect(s.restored(pos(3, "e1", true))).toEqual([[], 3]);
  const gap = s.replayComplete("t", 3, "e1")!;
  expect([gap.after, gap.upto]).toEqual([1, 3]);
  expect(offsets(s.filled(gap, "e1", [ev(2), ev(3)])[0] as WshubEvent[])).toEqual([2, 3]);
});
