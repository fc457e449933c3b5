/** The TypeScript client against the real wshub binary: requests, events and typed errors. */

import { afterEach, describe, expect, it } from "vitest";
import {
  Client,
  Forbidden,
  InvalidMessage,
  RateLimited,
  TokenExpired,
  Unauthorized,
  Unavailable,
  UnknownChannel,
  UnknownType,
  type Status,
  type StreamEvent,
  type WshubError,
} from "../src/index.js";
import { Changes, Hub, token } from "./hub.js";

export const TOPICS = `
topics:
  - { match: "room/*", subscribe: [admin, developer, viewer, anonymous], publish: [admin, developer], presence: true }
  - { match: signals, subscribe: [admin, developer, bot], publish: [admin] }
  - { match: metrics, subscribe: [admin, developer, viewer, bot, anonymous], publish: [admin] }
  - { match: "feed*", subscribe: [admin, developer, viewer, anonymous], publish: [admin, developer] }
`;

const hubs: Hub[] = [];
const clients: Client[] = [];
async function hub(config = "", extra: { auth?: string; jwt?: string } = {}): Promise<Hub> {
  const h = await Hub.start(config, extra);
  hubs.push(h);
  return h;
}
function client(url: string, options: ConstructorParameters<typeof Client>[1] = {}): Client {
  const c = new Client(url, options);
  clients.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(hubs.splice(0).map((h) => h.stop()));
});

describe("events", () => {
  it("subscribe delivers typed events to the handler, on(type) and the iterator", async () => {
    const h = await hub();
    const c = client(h.wsUrl, { clientId: "ts-client" });
    const established = await c.connect();
    expect(c.status).toBe("open");
    expect(established.clientId).toBe("ts-client");
    const got: StreamEvent[] = [];
    const byType: StreamEvent[] = [];
    const changes = new Changes();
    const subscription = c.subscribe("metrics", (e) => {
      got.push(e);
      changes.poke();
    });
    c.on("cpu", (e) => byType.push(e));
    const iterator = c.events();
    const first = iterator.next();
    expect(await subscription.ready).toEqual({ topic: "metrics", epoch: expect.any(String), offset: 0, recovered: false });
    const published = await h.publish("metrics", "cpu", { load: 0.5 });
    await changes.until(() => got.length === 1, "the event");
    const event = got[0]!;
    expect(event).toMatchObject({ kind: "event", type: "cpu", topic: "metrics", payload: { load: 0.5 }, offset: 1, epoch: published.epoch, senderId: "server" });
    expect(event.id).toMatch(/^evt_/);
    expect(byType).toEqual([event]);
    expect((await first).value).toEqual(event);
    await c.close();
    expect(c.status).toBe("closed");
    expect((await iterator.next()).done).toBe(true);
  });

  it("a permitted client's publish reaches another client", async () => {
    const h = await hub();
    const publisher = client(h.wsUrl, { token: token("ana", "developer") });
    const reader = client(h.wsUrl);
    await Promise.all([publisher.connect(), reader.connect()]);
    const got: StreamEvent[] = [];
    const changes = new Changes();
    await reader.subscribe("news", (e) => {
      got.push(e);
      changes.poke();
    }).ready;
    const published = await publisher.publish("news", "headline", { title: "hi" });
    expect(published.offset).toBe(1);
    await changes.until(() => got.length === 1, "the event");
    expect(got[0]).toMatchObject({ type: "headline", payload: { title: "hi" }, senderId: "ana", epoch: published.epoch });
  });
});

