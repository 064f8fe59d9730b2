package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeUntilDoneDrains: on cancellation the listener closes at once, an
// in-flight request still completes, and the round loop is stopped only after it.
func TestServeUntilDoneDrains(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	}), ReadHeaderTimeout: time.Second}
	loopStopped := make(chan struct{})
	loop := func(ctx context.Context) error {
		<-ctx.Done()
		close(loopStopped)
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(t.Context())
	result := make(chan error, 1)
	go func() {
		result <- ServeUntilDone(ctx, slog.New(slog.DiscardHandler), srv, func() error { return srv.Serve(ln) }, loop)
	}()

	type answer struct {
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{string(b), err}
	}()
	<-entered
	cancel()

	// New connections are refused while the request is still in flight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepts connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-loopStopped:
		t.Fatal("round loop stopped before the in-flight request finished")
	case err := <-result:
		t.Fatalf("ServeUntilDone returned (%v) before the in-flight request finished", err)
	default:
	}
	close(release)
	if a := <-got; a.err != nil || a.body != "done" {
		t.Fatalf("in-flight request: got %q, %v; want done", a.body, a.err)
	}
	if err := <-result; err != nil {
		t.Errorf("ServeUntilDone: %v", err)
	}
	select {
	case <-loopStopped:
	default:
		t.Error("round loop still running after ServeUntilDone returned")
	}
}

// TestServeUntilDoneLoopFailure: a round loop that dies takes the server down
// with an error naming it.
func TestServeUntilDoneLoopFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	err = ServeUntilDone(t.Context(), slog.New(slog.DiscardHandler), srv, func() error { return srv.Serve(ln) },
		func(context.Context) error { return errors.New("database gone") })
	if err == nil || !strings.Contains(err.Error(), "round loop stopped: database gone") {
		t.Errorf("got %v, want the loop's failure", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		_ = c.Close()
		t.Error("listener still open after the loop failed")
	}
}
