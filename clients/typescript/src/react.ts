/**
 * React hooks over {@link Client} (entry point `@wshub/client/react`).
 *
 * `useWshub` owns a client for the component's lifetime; `useTopic` and `useEvent` subscribe on
 * mount and clean up on unmount. Handlers are read through refs, so passing a new function on
 * every render does not resubscribe.
 */

import { useEffect, useRef, useState } from "react";
import { Client, type ClientOptions, type Handler } from "./client.js";
import type { ResyncRequired, Status } from "./messages.js";
import type { StreamEvent } from "./streams.js";

export interface UseWshubResult {
  /** The client, `null` until the first render's effect created it. */
  client: Client | null;
  /** The client's status, re-rendered on every change. */
  status: Status;
  /** The error that closed the client for good (or failed the first connect), if any. */
  error: unknown;
}

/**
 * Creates a client for `url`, connects it, and closes it on unmount (or when `url` changes).
 * `options` are read when the client is created.
 */
export function useWshub(url: string, options: ClientOptions = {}): UseWshubResult {
  const [client, setClient] = useState<Client | null>(null);
  const [status, setStatus] = useState<Status>("connecting");
  const [error, setError] = useState<unknown>(null);
  const optionsRef = useRef(options);
  optionsRef.current = options;

  useEffect(() => {
    const created = new Client(url, optionsRef.current);
    let live = true;
    const offStatus = created.onStatus((s) => live && setStatus(s));
    setClient(created);
    setStatus("connecting");
    setError(null);
    created
      .connect()
      .then(() => created.waitClosed())
      .catch((e: unknown) => live && setError(e));
    return () => {
      live = false;
      offStatus();
      void created.close();
    };
  }, [url]);

  return { client, status, error };
}

/**
 * Subscribes `client` to `topic` while the component is mounted (and `client` is set);
 * `handler` gets each event, `options.onResync` the topic's resync signals.
 */
export function useTopic(
  client: Client | null,
  topic: string,
  handler: Handler<StreamEvent>,
  options: { onResync?: Handler<ResyncRequired> } = {},
): void {
  const handlerRef = useRef(handler);
  handlerRef.current = handler;
  const resyncRef = useRef(options.onResync);
  resyncRef.current = options.onResync;

  useEffect(() => {
    if (!client) return;
    const subscription = client.subscribe(topic, (event) => handlerRef.current(event), {
      onResync: (signal) => resyncRef.current?.(signal),
    });
    subscription.ready.catch(() => {});
    return () => subscription.unsubscribe();
  }, [client, topic]);
}

/** Calls `handler` for every event of `type` on any subscribed topic while mounted. */
export function useEvent(client: Client | null, type: string, handler: Handler<StreamEvent>): void {
  const handlerRef = useRef(handler);
  handlerRef.current = handler;
  useEffect(() => {
    if (!client) return;
    return client.on(type, (event) => handlerRef.current(event));
  }, [client, type]);
}
