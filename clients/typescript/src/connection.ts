/**
 * Opening one WebSocket connection to the hub, up to its `connection.established`; and what a
 * close code means for the client: stop, ask for a new token, or reconnect.
 */

import { ClientClosed, ConnectFailed, Unauthorized, type WshubError } from "./errors.js";
import { parseMessage, type Established, type Message } from "./messages.js";

/** The WebSocket API this client needs (the browser's, Node's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` package only: drop the TCP connection at once. */
  terminate?: () => void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Close codes after which the client does not reconnect (see README, "Staying connected"). */
export const STOP_CODES: Record<number, string> = { 1000: "closed by the server", 1008: "policy violation" };
/** Close codes meaning "bad or expired token": reconnect only with a new token from getToken. */
export const AUTH_CODES = new Set([4001, 4002]);
/** HTTP statuses of a refused handshake that retrying will not fix. */
export const FATAL_STATUSES = new Set([400, 401, 403, 404, 405]);

/** The given implementation, else the global WebSocket (browsers, Node ≥ 22), else the `ws` package. */
export async function resolveWebSocket(impl?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (impl) return impl;
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  const mod = (await import("ws")) as unknown as { WebSocket?: WebSocketConstructor; default?: WebSocketConstructor };
  return (mod.WebSocket ?? mod.default)!;
}

/** `url` with `client_id`, `token` and `reconnection_token` set (browsers cannot send headers). */
export function connectionUrl(url: string, clientId: string | null, token: string | null, reconnectionToken: string | null): string {
  const u = new URL(url);
  for (const key of ["client_id", "reconnection_token", "token"]) u.searchParams.delete(key);
  if (clientId !== null) u.searchParams.set("client_id", clientId);
  if (token) u.searchParams.set("token", token);
  if (reconnectionToken) u.searchParams.set("reconnection_token", reconnectionToken);
  return u.toString();
}

/**
 * One connection attempt. `adopt` is called synchronously with the `connection.established`
 * message, before any later frame can arrive, and must take the socket's handlers over; its
 * result resolves the promise. Rejects with {@link ConnectFailed}, the hub's typed error (a
 * refused token: {@link Unauthorized}) or {@link ClientClosed}.
 */
export function openConnection<T>(
  WS: WebSocketConstructor,
  url: string,
  timeout: number,
  adopt: (ws: WebSocketLike, established: Established) => T,
): Promise<T> {
  const where = url.split("?")[0];
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let refusal: WshubError | null = null;
    let failure = "";
    let ws: WebSocketLike;
    try {
      ws = new WS(url);
    } catch (error) {
      reject(new ConnectFailed(`cannot connect to ${where}: ${(error as Error).message}`));
      return;
    }
    ws.binaryType = "arraybuffer";
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch {
        // Not open yet.
      }
      reject(error);
    };
    const timer = setTimeout(() => fail(new ConnectFailed("no connection.established within the connect timeout")), timeout);
    ws.onerror = (ev: { message?: string; error?: Error }) => {
      failure = ev?.message ?? ev?.error?.message ?? failure;
    };
    ws.onmessage = (ev) => {
      if (settled || typeof ev.data !== "string") return;
      let message: Message;
      try {
        message = parseMessage(ev.data);
      } catch (error) {
        return fail(new ConnectFailed(`the hub sent an unreadable first message: ${(error as Error).message}`));
      }
      if (message.kind === "error") {
        refusal = message.error; // a refused token: the close (4001) follows
        return;
      }
      if (message.kind !== "established") return fail(new ConnectFailed(`expected connection.established, got ${ev.data}`));
      settled = true;
      clearTimeout(timer);
      resolve(adopt(ws, message));
    };
    ws.onclose = (ev) => {
      if (refusal) return fail(refusal);
      if (ev.code === 1006 || ev.code === 1005) {
        // Node's `ws` names the HTTP status of a refused upgrade; browsers hide it.
        const status = /(\d{3})/.exec(failure)?.[1];
        return fail(new ConnectFailed(`cannot connect to ${where}${failure ? `: ${failure}` : ""}`, status ? Number(status) : null));
      }
      fail(closedError(ev.code, ev.reason));
    };
  });
}

export function closedError(code: number, reason: string): Error {
  if (AUTH_CODES.has(code)) return new Unauthorized(`connection closed with ${code}: ${reason}`, "unauthorized");
  return new ClientClosed(`connection closed with ${code}: ${reason}`, code, reason);
}
