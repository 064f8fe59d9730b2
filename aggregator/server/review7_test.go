package server

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

// syncBuffer is a bytes.Buffer a logger and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeLogHidesDBPassword: a PostgreSQL password given as a query
// parameter (pgx reads password= and sslpassword= there as well as in the
// userinfo) must not reach serve's log, which names the store it opened.
func TestServeLogHidesDBPassword(t *testing.T) {
	base := pgtest.URL(t)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	const secret, sslSecret = "s3cret-in-query", "ssl-s3cret"
	// The test server trusts local connections, so the password opens it
	// whatever it is; sslpassword is only read for an encrypted key.
	db := base + sep + "password=" + secret + "&sslpassword=" + sslSecret
	dir := t.TempDir()
	k, _ := parts(t)
	if err := keys.WriteAggregator(filepath.Join(dir, config.KeysDir), k, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, config.PolicyFile), []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, config.File)
	def := config.Default("127.0.0.1:0", db)
	if err := os.WriteFile(cfgPath, mustMarshal(t, def), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, st, err := Open(t.Context(), log, cfg, OpenOptions{DB: cfg.DBURL(""), Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer a.Close()
	ctx, cancel := context.WithCancel(t.Context())
	bound := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- a.Serve(ctx, ServeOptions{Listen: cfg.Listen, Bound: func(u string) error { bound <- u; return nil }})
	}()
	<-bound
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "aggregator serving") {
		t.Fatalf("log has no serving line:\n%s", out)
	}
	for _, s := range []string{secret, sslSecret} {
		if strings.Contains(out, s) {
			t.Errorf("serve's log holds the database secret %q:\n%s", s, out)
		}
	}
}
