module wshub.bench/peers/go-gorilla

go 1.19

require github.com/gorilla/websocket v1.5.0

// Built offline against Debian's golang-github-gorilla-websocket-dev; bench/compare builds with
// GOPROXY=off GOFLAGS=-mod=mod.
replace github.com/gorilla/websocket => /usr/share/gocode/src/github.com/gorilla/websocket
