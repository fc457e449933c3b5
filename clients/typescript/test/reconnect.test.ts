/** Staying connected, against the real wshub binary: resume, recovery, resync, close codes. */

import { afterEach, describe, expect, it } from "vitest";
import { Client, ClientClosed, Unauthorized, type ResyncRequired, type Status, type StreamEvent } from "../src/index.js";
import { Changes, Hub, token, until } from "./hub.js";

const FAST = { initialDelay: 50, maxDelay: 500 };

const hubs: Hub[] = [];
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(hubs.splice(0).map((h) => h.stop()));
});
async function hub(config = ""): Promise<Hub> {
  const h = await Hub.start(config);
  hubs.push(h);
  return h;
}

/** Collects one topic's events, resync signals and status changes. */
class Recorder {
  events: StreamEvent[] = [];
  resyncs: ResyncRequired[] = [];
  statuses: Status[] = [];
  opened: boolean[] = [];
  readonly changes = new Changes();
  constructor(readonly client: Client) {
    client.onStatus((s) => {
      this.statuses.push(s);
      if (s === "open") this.opened.push(client.established!.resumed);
      this.changes.poke();
    });
  }
  onEvent = (e: StreamEvent) => {
    this.events.push(e);
    this.changes.poke();
  };
  onResync = (s: ResyncRequired) => {
    this.resyncs.push(s);
    this.changes.poke();
  };
  until(predicate: () => boolean, what: string, timeout = 20000) {
    return this.changes.until(predicate, what, timeout);
  }
}

/** Publishes `{n}` through the HTTP API until stopped, retrying while the hub is down. */
class Publisher {
  accepted: Array<{ n: number; epoch: string; offset: number }> = [];
  private stopped = false;
  private readonly done: Promise<void>;
  constructor(
    private readonly h: Hub,
    private readonly topic: string,
  ) {
    this.done = this.run();
  }
  private async run() {
    let n = 0;
    while (!this.stopped) {
      const answer = await this.h.api("POST", "/api/publish", { topic: this.topic, event: "tick", payload: { n } }).catch(() => null);
      if (answer?.status === 200) {
        this.accepted.push({ n, epoch: answer.body.epoch, offset: answer.body.offset });
        n += 1;
      }
      // Pace the stream so it spans the disruptions.
      await new Promise((r) => setTimeout(r, answer?.status === 200 ? 3 : 20));
    }
  }
  async stop() {
    this.stopped = true;
    await this.done;
  }
}

const socketOf = (c: Client) =>
  (c as unknown as { conn: { ws: { terminate(): void; pause(): void; _socket: { pause(): void } } } }).conn.ws;

