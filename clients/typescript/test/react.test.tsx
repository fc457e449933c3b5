// @vitest-environment happy-dom
/**
 * The React hooks in a DOM test environment, against the real wshub binary over a real
 * WebSocket (Node's `ws` package): mount, receive, unmount, and no subscription left behind.
 */

import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { useState } from "react";
import { afterEach, expect, it } from "vitest";
import WebSocket from "ws";
import { Client, type WebSocketConstructor } from "../src/index.js";
import { useEvent, useTopic, useWshub } from "../src/react.js";
import { Hub, until } from "./hub.js";

const WS = WebSocket as unknown as WebSocketConstructor;

function Feed({ client }: { client: Client | null }) {
  const [titles, setTitles] = useState<string[]>([]);
  useTopic(client, "news", (event) => setTitles((t) => [...t, (event.payload as { title: string }).title]));
  return (
    <ul data-testid="feed">
      {titles.map((t, i) => (
        <li key={i}>{t}</li>
      ))}
    </ul>
  );
}

function App({ url, showFeed }: { url: string; showFeed: boolean }) {
  const { client, status } = useWshub(url, { WebSocket: WS, clientId: "react-page" });
  const [last, setLast] = useState("");
  useEvent(client, "headline", (event) => setLast((event.payload as { title: string }).title));
  return (
    <div>
      <p data-testid="status">{status}</p>
      <p data-testid="last">{last}</p>
      {showFeed && <Feed client={client} />}
    </div>
  );
}

let hub: Hub | null = null;
afterEach(async () => {
  cleanup();
  await hub?.stop();
  hub = null;
});

it("hooks subscribe on mount, deliver events, and clean up on unmount", async () => {
  hub = await Hub.start();
  const h = hub;
  const connections = async () => (await h.api("GET", "/ws/status")).body.connections as number;
  const view = render(<App url={h.wsUrl} showFeed={true} />);
  await waitFor(() => expect(screen.getByTestId("status").textContent).toBe("open"));
  await until(async () => (await h.subscribers("news")) === 1, "the topic subscribed on the hub");

  await h.publish("news", "headline", { title: "first" });
  await h.publish("news", "headline", { title: "second" });
  await waitFor(() => expect(screen.getByTestId("feed").textContent).toBe("firstsecond"));
  await waitFor(() => expect(screen.getByTestId("last").textContent).toBe("second"));

  // Unmounting the component that used useTopic leaves the topic; the connection stays.
  view.rerender(<App url={h.wsUrl} showFeed={false} />);
  await until(async () => (await h.subscribers("news")) === 0, "the subscription to go");
  expect(screen.getByTestId("status").textContent).toBe("open");
  expect(await connections()).toBe(1);

  // Unmounting everything closes the client.
  view.unmount();
  await until(async () => (await connections()) === 0, "the connection to close");
});

it("the client uses the environment's own WebSocket when none is given", async () => {
  hub = await Hub.start();
  const h = hub;
  expect(typeof globalThis.WebSocket).toBe("function"); // happy-dom's, as a browser's would be
  const client = new Client(h.wsUrl, { clientId: "global-ws" });
  try {
    expect((await client.connect()).clientId).toBe("global-ws");
    const got = new Promise<unknown>((resolve) => client.subscribe("news", (event) => resolve(event.payload)));
    await until(async () => (await h.subscribers("news")) === 1, "the subscription");
    await h.publish("news", "headline", { title: "via the global WebSocket" });
    expect(await got).toEqual({ title: "via the global WebSocket" });
  } finally {
    await client.close();
  }
});