describe("requests", () => {
  it("matches replies to requests by id", async () => {
    const h = await hub(TOPICS);
    const c = client(h.wsUrl, { token: token("u1", "developer"), clientId: "me" });
    await c.connect();
    await c.subscribe("room/1").ready;
    for (let n = 0; n < 3; n++) await c.publish("room/1", "chat", { n });
    const [pong, history, presence, error] = await Promise.allSettled([
      c.request("ping"),
      c.history("room/1", { since: 1 }),
      c.presence("room/1"),
      c.request("token.create", { type: "demo" }),
    ]);
    expect(pong).toMatchObject({ status: "fulfilled", value: { type: "pong" } });
    if (history.status !== "fulfilled" || presence.status !== "fulfilled" || error.status !== "rejected") throw new Error("unexpected outcome");
    expect(history.value.messages.map((m) => (m.payload as { n: number }).n)).toEqual([1, 2]);
    expect(history.value.offset).toBe(3);
    expect(presence.value.count).toBe(1);
    expect(presence.value.clients[0]!.client_id).toBe("me");
    expect(error.reason).toBeInstanceOf(UnknownType);
    expect((error.reason as WshubError).message).toContain("token.create");
  });

  it("raises a typed error for each refusal", async () => {
    const h = await hub(`${TOPICS}rate_limits:\n  default: { capacity: 3, refill_per_sec: 1 }\n`);
    const anonymous = client(h.wsUrl);
    await anonymous.connect();
    await expect(anonymous.publish("metrics", "x", {})).rejects.toBeInstanceOf(Forbidden);
    await expect(anonymous.subscribe("signals").ready).rejects.toBeInstanceOf(Forbidden);
    await expect(anonymous.subscribe("nowhere").ready).rejects.toBeInstanceOf(UnknownChannel);
    await expect(anonymous.presence("feed")).rejects.toBeInstanceOf(Unavailable);
    const dev = client(h.wsUrl, { token: token("dev", "developer") });
    await dev.connect();
    await expect(dev.publish("feed", "error", {})).rejects.toBeInstanceOf(InvalidMessage);
    let limited: unknown = null;
    for (let n = 0; n < 10 && !limited; n++) await dev.publish("feed", "tick", { n }).catch((e) => (limited = e));
    expect(limited).toBeInstanceOf(RateLimited);
    expect((limited as RateLimited).retryAfter).toBeGreaterThan(0);
    expect((limited as RateLimited).retryAfter).toBeLessThanOrEqual(1);
    await expect(client(h.wsUrl, { token: "not-a-jwt", reconnect: false }).connect()).rejects.toBeInstanceOf(Unauthorized);
  });

  it("unsubscribing the last handler leaves no subscription on the hub", async () => {
    const h = await hub();
    const c = client(h.wsUrl);
    await c.connect();
    const first = c.subscribe("room/9", () => {});
    const second = c.subscribe("room/9", () => {});
    await first.ready;
    expect(await h.subscribers("room/9")).toBe(1);
    first.unsubscribe();
    await c.ping();
    expect(await h.subscribers("room/9")).toBe(1);
    second.unsubscribe();
    await c.ping(); // requests run in order: the unsubscribe is done
    expect(await h.subscribers("room/9")).toBe(0);
  });
});

describe("tokens", () => {
  it("token_expired calls getToken, then auth keeps the connection", async () => {
    const h = await hub(TOPICS, { jwt: "    leeway: 0s\n", auth: "  refresh_grace: 1s\n" });
    const changes = new Changes();
    let calls = 0;
    const c = client(h.wsUrl, {
      token: token("tim", "developer", 1.5),
      getToken: async () => {
        calls += 1;
        changes.poke();
        return token("tim", "developer");
      },
    });
    await c.connect();
    const connection = c.connectionId;
    await changes.until(() => calls === 1, "getToken after token_expired");
    let published = false;
    for (let i = 0; i < 50 && !published; i++) {
      // The auth request follows getToken; publish works once it is done.
      published = await c.publish("feed", "after-refresh", {}).then(
        () => true,
        (e) => {
          if (!(e instanceof TokenExpired)) throw e;
          return false;
        },
      );
    }
    expect(published).toBe(true);
    // Past the refresh grace (1 s) the connection is still the same one.
    const statuses: Status[] = [];
    c.onStatus((s) => statuses.push(s));
    await expect(changes.until(() => statuses.length > 0, "a status change", 1500)).rejects.toThrow(/timed out/);
    expect(c.connectionId).toBe(connection);
    expect(c.status).toBe("open");
  });

  it("token_expired without getToken is a typed notice, then 4002 closes for good", async () => {
    const h = await hub(TOPICS, { jwt: "    leeway: 0s\n", auth: "  refresh_grace: 1s\n" });
    const c = client(h.wsUrl, { token: token("tim", "developer", 1) });
    const errors: WshubError[] = [];
    const changes = new Changes();
    c.onError((e) => {
      errors.push(e);
      changes.poke();
    });
    await c.connect();
    await changes.until(() => errors.length === 1, "token_expired notice");
    expect(errors[0]).toBeInstanceOf(TokenExpired);
    await expect(c.publish("feed", "x", {})).rejects.toBeInstanceOf(TokenExpired);
    await expect(c.waitClosed()).rejects.toBeInstanceOf(Unauthorized);
    expect(c.closeCode).toBe(4002);
    expect(c.status).toBe("closed");
  });
});
