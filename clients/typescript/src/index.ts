/**
 * `@wshub/client`: a client for the wshub real-time WebSocket hub, for browsers and Node ≥ 20.
 *
 * ```ts
 * import { Client } from "@wshub/client";
 * const client = new Client("ws://127.0.0.1:8000/ws");
 * await client.connect();
 * client.subscribe("metrics", (event) => console.log(event.payload));
 * ```
 */

export { Client, Subscription, STOP_CODES, AUTH_CODES } from "./client.js";
export type { ClientOptions, Handler, TokenSource, WebSocketConstructor, WebSocketLike } from "./client.js";
export { ReconnectPolicy } from "./backoff.js";
export type { ReconnectOptions } from "./backoff.js";
export { decodeFrame, encodeFrame, KIND_NAMES } from "./binary.js";
export type { BinaryFrame } from "./binary.js";
export * from "./errors.js";
export { parseMessage, historyPage, subscribeResult, build, buildRequest } from "./messages.js";
export type {
  BinaryEvent,
  ErrorMessage,
  Established,
  HistoryPage,
  Message,
  Position,
  Presence,
  Published,
  Reply,
  Request,
  ResyncRequired,
  Status,
  SubscribeResult,
  WshubEvent,
} from "./messages.js";
export { Streams } from "./streams.js";
export type { Gap, Item, StreamEvent } from "./streams.js";
export const VERSION = "0.1.0";
