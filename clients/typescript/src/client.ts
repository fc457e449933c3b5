/**
 * The client: one logical session kept alive across WebSocket connections.
 *
 * A {@link Client} opens a connection to `/ws`, subscribes, publishes and sends requests (each
 * reply matched to its request by `id`). When the connection drops it reconnects with
 * exponential backoff and full jitter, presenting the reconnection token it fetched ahead of
 * time so the hub resumes the session; when that is impossible it subscribes again with
 * `recover` from the last offsets it saw; and when even that fails it tells the application
 * ({@link ResyncRequired}). Events are deduplicated by (topic, epoch, offset), so none is
 * delivered twice. Works with the browser's WebSocket, Node's global one, or the `ws` package.
 */

import { ReconnectPolicy, type ReconnectOptions } from "./backoff.js";
import { decodeFrame } from "./binary.js";
import {
  BinaryFrameError,
  ClientClosed,
  ConnectFailed,
  ConnectionLost,
  RateLimited,
  RequestTimeout,
  Unauthorized,
  WshubError,
} from "./errors.js";
import {
  binaryEvent,
  build,
  buildRequest,
  historyPage,
  parseMessage,
  subscribeResult,
  type Established,
  type HistoryPage,
  type Message,
  type Presence,
  type Published,
  type Reply,
  type Request,
  type ResyncRequired,
  type Status,
} from "./messages.js";
import { Streams, type Gap, type Item, type StreamEvent } from "./streams.js";
import {
  AUTH_CODES,
  FATAL_STATUSES,
  STOP_CODES,
  connectionUrl,
  openConnection,
  resolveWebSocket,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./connection.js";
import { Delivery, Subscription, newTopic, settle, type Handler, type TopicState } from "./delivery.js";

export { Subscription, type Handler } from "./delivery.js";
export { AUTH_CODES, STOP_CODES, type WebSocketConstructor, type WebSocketLike } from "./connection.js";

export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

export interface ClientOptions {
  /** An access token (JWT), sent as the `token` query parameter. */
  token?: string | null;
  /** Your label for this client, echoed by the hub. */
  clientId?: string | null;
  /**
   * Called for a fresh access token: on the first connect when `token` is not given, when the
   * hub says `token_expired` (the client then sends `auth`), and after a close 4001/4002 (the
   * client reconnects only if it returns a new token).
   */
  getToken?: TokenSource;
  /** Reconnect policy, or `false` not to reconnect. */
  reconnect?: ReconnectOptions | boolean;
  /** Fetch a reconnection token and resume the session on reconnect (default true). */
  resume?: boolean;
  /** Milliseconds between application pings (`{"type":"ping"}`), default 20000. */
  heartbeatInterval?: number;
  /** Milliseconds to hear anything back after a ping before the connection is dropped, default 10000. */
  heartbeatTimeout?: number;
  /** Default timeout of requests in ms, default 10000. */
  requestTimeout?: number;
  /** Milliseconds to get `connection.established`, default 10000. */
  connectTimeout?: number;
  /** The WebSocket implementation; default: the global one, else the `ws` package. */
  WebSocket?: WebSocketConstructor;
}

const HISTORY_PAGE = 1000;
const OPEN = 1;

interface Pending {
  resolve: (m: Message) => void;
  reject: (e: unknown) => void;
  /** Runs when the reply arrives, before any later frame is handled; returns items to deliver. */
  hook?: (m: Message) => Item[];
}

interface Conn {
  ws: WebSocketLike;
  established: Established;
  lastRx: number;
  timers: Set<ReturnType<typeof setTimeout>>;
  ended: boolean;
}

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class Client {
  readonly url: string;
  clientId: string | null;
  readonly reconnectPolicy: ReconnectPolicy;
  /** Close code and reason of the last connection that ended. */
  closeCode: number | null = null;
  closeReason = "";

  private token: string | null;
  private readonly getToken?: TokenSource;
  private readonly resume: boolean;
  private readonly heartbeatInterval: number;
  private readonly heartbeatTimeout: number;
  private readonly requestTimeout: number;
  private readonly connectTimeout: number;
  private readonly WebSocketImpl?: WebSocketConstructor;

  private _status: Status = "closed";
  private conn: Conn | null = null;
  private readonly topics = new Map<string, TopicState>();
  private readonly delivery = new Delivery(this.topics);
  private readonly streams = new Streams();
  private pending = new Map<string, Pending>();
  private nextId = 1;
  private openWaiters: Array<() => void> = [];
  private closing = false;
  private wakeBackoff: (() => void) | null = null;
  private done: Promise<void> | null = null;
  private resolveDone: (() => void) | null = null;
  private rejectDone: ((e: unknown) => void) | null = null;
  private reconnectionToken: string | null = null;
  private reconnectionDeadline = 0;
  private started = false;

  constructor(url: string, options: ClientOptions = {}) {
    this.url = url;
    this.token = options.token ?? null;
    this.clientId = options.clientId ?? null;
    this.getToken = options.getToken;
    const reconnect = options.reconnect ?? true;
    this.reconnectPolicy = new ReconnectPolicy(
      reconnect === true ? {} : reconnect === false ? { enabled: false } : reconnect,
    );
    this.resume = options.resume ?? true;
    this.heartbeatInterval = options.heartbeatInterval ?? 20000;
    this.heartbeatTimeout = options.heartbeatTimeout ?? 10000;
    this.requestTimeout = options.requestTimeout ?? 10000;
    this.connectTimeout = options.connectTimeout ?? 10000;
    this.WebSocketImpl = options.WebSocket;
  }

  // ------------------------------------------------------------------ public API

  get status(): Status {
    return this._status;
  }

  /** The current connection's `connection.established` (`null` when not open). */
  get established(): Established | null {
    return this.conn?.established ?? null;
  }

  get connectionId(): string | null {
    return this.conn?.established.connectionId ?? null;
  }

  /**
   * Opens the first connection; rejects with the typed error when it fails (no retry).
   * After it succeeds, drops are handled by reconnecting.
   */
  async connect(): Promise<Established> {
    if (this.started) throw new Error("connect() was already called");
    this.started = true;
    this.closing = false;
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => {});
    this.setStatus("connecting");
    try {
      const conn = await this.open();
      return conn.established;
    } catch (error) {
      this.finish(error);
      throw error;
    }
  }

  /** Closes the connection (code 1000) and stops reconnecting. Idempotent. */
  async close(): Promise<void> {
    this.closing = true;
    this.wakeBackoff?.();
    const conn = this.conn;
    if (conn && !conn.ended) {
      const closed = new Promise<void>((resolve) => {
        const previous = conn.ws.onclose;
        conn.ws.onclose = (ev) => {
          previous?.(ev);
          resolve();
        };
        setTimeout(resolve, 2000);
      });
      try {
        conn.ws.close(1000, "client closed");
      } catch {
        // A broken socket is gone either way.
      }
      await closed;
    }
    this.finish(null);
  }

  /** Resolves when the client is closed; rejects with the error that closed it for good. */
  waitClosed(): Promise<void> {
    if (!this.done) return Promise.reject(new Error("call connect() first"));
    return this.done;
  }

  /**
   * Registers `handler` for the events of `topic` and subscribes at once (or as soon as
   * connected). `onResync` gets this topic's {@link ResyncRequired}.
   */
  subscribe(topic: string, handler?: Handler<StreamEvent>, options: { onResync?: Handler<ResyncRequired> } = {}): Subscription {
    let state = this.topics.get(topic);
    if (!state) {
      state = newTopic();
      this.topics.set(topic, state);
      const conn = this.conn;
      if (conn && this._status === "open") void this.subscribeTopic(conn, topic).catch(() => {});
    }
    const subscription = new Subscription(topic, handler, options.onResync, state.ready, (s) => this.removeSubscription(s));
    state.subscriptions.push(subscription);
    return subscription;
  }

  /** Removes every handler of `topic` and leaves it. */
  unsubscribe(topic: string): void {
    for (const s of [...(this.topics.get(topic)?.subscriptions ?? [])]) s.unsubscribe();
  }

  /** Calls `handler` for every event of this type on any subscribed topic (`"*"`: all). Returns a remover. */
  on(eventType: string, handler: Handler<StreamEvent>): () => void {
    return this.delivery.on(eventType, handler);
  }

  /** Calls `handler(status)` on every status change. */
  onStatus(handler: Handler<Status>): () => void {
    return this.delivery.onStatus(handler);
  }

  /** Calls `handler(signal)` when a topic's missed events are gone for good. */
  onResync(handler: Handler<ResyncRequired>): () => void {
    return this.delivery.onResync(handler);
  }

  /** Calls `handler(error)` for errors that answer no request of yours. */
  onError(handler: Handler<WshubError>): () => void {
    return this.delivery.onError(handler);
  }

  /** Every event of every subscribed topic (and resync signals with `resync: true`) until the client closes. */
  events(options: { resync?: boolean } = {}): AsyncIterableIterator<StreamEvent | ResyncRequired> {
    return this.delivery.events(options.resync ?? false);
  }

  /**
   * Sends a request and resolves with its reply; rejects with the typed error of an `error`
   * reply, {@link RequestTimeout}, or {@link ConnectionLost} when the connection dropped first
   * (the request may or may not have run). While reconnecting it waits for the connection.
   */
  request(type: string, payload?: Record<string, unknown>, options: { topic?: string; timeout?: number } = {}): Promise<Reply> {
    return this.send((id) => buildRequest(type, id, { topic: options.topic, payload }), options.timeout);
  }

  /** Publishes an event; resolves with its offset and epoch. */
  async publish(topic: string, event = "message", payload: Record<string, unknown> = {}, options: { timeout?: number } = {}): Promise<Published> {
    const reply = await this.send((id) => build.publish(id, topic, event, payload), options.timeout);
    return { offset: Number(reply.payload["offset"]), epoch: String(reply.payload["epoch"]) };
  }

  /** Reads a topic's stored events (`since`: an offset, exclusive). */
  async history(topic: string, options: { since?: number; limit?: number; timeout?: number } = {}): Promise<HistoryPage> {
    const reply = await this.send((id) => build.history(id, topic, options.since, options.limit), options.timeout);
    return historyPage(reply.payload);
  }

  /** Who is subscribed to `topic`. */
  async presence(topic: string, options: { timeout?: number } = {}): Promise<Presence> {
    const reply = await this.send((id) => build.presence(id, topic), options.timeout);
    return reply.payload as unknown as Presence;
  }

  ping(options: { timeout?: number } = {}): Promise<Reply> {
    return this.send((id) => build.ping(id), options.timeout);
  }

  /** Sends `auth` with a (fresh) token; it is also used for later reconnects. */
  authenticate(token: string, options: { timeout?: number } = {}): Promise<Reply> {
    this.token = token;
    return this.send((id) => build.auth(id, token), options.timeout);
  }

  // ------------------------------------------------------------------ connections

  private async accessToken(): Promise<string | null> {
    if (this.token === null && this.getToken) this.token = (await this.getToken()) ?? null;
    return this.token;
  }

  /** One connection attempt, up to `connection.established`; the connection then becomes current. */
  private async open(): Promise<Conn> {
    const token = await this.accessToken();
    const WS = await resolveWebSocket(this.WebSocketImpl);
    const resume = this.resume && this.reconnectionToken && now() < this.reconnectionDeadline ? this.reconnectionToken : null;
    const url = connectionUrl(this.url, this.clientId, token, resume);
    return openConnection(WS, url, this.connectTimeout, (ws, established) => this.adopt(ws, established));
  }

  /** Makes a fresh connection the current one and starts its background work. */
  private adopt(ws: WebSocketLike, established: Established): Conn {
    const conn: Conn = { ws, established, lastRx: now(), timers: new Set(), ended: false };
    this.conn = conn;
    this.reconnectionToken = null; // spent (or refused) by this handshake
    ws.onmessage = (ev) => this.receive(conn, ev.data);
    ws.onclose = (ev) => this.ended(conn, ev.code, ev.reason);
    ws.onerror = null;
    const { items, checks, toSubscribe, toUnsubscribe } = this.restore(established);
    this.setStatus("open");
    const waiters = this.openWaiters;
    this.openWaiters = [];
    for (const wake of waiters) wake();
    for (const item of items) this.delivery.deliver(item);
    void this.afterOpen(conn, established.resumed, checks, toSubscribe, toUnsubscribe);
    this.heartbeat(conn);
    return conn;
  }

  /** Restored topics' positions (resumed), the topics to subscribe again, and those to leave. */
  private restore(established: Established) {
    const items: Item[] = [];
    const checks: Array<{ topic: string; target: number; epoch: string }> = [];
    if (!established.resumed) return { items, checks, toSubscribe: [...this.topics.keys()], toUnsubscribe: [] as string[] };
    const restored = new Map(established.subscriptions.map((p) => [p.topic, p]));
    for (const [topic, state] of this.topics) {
      const entry = restored.get(topic);
      if (!entry) continue;
      const [signals, target] = this.streams.restored(entry);
      items.push(...signals);
      if (target !== null) checks.push({ topic, target, epoch: entry.epoch });
      settle(state, entry);
    }
    const toSubscribe = [...this.topics.keys()].filter((t) => !restored.has(t));
    const toUnsubscribe = [...restored.keys()].filter((t) => !this.topics.has(t));
    return { items, checks, toSubscribe, toUnsubscribe };
  }

  /** A connection ended: clean up, then reconnect or finish. */
  private ended(conn: Conn, code: number, reason: string): void {
    if (conn.ended) return;
    conn.ended = true;
    conn.ws.onmessage = conn.ws.onclose = conn.ws.onerror = null;
    for (const timer of conn.timers) clearTimeout(timer);
    if (this.conn === conn) this.conn = null;
    this.closeCode = code;
    this.closeReason = reason;
    const lost = new ConnectionLost(`connection closed with ${code} before the reply arrived`);
    const pending = this.pending;
    this.pending = new Map();
    for (const p of pending.values()) p.reject(lost);
    this.streams.resetInFlight();
    if (this.closing) return this.finish(null);
    void this.reconnect(code, reason).then(
      (error) => error && this.finish(error),
      (error) => this.finish(error),
    );
  }

  /** Drops a connection that stopped answering (no close handshake is possible). */
  private drop(conn: Conn, why: string): void {
    const ws = conn.ws;
    this.ended(conn, 1006, why);
    try {
      if (ws.terminate) ws.terminate();
      else ws.close(4000, why);
    } catch {
      // Already gone.
    }
  }

  /** After a drop: reconnects; resolves with the error that ends the client, or null once connected. */
  private async reconnect(code: number, reason: string): Promise<unknown> {
    const policy = this.reconnectPolicy;
    if (code in STOP_CODES) return new ClientClosed(`connection closed with ${code} (${STOP_CODES[code]}): ${reason}`, code, reason);
    if (AUTH_CODES.has(code) && !(await this.renewToken())) {
      return new Unauthorized(`connection closed with ${code} (${reason}) and getToken gave no new token`, "unauthorized");
    }
    if (!policy.enabled) return new ClientClosed(`connection closed with ${code}: ${reason}`, code, reason);
    this.setStatus("reconnecting");
    for (let attempt = 0; ; ) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, policy.delay(attempt));
        this.wakeBackoff = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeBackoff = null;
      if (this.closing) return new ClientClosed("closed while reconnecting", 1000);
      try {
        await this.open();
        return null;
      } catch (error) {
        if (error instanceof Unauthorized) {
          if (!(await this.renewToken())) return error;
        } else if (error instanceof ClientClosed && error.code !== null && error.code in STOP_CODES) {
          return error;
        } else if (error instanceof ConnectFailed && error.status !== null && FATAL_STATUSES.has(error.status)) {
          return error;
        }
      }
      attempt += 1;
      if (policy.maxAttempts !== null && attempt >= policy.maxAttempts) {
        return new ClientClosed(`gave up after ${attempt} reconnect attempts`, code, reason);
      }
    }
  }

  /** Asks getToken for a new access token; true if it gave one that differs. */
  private async renewToken(): Promise<boolean> {
    if (!this.getToken) return false;
    let token: string | null | undefined;
    try {
      token = await this.getToken();
    } catch (error) {
      console.error("wshub: getToken failed", error);
      return false;
    }
    if (!token || token === this.token) return false;
    this.token = token;
    return true;
  }

  private finish(error: unknown): void {
    if (this._status === "closed" && !this.conn && this.resolveDone === null) return;
    for (const state of this.topics.values()) settle(state, { error: error ?? new ClientClosed("client closed", 1000) });
    this.delivery.end();
    const waiters = this.openWaiters;
    this.openWaiters = [];
    this.setStatus("closed");
    for (const wake of waiters) wake();
    if (error) this.rejectDone?.(error);
    else this.resolveDone?.();
    this.resolveDone = this.rejectDone = null;
  }

  // ------------------------------------------------------------------ reading

  private receive(conn: Conn, data: unknown): void {
    conn.lastRx = now();
    let items: Item[];
    if (typeof data === "string") {
      items = this.receiveText(conn, data);
    } else {
      try {
        const bytes = data instanceof ArrayBuffer ? data : ArrayBuffer.isView(data) ? data : null;
        if (!bytes) return;
        items = this.accept(conn, binaryEvent(decodeFrame(bytes)));
      } catch (error) {
        if (error instanceof BinaryFrameError) console.warn(`wshub: dropping a malformed binary frame: ${error.message}`);
        return;
      }
    }
    for (const item of items) this.delivery.deliver(item);
  }

  private receiveText(conn: Conn, text: string): Item[] {
    let message: Message;
    try {
      message = parseMessage(text);
    } catch {
      console.warn("wshub: dropping a server frame that is not a JSON object");
      return [];
    }
    if (message.kind === "event") return this.accept(conn, message);
    const id = message.kind === "reply" || message.kind === "error" ? message.id : null;
    const pending = id !== null ? this.pending.get(String(id)) : undefined;
    if (pending) {
      this.pending.delete(String(id));
      const items = pending.hook ? pending.hook(message) : [];
      if (message.kind === "error") pending.reject(message.error);
      else pending.resolve(message);
      return items;
    }
    if (message.kind === "error") {
      if (message.error.code === "token_expired") void this.refreshToken(conn, message.error);
      else this.delivery.report(message.error);
    } else if (message.kind === "reply" && message.type === "unsubscribed") {
      // The hub dropped topics after an auth refresh changed our roles.
      const topics = message.payload["unsubscribed"];
      for (const topic of Array.isArray(topics) ? (topics as string[]) : []) {
        if (this.topics.delete(topic)) {
          this.streams.forget(topic);
          this.delivery.report(new WshubError(`the hub dropped the subscription to ${topic}`, "forbidden"));
        }
      }
    }
    return [];
  }

  private accept(conn: Conn, event: StreamEvent): Item[] {
    if (!this.topics.has(event.topic)) return []; // still in flight when the topic was left
    const [items, gap] = this.streams.accept(event);
    if (gap) this.fill(conn, gap);
    return items;
  }

  /** Reads events a gap lost in transit from history (their successors wait). */
  private fill(conn: Conn, gap: Gap): void {
    const hook = (message: Message): Item[] => {
      const [items, more] =
        message.kind === "reply" && message.type === "history"
          ? (() => {
              const page = historyPage(message.payload);
              return this.streams.filled(gap, page.epoch, page.messages);
            })()
          : this.streams.filled(gap, null, []);
      if (more) this.fill(conn, more);
      return items;
    };
    const limit = Math.min(HISTORY_PAGE, gap.upto - gap.after);
    this.call(conn, (id) => build.history(id, gap.topic, gap.after, limit), { hook }).catch(() => {});
  }

  // ------------------------------------------------------------------ per connection

  private async afterOpen(
    conn: Conn,
    resumed: boolean,
    checks: Array<{ topic: string; target: number; epoch: string }>,
    toSubscribe: string[],
    toUnsubscribe: string[],
  ): Promise<void> {
    try {
      if (resumed) {
        // The hub queues the whole resumption replay before it reads our first request,
        // so when this reply arrives the replay is complete.
        await this.call(conn, (id) => build.ping(id), {
          hook: () => {
            for (const { topic, target, epoch } of checks) {
              const gap = this.streams.replayComplete(topic, target, epoch);
              if (gap) this.fill(conn, gap);
            }
            return [];
          },
        });
      }
      for (const topic of toUnsubscribe) await this.call(conn, (id) => build.unsubscribe(id, topic));
      for (const topic of toSubscribe) if (this.topics.has(topic)) await this.subscribeTopic(conn, topic);
      if (this.resume) await this.keepReconnectionToken(conn);
    } catch {
      // The connection dropped: the next one starts over.
    }
  }

  /** Subscribes one topic on `conn`, recovering from its last position if known. */
  private async subscribeTopic(conn: Conn, topic: string): Promise<void> {
    const recover = this.streams.position(topic);
    const state = this.topics.get(topic);
    const hook = (message: Message): Item[] => {
      if (message.kind !== "reply" || message.type !== "subscribed") return [];
      const items: Item[] = [];
      for (const entry of subscribeResult(message.payload).subscribed) {
        const current = this.topics.get(entry.topic);
        if (!current || current !== state) continue;
        items.push(...this.streams.subscribed(entry, recover));
        settle(current, entry);
      }
      return items;
    };
    let reply: Reply;
    for (;;) {
      try {
        reply = await this.call(conn, (id) => build.subscribe(id, topic, recover ?? undefined), { hook });
        break;
      } catch (error) {
        if (error instanceof RateLimited) {
          await sleep(error.retryAfter * 1000);
          continue;
        }
        if (error instanceof WshubError) return this.refused(topic, state, error);
        throw error;
      }
    }
    const denied = subscribeResult(reply.payload, reply.id).denied.get(topic);
    if (denied) this.refused(topic, state, denied);
    else if (this.topics.get(topic) !== state) await this.call(conn, (id) => build.unsubscribe(id, topic));
  }

  private refused(topic: string, state: TopicState | undefined, error: WshubError): void {
    if (state && this.topics.get(topic) === state) {
      this.topics.delete(topic);
      this.streams.forget(topic);
      if (!state.settled) return settle(state, { error });
    }
    this.delivery.report(error);
  }

  /** Fetches a reconnection token now and again before it expires. */
  private async keepReconnectionToken(conn: Conn): Promise<void> {
    while (this.conn === conn) {
      let reply: Reply;
      try {
        reply = await this.call(conn, (id) => build.getReconnectionToken(id));
      } catch (error) {
        if (error instanceof RateLimited) {
          await sleep(error.retryAfter * 1000);
          continue;
        }
        if (error instanceof WshubError) {
          await sleep(5000);
          continue;
        }
        return;
      }
      const expiresIn = Number(reply.payload["expires_in"] ?? 300);
      this.reconnectionToken = String(reply.payload["token"]);
      this.reconnectionDeadline = now() + expiresIn * 1000;
      // One token covers the connection's whole life; refresh it only for its expiry.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          conn.timers.delete(timer);
          resolve();
        }, Math.max(1000, (expiresIn * 1000) / 2));
        conn.timers.add(timer);
      });
    }
  }

  /** The hub said token_expired: ask getToken, then send `auth`. */
  private async refreshToken(conn: Conn, notice: WshubError): Promise<void> {
    if (!this.getToken) return this.delivery.report(notice);
    let token: string | null | undefined;
    try {
      token = await this.getToken();
    } catch (error) {
      console.error("wshub: getToken failed", error);
      return;
    }
    if (!token) return;
    this.token = token;
    try {
      await this.call(conn, (id) => build.auth(id, token));
    } catch (error) {
      if (error instanceof WshubError) this.delivery.report(error);
    }
  }

  /** Application pings; a connection that stays silent after one is dropped. */
  private heartbeat(conn: Conn): void {
    const tick = () => {
      const timer = setTimeout(() => {
        conn.timers.delete(timer);
        if (conn.ended) return;
        const sent = now();
        try {
          conn.ws.send(JSON.stringify(build.ping()));
        } catch {
          return;
        }
        const check = setTimeout(() => {
          conn.timers.delete(check);
          if (conn.ended) return;
          if (conn.lastRx < sent) this.drop(conn, "heartbeat timeout");
          else tick();
        }, this.heartbeatTimeout);
        conn.timers.add(check);
      }, this.heartbeatInterval);
      conn.timers.add(timer);
    };
    tick();
  }

  // ------------------------------------------------------------------ requests

  private async send(buildMessage: (id: string) => Request, timeout?: number): Promise<Reply> {
    const limit = timeout ?? this.requestTimeout;
    const deadline = now() + limit;
    const conn = await this.waitOpen(limit);
    return this.call(conn, buildMessage, { timeout: Math.max(0, deadline - now()) });
  }

  private async waitOpen(timeout: number): Promise<Conn> {
    if (this._status === "closed") throw new ClientClosed("the client is not connected", this.closeCode);
    if (!this.conn || this._status !== "open") {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.openWaiters = this.openWaiters.filter((w) => w !== wake);
          reject(new RequestTimeout(`not connected within ${timeout} ms`));
        }, timeout);
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        this.openWaiters.push(wake);
      });
    }
    if (!this.conn) throw new ClientClosed("the client is closed", this.closeCode);
    return this.conn;
  }

  /** Sends a request on `conn` and waits for its reply. */
  private call(conn: Conn, buildMessage: (id: string) => Request, options: { timeout?: number; hook?: (m: Message) => Item[] } = {}): Promise<Reply> {
    if (this.conn !== conn || conn.ended || conn.ws.readyState !== OPEN) {
      return Promise.reject(new ConnectionLost("the connection dropped"));
    }
    const id = `c${this.nextId++}`;
    const timeout = options.timeout ?? this.requestTimeout;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestTimeout(`no reply to request ${id} within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, {
        hook: options.hook,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Reply);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      try {
        conn.ws.send(JSON.stringify(buildMessage(id)));
      } catch {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new ConnectionLost("the connection dropped"));
      }
    });
  }

  // ------------------------------------------------------------------ delivery

  private setStatus(status: Status): void {
    if (status === this._status) return;
    this._status = status;
    this.delivery.statusChanged(status);
  }

  private removeSubscription(subscription: Subscription): void {
    const state = this.topics.get(subscription.topic);
    if (!state) return;
    const index = state.subscriptions.indexOf(subscription);
    if (index < 0) return;
    state.subscriptions.splice(index, 1);
    if (state.subscriptions.length > 0) return;
    this.topics.delete(subscription.topic);
    this.streams.forget(subscription.topic);
    const conn = this.conn;
    if (conn && this._status === "open" && state.settled) {
      this.call(conn, (id) => build.unsubscribe(id, subscription.topic)).catch(() => {});
    }
  }
}
