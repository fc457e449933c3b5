// Proves that a peer server broadcasts before bench/compare measures it: SUBSCRIBERS clients
// connect, one more publishes MESSAGES messages shaped like the load generator's, and every
// client (the publisher too) must receive all of them, in order, within 10 seconds.
//
//   node check.js URL [broadcast|socketio] [SUBSCRIBERS] [MESSAGES]     (default: broadcast 5 20)
//
// `broadcast`: every client connects to URL and the server sends each text frame to everyone;
// a frame may carry several messages separated by newlines (gorilla's chat hub packs them).
// `socketio`: engine.io v4 over WebSocket at URL (…/socket.io/?EIO=4&transport=websocket);
// the publisher emits `bench` events and the server re-emits them to all sockets.
// Needs the `ws` package: bench/compare runs it with NODE_PATH=bench/peers/node-ws/node_modules.
'use strict';
const WebSocket = require('ws');

const [url, target = 'broadcast', subscribers = '5', messages = '20'] = process.argv.slice(2);
if (!url || !['broadcast', 'socketio'].includes(target)) {
  console.error('usage: node check.js URL [broadcast|socketio] [SUBSCRIBERS] [MESSAGES]');
  process.exit(2);
}
const total = Number(messages);
const fail = (why) => {
  console.error(`check ${url}: ${why}`);
  process.exit(1);
};
setTimeout(() => fail('timed out after 10 s'), 10_000).unref();

// Opens one client; resolves once it can send. `received` collects message sequence numbers.
function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const client = { ws, received: [], probes: new Set(), send: null };
    const deliver = (text) => {
      for (const line of text.split('\n')) {
        const { s } = JSON.parse(line);
        // Probes (negative numbers) only show that the client is registered.
        if (s < 0) client.probes.add(s);
        else client.received.push(s);
      }
      onDelivery();
      maybeDone();
    };
    ws.on('error', reject);
    if (target === 'broadcast') {
      client.send = (msg) => ws.send(JSON.stringify(msg));
      ws.on('open', () => resolve(client));
      ws.on('message', (data) => deliver(data.toString()));
      return;
    }
    client.send = (msg) => ws.send('42' + JSON.stringify(['bench', msg]));
    ws.on('message', (data) => {
      const packet = data.toString();
      if (packet.startsWith('0')) ws.send('40'); // engine.io open: connect to namespace "/"
      else if (packet.startsWith('40')) resolve(client); // socket.io connect acknowledged
      else if (packet === '2') ws.send('3'); // engine.io ping
      else if (packet.startsWith('42')) {
        const [event, body] = JSON.parse(packet.slice(2));
        if (event === 'bench') deliver(JSON.stringify(body));
      }
    });
  });
}

let clients = [];
let onDelivery = () => {};

/** Resolves true once `check()` holds, re-checked at each delivery; false after `ms`. */
function deliveredWhen(check, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    onDelivery = () => {
      if (check()) {
        clearTimeout(timer);
        resolve(true);
      }
    };
  });
}

function maybeDone() {
  if (clients.length === 0 || !clients.every((c) => c.received.length >= total)) return;
  clients.forEach((c, i) => {
    const inOrder = c.received.length === total && c.received.every((s, k) => s === k);
    if (!inOrder) fail(`client ${i} received ${JSON.stringify(c.received)}`);
  });
  console.log(`check ${url}: ${clients.length} clients each received all ${total} messages in order`);
  clients.forEach((c) => c.ws.close());
  process.exit(0);
}

(async () => {
  try {
    clients = await Promise.all(Array.from({ length: Number(subscribers) + 1 }, open));
  } catch (err) {
    fail(`cannot connect: ${err.message}`);
  }
  const publisher = clients[0];
  // A server may register a socket a moment after its handshake answer (a goroutine hop, a
  // task switch): probe until every client has received a probe, then count from there.
  for (let probe = -1; ; probe--) {
    const seen = () => clients.every((c) => c.probes.has(probe));
    const registered = deliveredWhen(seen, 100);
    publisher.send({ s: probe, p: 0, t: 0, x: 'probe' });
    if (await registered) break;
  }
  onDelivery = () => {};
  for (let s = 0; s < total; s++) {
    publisher.send({ s, p: 0, t: Math.round(performance.timeOrigin * 1000 + performance.now() * 1000), x: 'pad' });
  }
})();
