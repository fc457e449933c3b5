// Broadcast with Socket.IO: every `bench` event a socket emits is re-emitted to all sockets
// (`io.emit`), the sender included. Defaults otherwise (long-polling and WebSocket transports,
// no compression); the benchmark's clients speak engine.io v4 over WebSocket directly at
// ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket.
//
//   node server.js [PORT]        (PORT also from $PORT; default 8092; listens on 127.0.0.1)
'use strict';
const { createServer } = require('node:http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || process.env.PORT || 8092);
const httpServer = createServer();
const io = new Server(httpServer);

io.on('connection', (socket) => {
  socket.on('bench', (d) => io.emit('bench', d));
});

httpServer.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
process.on('SIGTERM', () => process.exit(0));
