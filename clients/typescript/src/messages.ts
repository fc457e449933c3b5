/**
 * Typed views of what the hub sends, and builders for what the client sends (CONTRACT §2–§4).
 *
 * {@link parseMessage} turns one text frame into an `established`, `event`, `reply` or `error`
 * message; the `build*` functions produce request objects. No I/O here, so the golden fixtures
 * in tests/fixtures/protocol check both directions.
 */

import { decodeFrame, type BinaryFrame } from "./binary.js";
import { errorFromPayload, type RequestId, type WshubError } from "./errors.js";

/** Reply and notice types the hub sends; anything else carrying an offset is an event. */
export const CONTROL_TYPES = new Set([
  "connection.established",
  "subscribed",
  "unsubscribed",
  "published",
  "pong",
  "authenticated",
  "history",
  "presence",
  "reconnection_token",
  "error",
]);

/** Where the client's connection stands. */
export type Status = "connecting" | "open" | "reconnecting" | "closed";

/** A published event delivered on a subscribed topic. */
export interface WshubEvent {
  readonly kind: "event";
  readonly type: string;
  readonly topic: string;
  readonly payload: unknown;
  readonly offset: number;
  readonly epoch: string;
  readonly timestamp: number;
  readonly senderId: string;
  readonly id: string;
}

/** A binary (§12) event: `body` is the raw bytes, `metadata` the frame's JSON metadata. */
export interface BinaryEvent {
  readonly kind: "binary";
  readonly type: "binary";
  readonly frameKind: number;
  readonly frameKindName: string;
  readonly metadata: Record<string, unknown>;
  /** The metadata, so code that reads `event.payload` works for both kinds. */
  readonly payload: Record<string, unknown>;
  readonly body: Uint8Array;
  readonly topic: string;
  readonly offset: number | null;
  readonly epoch: string | null;
  readonly timestamp: number | null;
  readonly senderId: string | null;
  readonly id: string | null;
}

/**
 * The hub could not replay what this client missed on `topic`: refetch its state.
 * The live stream continues after `epoch`/`offset`; `previousEpoch`/`previousOffset` is the
 * last position the client had. `reason`: `"not_recovered"` (history no longer holds the
 * missed events, or the stream was reset, e.g. by a hub restart), `"gap"` (events lost in
 * transit could not be read back) or `"epoch_changed"` (the stream was reset while connected).
 */
export interface ResyncRequired {
  readonly kind: "resync_required";
  readonly type: "resync_required";
  readonly topic: string;
  readonly epoch: string;
  readonly offset: number;
  readonly previousEpoch: string | null;
  readonly previousOffset: number | null;
  readonly reason: "not_recovered" | "gap" | "epoch_changed";
}

/** A topic's stream position: `subscribed` entries and restored subscriptions. */
export interface Position {
  readonly topic: string;
  readonly epoch: string;
  readonly offset: number;
  readonly recovered: boolean;
}

/** The `connection.established` payload. */
export interface Established {
  readonly kind: "established";
  readonly connectionId: string;
  readonly clientId: string | null;
  readonly user: string | null;
  readonly role: string | null;
  readonly roles: string[];
  readonly resumed: boolean;
  readonly resumeError: string | null;
  readonly subscriptions: Position[];
  readonly permissions: Array<{ match: string; subscribe: boolean; publish: boolean }>;
  readonly pingPeriod: number;
  readonly pongWait: number;
  readonly serverVersion: string;
  readonly serverNode: string;
  readonly timestamp: number;
}

/** A success reply (or an `unsubscribed` notice, whose `id` is `null`). */
export interface Reply<P = Record<string, unknown>> {
  readonly kind: "reply";
  readonly type: string;
  readonly id: RequestId | null;
  readonly payload: P;
  readonly timestamp: number;
}

/** An `error` reply or notice, with its typed error. */
export interface ErrorMessage {
  readonly kind: "error";
  readonly id: RequestId | null;
  readonly error: WshubError;
  readonly timestamp: number;
}

export type Message = Established | WshubEvent | Reply | ErrorMessage;

/** A `subscribed` reply: topics subscribed and, per refused topic, its error. */
export interface SubscribeResult {
  subscribed: Position[];
  denied: Map<string, WshubError>;
}

/** A `history` reply: the topic's current epoch and latest offset, and its events. */
export interface HistoryPage {
  epoch: string;
  offset: number;
  messages: Array<WshubEvent | BinaryEvent>;
}

/** A `published` reply. */
export interface Published {
  offset: number;
  epoch: string;
}

/** `{"count", "clients"}` of a `presence` reply. */
export interface Presence {
  count: number;
  clients: Array<{ connection_id: string; user: string | null; client_id: string | null }>;
  truncated?: boolean;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown, d = ""): string => (typeof v === "string" ? v : d);
const num = (v: unknown, d = 0): number => (typeof v === "number" ? v : d);
const strOrNull = (v: unknown): string | null => (typeof v === "string" ? v : null);

export function eventFromObject(m: Obj): WshubEvent {
  return {
    kind: "event",
    type: str(m["type"]),
    topic: str(m["topic"]),
    payload: m["payload"] ?? {},
    offset: num(m["offset"]),
    epoch: str(m["epoch"]),
    timestamp: num(m["timestamp"]),
    senderId: str(m["sender_id"]),
    id: str(m["id"]),
  };
}

