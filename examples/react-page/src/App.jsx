import { useState } from "react";
import { useEvent, useTopic, useWshub } from "@wshub/client/react";

/** The last events of one topic, live; resubscribed after reconnects, refetched after a resync. */
function Feed({ client, topic }) {
  const [events, setEvents] = useState([]);
  const [notice, setNotice] = useState("");
  useTopic(client, topic, (event) => setEvents((list) => [event, ...list].slice(0, 20)), {
    onResync: async (signal) => {
      setNotice(`events were lost (${signal.reason}); refetched the history`);
      const page = await client.history(topic, { limit: 20 });
      setEvents(page.messages.filter((m) => m.offset <= signal.offset).reverse());
    },
  });
  return (
    <section>
      <h2>{topic}</h2>
      {notice && <p className="notice">{notice}</p>}
      {events.length === 0 && <p>No events yet: publish one (see the README).</p>}
      <ul>
        {events.map((e) => (
          <li key={`${e.epoch}:${e.offset}`}>
            #{e.offset} {e.type} {JSON.stringify(e.payload)}
          </li>
        ))}
      </ul>
    </section>
  );
}

export function App({ hub, topic }) {
  const { client, status, error } = useWshub(hub, { clientId: "react-page" });
  const [alerts, setAlerts] = useState(0);
  useEvent(client, "alert", () => setAlerts((n) => n + 1));
  return (
    <main>
      <h1>wshub live page</h1>
      <p>
        {hub} <span className={`status ${status}`}>{status}</span> {alerts > 0 && <>· {alerts} alerts</>}
      </p>
      {error && <p className="notice">{String(error.message ?? error)}</p>}
      <Feed client={client} topic={topic} />
    </main>
  );
}
