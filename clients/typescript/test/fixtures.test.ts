/** The golden protocol fixtures (tests/fixtures/protocol), parsed and built by the TypeScript client. */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as wshub from "../src/index.js";
import { build, buildRequest, historyPage, parseMessage, subscribeResult } from "../src/messages.js";
import { FIXTURES, ROOT } from "./hub.js";

const cases = JSON.parse(readFileSync(join(FIXTURES, "cases.json"), "utf8"));
const read = (file: string) => readFileSync(join(FIXTURES, file), "utf8");

describe("server messages", () => {
  it.each(cases.server as any[])("$file", (c) => {
    const message = parseMessage(read(c.file));
    const expected = c.expect;
    if (c.kind === "established") {
      expect(message.kind).toBe("established");
      if (message.kind !== "established") return;
      expect({
        connection_id: message.connectionId,
        client_id: message.clientId,
        user: message.user,
        role: message.role,
        roles: message.roles,
        resumed: message.resumed,
        resume_error: message.resumeError,
        subscriptions: message.subscriptions,
        ping_period: message.pingPeriod,
        pong_wait: message.pongWait,
        server_version: message.serverVersion,
      }).toEqual(expected);
    } else if (c.kind === "event") {
      expect(message.kind).toBe("event");
      if (message.kind !== "event") return;
      const { senderId, ...rest } = message;
      expect({ ...rest, sender_id: senderId }).toEqual({ kind: "event", ...expected });
    } else if (c.kind === "error") {
      expect(message.kind).toBe("error");
      if (message.kind !== "error") return;
      expect(message.id).toEqual(expected.id);
      expect(message.error.requestId).toEqual(expected.id);
      expect(message.error.constructor.name).toBe(expected.error_class);
      expect(message.error).toBeInstanceOf(wshub.WshubError);
      expect(message.error.code).toBe(expected.code);
      expect(message.error.message).toBe(expected.message);
      if (expected.retry_after !== null) {
        expect(message.error).toBeInstanceOf(wshub.RateLimited);
        expect((message.error as wshub.RateLimited).retryAfter).toBe(expected.retry_after);
      }
    } else {
      expect(message.kind).toBe("reply");
      if (message.kind !== "reply") return;
      expect([message.id, message.type, message.timestamp]).toEqual([expected.id, expected.type, expected.timestamp]);
      if ("payload" in expected) expect(message.payload).toEqual(expected.payload);
      if (message.type === "subscribed") {
        const result = subscribeResult(message.payload, message.id);
        expect(result.subscribed).toEqual(expected.subscribed);
        expect([...result.denied].map(([topic, e]) => ({ topic, code: e.code, error_class: e.constructor.name }))).toEqual(expected.denied);
      }
      if (message.type === "history") {
        const page = historyPage(message.payload);
        expect([page.epoch, page.offset]).toEqual([expected.history_epoch, expected.history_offset]);
        expect(page.messages.map(({ kind: _k, senderId, ...m }) => ({ ...m, sender_id: senderId }))).toEqual(expected.messages);
      }
    }
  });
});

const builders: Record<string, (id: string, a: any) => unknown> = {
  subscribe: (id, a) => build.subscribe(id, a.topic, a.recover),
  unsubscribe: (id, a) => build.unsubscribe(id, a.topic),
  publish: (id, a) => build.publish(id, a.topic, a.event, a.payload),
  ping: (id) => build.ping(id),
  auth: (id, a) => build.auth(id, a.token),
  history: (id, a) => build.history(id, a.topic, a.since, a.limit),
  presence: (id, a) => build.presence(id, a.topic),
  get_reconnection_token: (id) => build.getReconnectionToken(id),
  request: (id, a) => buildRequest(a.type, id, { payload: a.payload }),
};

describe("client requests", () => {
  it.each(cases.client as any[])("$file", (c) => {
    expect(builders[c.call]!(c.id, c.args)).toEqual(JSON.parse(read(c.file)));
  });
});

describe("binary frames", () => {
  it.each(cases.binary as any[])("$file", (c) => {
    const data = readFileSync(join(FIXTURES, c.file));
    const expected = JSON.parse(read(c.decoded));
    if ("error" in expected) {
      expect(() => wshub.decodeFrame(data)).toThrow(wshub.BinaryFrameError);
      return;
    }
    const frame = wshub.decodeFrame(data);
    expect({
      version: frame.version,
      kind: frame.kind,
      kind_name: frame.kindName,
      metadata: frame.metadata,
      body_base64: Buffer.from(frame.body).toString("base64"),
    }).toEqual(expected);
    expect(Buffer.from(wshub.encodeFrame(frame.kindName, frame.metadata, frame.body))).toEqual(data);
  });
});

it("versions match the server's", () => {
  const cargo = readFileSync(join(ROOT, "Cargo.toml"), "utf8");
  const version = /\[workspace\.package\][^[]*?version = "([^"]+)"/s.exec(cargo)![1];
  const pkg = JSON.parse(readFileSync(join(ROOT, "clients", "typescript", "package.json"), "utf8"));
  expect(pkg.version).toBe(version);
  expect(wshub.VERSION).toBe(version);
  const pyproject = readFileSync(join(ROOT, "clients", "python", "pyproject.toml"), "utf8");
  expect(/^version = "([^"]+)"/m.exec(pyproject)![1]).toBe(version);
});