describe("resume", () => {
  it("dropped connections lose and repeat nothing", async () => {
    const h = await hub();
    const c = new Client(h.wsUrl, { reconnect: FAST });
    clients.push(c);
    const rec = new Recorder(c);
    await c.connect();
    await c.subscribe("feed", rec.onEvent, { onResync: rec.onResync }).ready;
    const publisher = new Publisher(h, "feed");

    // 1. The hub closes the connection (as for a slow consumer: 4008); the session resumes.
    await rec.until(() => rec.events.length >= 40, "40 events");
    const first = c.connectionId;
    expect((await h.api("POST", "/api/disconnect", { connection_id: first, code: 4008 })).status).toBe(200);
    await rec.until(() => c.status === "open" && c.connectionId !== first, "reconnect 1");
    expect(c.closeCode).toBe(4008);
    expect(c.established!.resumed).toBe(true);
    expect(c.established!.subscriptions.map((s) => s.topic)).toEqual(["feed"]);

    // 2. The TCP connection dies under the client (1006).
    let seen = rec.events.length;
    await rec.until(() => rec.events.length >= seen + 40, "40 more events");
    const second = c.connectionId;
    socketOf(c).terminate();
    await rec.until(() => c.status === "open" && c.connectionId !== second, "reconnect 2");
    expect(c.closeCode).toBe(1006);
    expect(c.established!.resumed).toBe(true);

    seen = rec.events.length;
    await rec.until(() => rec.events.length >= seen + 20, "20 events after the second resume");
    await publisher.stop();
    const last = publisher.accepted.at(-1)!.offset;
    await rec.until(() => rec.events.at(-1)?.offset === last, `event ${last}`);
    expect(rec.events.map((e) => e.offset)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    expect(rec.events.map((e) => (e.payload as { n: number }).n)).toEqual(publisher.accepted.map((a) => a.n));
    expect(rec.resyncs).toEqual([]);
    expect(rec.statuses.filter((s) => s === "reconnecting")).toHaveLength(2);
  });

  it("events lost in transit are read back from history", async () => {
    // Uncompressed, so that the events (300 kB) cannot all sit in the client's own read buffer,
    // which it still hands on when the socket dies: some must be lost with the connection.
    const h = await hub("compression: { enabled: false }\n");
    const c = new Client(h.wsUrl, { reconnect: FAST });
    clients.push(c);
    const rec = new Recorder(c);
    await c.connect();
    await c.subscribe("feed", rec.onEvent).ready;
    await c.ping(); // the reconnection token (asked for at connect) has arrived before this reply
    // The client stops reading: what the hub writes stays in the kernel. (`ws`'s own pause:
    // pausing its socket underneath would be undone by `ws` as soon as its parser drains.)
    socketOf(c).pause();
    const total = 60;
    for (let n = 0; n < total; n++) await h.publish("feed", "chunk", { n, data: "y".repeat(5000) });
    socketOf(c).terminate(); // ... and dies with the TCP connection
    await rec.until(() => rec.events.length === total, "every event");
    expect(rec.events.map((e) => e.offset)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(rec.opened).toEqual([false, true]);
    expect(c.closeCode).toBe(1006);
  });

  it("a slow consumer closed with 4008 resumes without loss", async () => {
    // Uncompressed: permessage-deflate would shrink these blobs of "x" to a few hundred bytes,
    // which never fill the socket.
    const h = await hub("websocket:\n  outbound_queue: 16\nhistory: { size: 400 }\ncompression: { enabled: false }\n");
    const c = new Client(h.wsUrl, { reconnect: FAST });
    clients.push(c);
    const rec = new Recorder(c);
    await c.connect();
    await c.subscribe("bulk", rec.onEvent).ready;
    await c.ping();
    const socket = socketOf(c)._socket;
    socket.pause(); // a frozen tab: nothing is read
    const total = 120;
    const big = "x".repeat(200_000);
    for (let n = 0; n < total; n++) await h.publish("bulk", "blob", { n, data: big });
    await until(async () => (await h.subscribers("bulk")) === 0, "the hub to close the slow consumer");
    (socket as unknown as { resume(): void }).resume();
    await rec.until(() => rec.events.length === total, "every event", 30000);
    expect(rec.events.map((e) => e.offset)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect([4008, 1006]).toContain(c.closeCode);
    expect(rec.opened.slice(0, 2)).toEqual([false, true]);
  });

  it("a restarted hub means no resume, no recovery and one resync signal", async () => {
    const h = await hub();
    const c = new Client(h.wsUrl, { reconnect: FAST });
    clients.push(c);
    const rec = new Recorder(c);
    const refetched: StreamEvent[] = [];
    await c.connect();
    await c.subscribe("feed", rec.onEvent, {
      onResync: async (signal) => {
        // What an application does: refetch the state, here the new stream's history.
        const page = await c.history("feed", { limit: 1000 });
        refetched.push(...page.messages.filter((m) => m.offset! <= signal.offset));
        rec.onResync(signal);
      },
    }).ready;
    const publisher = new Publisher(h, "feed");
    await rec.until(() => rec.events.length >= 30, "30 events");
    await h.restart(); // SIGTERM (graceful), then a new process on the same port
    await rec.until(() => rec.resyncs.length > 0, "resync_required");
    expect(c.established!.resumed).toBe(false);
    expect(c.established!.resumeError).toBe("invalid_reconnection_token");
    const oldEpoch = publisher.accepted[0]!.epoch;
    await rec.until(() => rec.events.filter((e) => e.epoch !== oldEpoch).length >= 30, "30 new-epoch events");
    await publisher.stop();
    const lastOld = Math.max(...publisher.accepted.filter((a) => a.epoch === oldEpoch).map((a) => a.offset));
    const { epoch: newEpoch, offset: lastNew } = publisher.accepted.at(-1)!;
    expect(new Set(publisher.accepted.map((a) => a.epoch))).toEqual(new Set([oldEpoch, newEpoch]));
    await rec.until(() => rec.events.at(-1)?.offset === lastNew && rec.events.at(-1)?.epoch === newEpoch, "the last event");

    expect(rec.resyncs).toHaveLength(1);
    const signal = rec.resyncs[0]!;
    expect(signal).toMatchObject({ topic: "feed", reason: "not_recovered", previousEpoch: oldEpoch, previousOffset: lastOld, epoch: newEpoch });
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const offsetsIn = (epoch: string) => rec.events.filter((e) => e.epoch === epoch).map((e) => e.offset);
    expect(offsetsIn(oldEpoch)).toEqual(range(1, lastOld));
    expect(refetched.map((e) => e.offset)).toEqual(range(1, signal.offset));
    expect(offsetsIn(newEpoch)).toEqual(range(signal.offset + 1, lastNew));
    const all = [...rec.events.filter((e) => e.epoch === oldEpoch), ...refetched, ...rec.events.filter((e) => e.epoch === newEpoch)].map(
      (e) => (e.payload as { n: number }).n,
    );
    expect([...all].sort((a, b) => a - b)).toEqual(publisher.accepted.map((a) => a.n));
    expect(new Set(all).size).toBe(all.length);
  });
});

describe("close codes", () => {
  it.each([1000, 1008])("a server close with %i does not reconnect", async (code) => {
    const h = await hub();
    const c = new Client(h.wsUrl, { reconnect: FAST });
    clients.push(c);
    const statuses: Status[] = [];
    c.onStatus((s) => statuses.push(s));
    await c.connect();
    await h.api("POST", "/api/disconnect", { connection_id: c.connectionId, code });
    const error = await c.waitClosed().then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(ClientClosed);
    expect((error as ClientClosed).code).toBe(code);
    expect(statuses).toEqual(["connecting", "open", "closed"]);
  });

  it("4001 reconnects only with a new token from getToken", async () => {
    const h = await hub();
    const tokens = [token("ida", "developer", 3600), token("ida", "developer", 3601)];
    const handed: string[] = [];
    const c = new Client(h.wsUrl, {
      reconnect: FAST,
      getToken: () => {
        handed.push(tokens[Math.min(handed.length, 1)]!);
        return handed.at(-1);
      },
    });
    clients.push(c);
    const rec = new Recorder(c);
    await c.connect();
    expect(handed).toEqual(tokens.slice(0, 1));
    expect(c.established!.user).toBe("ida");
    const first = c.connectionId;
    await h.api("POST", "/api/disconnect", { connection_id: first, code: 4001 });
    await rec.until(() => c.status === "open" && c.connectionId !== first, "reconnect");
    expect(handed).toEqual(tokens);
    await h.api("POST", "/api/disconnect", { connection_id: c.connectionId, code: 4001 });
    await expect(c.waitClosed()).rejects.toBeInstanceOf(Unauthorized);
    expect(c.status).toBe("closed");
    expect(c.closeCode).toBe(4001);
  });
});

it("the heartbeat drops a silent connection and reconnects", async () => {
  const h = await hub();
  const c = new Client(h.wsUrl, { reconnect: FAST, heartbeatInterval: 200, heartbeatTimeout: 300, connectTimeout: 1000 });
  clients.push(c);
  const rec = new Recorder(c);
  await c.connect();
  await c.subscribe("feed", rec.onEvent).ready;
  const first = c.connectionId;
  const pid = (h as unknown as { proc: { pid: number } }).proc.pid;
  process.kill(pid, "SIGSTOP"); // the hub stops answering; the TCP connection stays up
  try {
    await rec.until(() => c.status === "reconnecting", "the dead connection noticed", 5000);
    expect(c.closeCode).toBe(1006);
  } finally {
    process.kill(pid, "SIGCONT");
  }
  await rec.until(() => c.status === "open", "reconnected");
  expect(c.connectionId).not.toBe(first);
  expect(c.established!.resumed).toBe(true);
  await h.publish("feed", "after", {});
  await rec.until(() => rec.events.length > 0, "an event after reconnecting");
});
