package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/policies"
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

// TestReplicaFollowsReload (round 6): replicas share the database, but a
// reload (POST /v1/config:reload, SIGHUP) reached the one replica that got
// it: a merchant the operator removed from the policy kept its token on every
// other replica (models, its session, the round routes), and so did a partner
// whose grant was removed, until each replica was reloaded by hand. A replica
// now follows the operator's config.reload entries in the shared audit log:
// it re-reads its files and installs the policy when it is the one the entry
// names.
func TestReplicaFollowsReload(t *testing.T) {
	db := pgtest.URL(t)
	dir := t.TempDir()
	k, _ := parts(t)
	if err := keys.WriteAggregator(filepath.Join(dir, config.KeysDir), k, nil); err != nil {
		t.Fatal(err)
	}
	policyPath := filepath.Join(dir, config.PolicyFile)
	if err := os.WriteFile(policyPath, []byte(testPolicy+"  shop-b: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, config.File)
	if err := os.WriteFile(cfgPath, mustMarshal(t, config.Default("127.0.0.1:0", db)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	open := func(migrate bool) *Aggregator {
		t.Helper()
		a, st, err := Open(t.Context(), slog.New(slog.DiscardHandler), cfg, OpenOptions{DB: cfg.DBURL(""), Migrate: migrate})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		t.Cleanup(func() { _ = a.Close() })
		return a
	}
	primary, replica := open(true), open(false)
	ts := httptest.NewServer(replica.API)
	t.Cleanup(ts.Close)
	tok, _, err := replica.Issuer.Issue(auth.Grant{Subject: "shop-b", Role: auth.RoleMerchant, Merchants: []string{"shop-b"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := request(t, ts, "GET", "/v1/models", tok, ""); code != 200 {
		t.Fatalf("GET /v1/models as shop-b before the reload: %d %.200s, want 200", code, body)
	}

	// The operator removes shop-b and reloads: the balancer sends it to the primary.
	if err := os.WriteFile(policyPath, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := policies.Parse("p", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := primary.Reload(t.Context(), "operator:test"); err != nil {
		t.Fatal(err)
	}
	if err := replica.FollowReloads(t.Context()); err != nil {
		t.Fatalf("FollowReloads: %v", err)
	}
	if got := replica.Service.Policy().Hash(); got != want.Hash() {
		t.Errorf("replica's policy after the primary's reload: %s, want %s", got, want.Hash())
	}
	if code, body := request(t, ts, "GET", "/v1/models", tok, ""); code != 403 {
		t.Errorf("GET /v1/models on the replica as shop-b, removed by the reload: %d %.200s, want 403", code, body)
	}
	// Nothing new: a second look changes nothing and reloads nothing.
	if err := replica.FollowReloads(t.Context()); err != nil {
		t.Fatalf("FollowReloads again: %v", err)
	}
	if got := replica.Service.Policy().Hash(); got != want.Hash() {
		t.Errorf("replica's policy after a second look: %s, want %s", got, want.Hash())
	}
	// The cursor reaches the head, so the next look does not read again
	// what this one read.
	head, err := replica.auditSrc.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if replica.followAfter != head.Seq {
		t.Errorf("follow cursor after a look: %d, want the head %d", replica.followAfter, head.Seq)
	}
}

// TestReplicaFollowRefusedOnce: a replica whose own policy file does not
// parse refuses the followed reload once (audited as denied by
// system:replica) and keeps its policy; it does not retry every interval,
// which would append the same refusal to the log for ever. A reload made
// afterwards is followed again.
func TestReplicaFollowRefusedOnce(t *testing.T) {
	db := pgtest.URL(t)
	k, _ := parts(t)
	setup := func() (dir string, cfg *config.Config) {
		t.Helper()
		dir = t.TempDir()
		if err := keys.WriteAggregator(filepath.Join(dir, config.KeysDir), k, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, config.PolicyFile), []byte(testPolicy+"  shop-b: {}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, config.File)
		if err := os.WriteFile(path, mustMarshal(t, config.Default("127.0.0.1:0", db)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return dir, cfg
	}
	open := func(cfg *config.Config, migrate bool) *Aggregator {
		t.Helper()
		a, st, err := Open(t.Context(), slog.New(slog.DiscardHandler), cfg, OpenOptions{DB: cfg.DBURL(""), Migrate: migrate})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		t.Cleanup(func() { _ = a.Close() })
		return a
	}
	dirA, cfgA := setup()
	dirB, cfgB := setup()
	primary, replica := open(cfgA, true), open(cfgB, false)
	before := replica.Service.Policy().Hash()
	if err := os.WriteFile(filepath.Join(dirA, config.PolicyFile), []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirB, config.PolicyFile), []byte("merchants: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.Reload(t.Context(), "operator:test"); err != nil {
		t.Fatal(err)
	}
	if err := replica.FollowReloads(t.Context()); !errors.Is(err, aggregator.ErrPolicy) {
		t.Errorf("follow with a broken policy file: got %v, want ErrPolicy", err)
	}
	for i := range 3 {
		if err := replica.FollowReloads(t.Context()); err != nil {
			t.Errorf("look %d after the refusal: %v, want nothing to do", i+2, err)
		}
	}
	if got := replica.Service.Policy().Hash(); got != before {
		t.Errorf("replica's policy after a refused follow: %s, want the one it had, %s", got, before)
	}
	page, err := compliance.QueryAudit(t.Context(), replica.auditSrc, compliance.AuditFilter{Action: "config.reload", Actor: followerActor})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0].Outcome != string(audit.OutcomeDenied) {
		t.Errorf("config.reload entries by %s: %+v, want one, denied", followerActor, page.Entries)
	}

	// The operator fixes the replica's file and reloads again on the primary.
	if err := os.WriteFile(filepath.Join(dirB, config.PolicyFile), []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.Reload(t.Context(), "operator:test"); err != nil {
		t.Fatal(err)
	}
	if err := replica.FollowReloads(t.Context()); err != nil {
		t.Fatalf("follow after the fix: %v", err)
	}
	if got, want := replica.Service.Policy().Hash(), primary.Service.Policy().Hash(); got != want {
		t.Errorf("replica's policy after the fix: %s, want the primary's %s", got, want)
	}
}
