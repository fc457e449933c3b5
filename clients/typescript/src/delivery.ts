/**
 * Handing received events and signals to the application, in order: the topic's subscriptions
 * first, then handlers registered by event type, then `events()` iterators. A handler that throws
 * (or returns a rejected promise) is logged and does not stop delivery.
 */

import type { WshubError } from "./errors.js";
import type { Position, ResyncRequired, Status } from "./messages.js";
import type { Item, StreamEvent } from "./streams.js";

export type Handler<T> = (item: T) => unknown;

/** One handler's subscription to a topic, from `Client.subscribe`. */
export class Subscription {
  active = true;
  constructor(
    readonly topic: string,
    readonly handler: Handler<StreamEvent> | undefined,
    readonly onResync: Handler<ResyncRequired> | undefined,
    /** The hub's answer: the topic's position, or the typed error (`Forbidden`, …). */
    readonly ready: Promise<Position>,
    private readonly remove: (s: Subscription) => void,
  ) {}

  /** Removes this handler; the topic is left on the hub when no handler remains. */
  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    this.remove(this);
  }
}

/** A topic the application wants: its handlers, and the hub's first answer. */
export interface TopicState {
  ready: Promise<Position>;
  resolve: (p: Position) => void;
  reject: (e: unknown) => void;
  settled: boolean;
  subscriptions: Subscription[];
}

export function newTopic(): TopicState {
  let resolve!: (p: Position) => void;
  let reject!: (e: unknown) => void;
  const ready = new Promise<Position>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  ready.catch(() => {}); // seen through Subscription.ready, or reported
  return { ready, resolve, reject, settled: false, subscriptions: [] };
}

export function settle(state: TopicState, outcome: Position | { error: unknown }): void {
  if (state.settled) return;
  state.settled = true;
  if ("error" in outcome) state.reject(outcome.error);
  else state.resolve(outcome);
}

interface Iterator {
  push: (item: Item | null) => void;
  resync: boolean;
}

/** The handler registries. */
export class Delivery {
  private readonly typeHandlers = new Map<string, Array<Handler<StreamEvent>>>();
  private readonly statusHandlers: Array<Handler<Status>> = [];
  private readonly resyncHandlers: Array<Handler<ResyncRequired>> = [];
  private readonly errorHandlers: Array<Handler<WshubError>> = [];
  private readonly iterators = new Set<Iterator>();

  constructor(private readonly topics: Map<string, TopicState>) {}

  on(eventType: string, handler: Handler<StreamEvent>): () => void {
    let list = this.typeHandlers.get(eventType);
    if (!list) this.typeHandlers.set(eventType, (list = []));
    return add(list, handler);
  }

  onStatus(handler: Handler<Status>): () => void {
    return add(this.statusHandlers, handler);
  }

  onResync(handler: Handler<ResyncRequired>): () => void {
    return add(this.resyncHandlers, handler);
  }

  onError(handler: Handler<WshubError>): () => void {
    return add(this.errorHandlers, handler);
  }

  events(resync: boolean): AsyncIterableIterator<StreamEvent | ResyncRequired> {
    const queue: Array<Item | null> = [];
    let wake: (() => void) | null = null;
    const entry: Iterator = {
      resync,
      push: (item) => {
        queue.push(item);
        wake?.();
      },
    };
    this.iterators.add(entry);
    const iterators = this.iterators;
    const iterator: AsyncIterableIterator<StreamEvent | ResyncRequired> = {
      async next() {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
        const item = queue.shift()!;
        if (item === null) {
          iterators.delete(entry);
          return { done: true, value: undefined };
        }
        return { done: false, value: item };
      },
      async return() {
        iterators.delete(entry);
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Ends every `events()` iterator. */
  end(): void {
    for (const it of this.iterators) it.push(null);
    this.iterators.clear();
  }

  deliver(item: Item): void {
    const subscriptions = [...(this.topics.get(item.topic)?.subscriptions ?? [])];
    if (item.kind === "resync_required") {
      for (const s of subscriptions) if (s.onResync) call(s.onResync, item);
      for (const h of [...this.resyncHandlers]) call(h, item);
    } else {
      for (const s of subscriptions) if (s.handler) call(s.handler, item);
      for (const h of [...(this.typeHandlers.get(item.type) ?? []), ...(this.typeHandlers.get("*") ?? [])]) call(h, item);
    }
    for (const it of this.iterators) if (it.resync || item.kind !== "resync_required") it.push(item);
  }

  /** An error that answers no request of the application's. */
  report(error: WshubError): void {
    if (this.errorHandlers.length === 0) console.warn(`wshub: ${error.code}: ${error.message}`);
    for (const h of [...this.errorHandlers]) call(h, error);
  }

  statusChanged(status: Status): void {
    for (const h of [...this.statusHandlers]) call(h, status);
  }
}

function add<T>(list: T[], item: T): () => void {
  list.push(item);
  return () => {
    const index = list.indexOf(item);
    if (index >= 0) list.splice(index, 1);
  };
}

/** Calls a handler; a throwing or rejecting handler is logged and does not stop delivery. */
function call<T>(handler: Handler<T>, item: T): void {
  try {
    const result = handler(item);
    if (result && typeof (result as Promise<unknown>).then === "function") {
      (result as Promise<unknown>).then(undefined, (error) => console.error("wshub: handler failed", error));
    }
  } catch (error) {
    console.error("wshub: handler failed", error);
  }
}
