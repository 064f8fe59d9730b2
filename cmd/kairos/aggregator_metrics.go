package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// serveMetrics answers GET /metrics with h on addr, the operator's listener:
// no token, and h holds no per-merchant series (api.Server.MetricsHandler).
// It returns once the address is bound (written to addrOut as a base URL
// when set) and stop, which closes the listener and waits briefly for
// scrapes in flight.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, h http.Handler, addrOut string) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: aggReadHeaderTimeout,
		ReadTimeout:       aggReadHeaderTimeout,
		WriteTimeout:      aggWriteTimeout,
		IdleTimeout:       aggIdleTimeout,
		MaxHeaderBytes:    aggMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	base := "http://" + ln.Addr().String()
	if addrOut != "" {
		if err := os.WriteFile(addrOut, []byte(base+"\n"), 0o644); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	log.Info("metrics serving", "url", base+"/metrics")
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}
