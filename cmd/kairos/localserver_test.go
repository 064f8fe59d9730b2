package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestLocalServerDropsIdleConnections: the merchant's local scores and drift
// server set only a header timeout, so a caller could open connections and
// keep them idle (or stop reading) for ever, each holding a goroutine and a
// socket. Now an idle keep-alive connection is closed after the idle
// timeout (here 100 ms, the production value is a minute).
func TestLocalServerDropsIdleConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := localHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		serverTimeouts{header: time.Second, read: time.Second, write: time.Second, idle: 100 * time.Millisecond})
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	defer srv.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body) //nolint:errcheck // the body is "ok"
	res.Body.Close()
	// The connection is kept alive for a second request; left idle, the
	// server must close it well before this 5 s deadline.
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: read %v, want EOF (closed by the server)", err)
	}
	if lt := localTimeouts(); lt.idle <= 0 || lt.read <= 0 || lt.write <= 0 || lt.header <= 0 {
		t.Errorf("production timeouts %+v: want every one set", lt)
	}
}