export function binaryEvent(frame: BinaryFrame): BinaryEvent {
  const m = frame.metadata;
  return {
    kind: "binary",
    type: "binary",
    frameKind: frame.kind,
    frameKindName: frame.kindName,
    metadata: m,
    payload: m,
    body: frame.body,
    topic: str(m["topic"]),
    offset: typeof m["offset"] === "number" ? m["offset"] : null,
    epoch: strOrNull(m["epoch"]),
    timestamp: typeof m["timestamp"] === "number" ? m["timestamp"] : null,
    senderId: strOrNull(m["sender_id"]),
    id: strOrNull(m["id"]),
  };
}

export function positionFromObject(e: unknown): Position {
  const o = obj(e);
  return { topic: str(o["topic"]), epoch: str(o["epoch"]), offset: num(o["offset"]), recovered: o["recovered"] === true };
}

function establishedFromObject(m: Obj): Established {
  const p = obj(m["payload"]);
  const role = strOrNull(p["role"]);
  const roles = Array.isArray(p["roles"]) ? (p["roles"] as string[]) : role ? [role] : [];
  const heartbeat = obj(p["heartbeat"]);
  const server = obj(p["server"]);
  return {
    kind: "established",
    connectionId: str(p["connection_id"]),
    clientId: strOrNull(p["client_id"]),
    user: strOrNull(p["user"]),
    role,
    roles,
    resumed: p["resumed"] === true,
    resumeError: strOrNull(p["resume_error"]),
    subscriptions: Array.isArray(p["subscriptions"]) ? p["subscriptions"].map(positionFromObject) : [],
    permissions: Array.isArray(p["permissions"]) ? (p["permissions"] as Established["permissions"]) : [],
    pingPeriod: num(heartbeat["ping_period"], 54),
    pongWait: num(heartbeat["pong_wait"], 60),
    serverVersion: str(server["version"]),
    serverNode: str(server["node"]),
    timestamp: num(m["timestamp"]),
  };
}

const requestId = (v: unknown): RequestId | null => (typeof v === "string" || typeof v === "number" ? v : null);

/** Parses one JSON text frame from the hub; throws if it is not a JSON object. */
export function parseMessage(text: string): Message {
  const m: unknown = JSON.parse(text);
  if (!m || typeof m !== "object" || Array.isArray(m)) throw new Error("server message is not a JSON object");
  return parseObject(m as Obj);
}

export function parseObject(m: Obj): Message {
  const type = str(m["type"]);
  if (type === "connection.established") return establishedFromObject(m);
  if (type === "error") {
    const id = requestId(m["id"]);
    return { kind: "error", id, error: errorFromPayload(m["payload"], id), timestamp: num(m["timestamp"]) };
  }
  if (!CONTROL_TYPES.has(type) && "offset" in m && "topic" in m) return eventFromObject(m);
  return { kind: "reply", type, id: requestId(m["id"]), payload: obj(m["payload"]), timestamp: num(m["timestamp"]) };
}

export function subscribeResult(payload: Obj, id: RequestId | null = null): SubscribeResult {
  const denied = new Map<string, WshubError>();
  for (const d of Array.isArray(payload["denied"]) ? payload["denied"] : []) {
    const entry = obj(d);
    denied.set(str(entry["topic"]), errorFromPayload({ code: entry["code"], message: `subscribe refused: ${str(entry["topic"])}` }, id));
  }
  const subscribed = Array.isArray(payload["subscribed"]) ? payload["subscribed"].map(positionFromObject) : [];
  return { subscribed, denied };
}

function base64ToBytes(b64: string): Uint8Array {
  const binary = atob(b64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export function historyPage(payload: Obj): HistoryPage {
  const messages = (Array.isArray(payload["messages"]) ? payload["messages"] : []).map((raw) => {
    const m = obj(raw);
    if (m["type"] === "binary" && typeof m["frame_b64"] === "string") return binaryEvent(decodeFrame(base64ToBytes(m["frame_b64"])));
    return eventFromObject(m);
  });
  return { epoch: str(payload["epoch"]), offset: num(payload["offset"]), messages };
}

/** A request envelope; fields left `undefined` are omitted. */
export interface Request {
  id?: RequestId;
  type: string;
  topic?: string;
  event?: string;
  payload?: Obj;
}

export function buildRequest(type: string, id?: RequestId, fields: { topic?: string; event?: string; payload?: Obj } = {}): Request {
  const message: Request = id === undefined ? { type } : { id, type };
  if (fields.topic !== undefined) message.topic = fields.topic;
  if (fields.event !== undefined) message.event = fields.event;
  if (fields.payload !== undefined) message.payload = fields.payload;
  return message;
}

export const build = {
  subscribe: (id: RequestId, topic: string, recover?: { epoch: string; offset: number }) =>
    buildRequest("subscribe", id, { topic, payload: recover ? { recover: { epoch: recover.epoch, offset: recover.offset } } : undefined }),
  unsubscribe: (id: RequestId, topic: string) => buildRequest("unsubscribe", id, { topic }),
  publish: (id: RequestId, topic: string, event: string, payload: Obj = {}) => buildRequest("publish", id, { topic, event, payload }),
  ping: (id?: RequestId) => buildRequest("ping", id),
  auth: (id: RequestId, token: string) => buildRequest("auth", id, { payload: { token } }),
  history: (id: RequestId, topic: string, since?: number, limit?: number) => {
    const payload: Obj = {};
    if (since !== undefined) payload["since"] = since;
    if (limit !== undefined) payload["limit"] = limit;
    return buildRequest("history", id, { topic, payload: Object.keys(payload).length ? payload : undefined });
  },
  presence: (id: RequestId, topic: string) => buildRequest("presence", id, { topic }),
  getReconnectionToken: (id: RequestId) => buildRequest("get_reconnection_token", id),
};
