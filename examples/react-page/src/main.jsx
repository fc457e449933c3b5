import { createRoot } from "react-dom/client";
import { App } from "./App.jsx";

const params = new URLSearchParams(location.search);
// ?hub=ws://host:port/ws&topic=news (defaults: the hub on 127.0.0.1:8000, topic "news").
const hub = params.get("hub") ?? "ws://127.0.0.1:8000/ws";
const topic = params.get("topic") ?? "news";

createRoot(document.getElementById("root")).render(<App hub={hub} topic={topic} />);
