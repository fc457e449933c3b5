// Broadcast with gorilla/websocket, built the way gorilla's chat example builds it and the way
// teams deploy it: one hub goroutine owns the set of clients; each client has a buffered send
// channel (256 messages) drained by its own writePump goroutine, and a readPump goroutine that
// hands every message it reads to the hub. The hub drops a client whose channel is full.
//
// Like the example, writePump packs every message already waiting in the channel into the
// same WebSocket frame, separated by newlines: under load a client receives fewer, larger
// frames, each carrying several messages.
//
//	go-gorilla [PORT]        (PORT also from $PORT; default 8094; listens on 127.0.0.1, path /ws)
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if port == "" {
		port = "8094"
	}
	addr := "127.0.0.1:" + port
	hub := newHub()
	go hub.run()
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		serveWs(hub, w, r)
	})
	server := &http.Server{Addr: addr}
	log.Printf("listening on %s", addr)
	if err := server.ListenAndServe(); err != nil {
		log.Fatal(err)
	}
}
