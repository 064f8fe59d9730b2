package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/store"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
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
		result <- serveUntilDone(ctx, slog.New(slog.DiscardHandler), srv, func() error { return srv.Serve(ln) }, loop)
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
		t.Fatalf("serveUntilDone returned (%v) before the in-flight request finished", err)
	default:
	}
	close(release)
	if a := <-got; a.err != nil || a.body != "done" {
		t.Fatalf("in-flight request: got %q, %v; want done", a.body, a.err)
	}
	if err := <-result; err != nil {
		t.Errorf("serveUntilDone: %v", err)
	}
	select {
	case <-loopStopped:
	default:
		t.Error("round loop still running after serveUntilDone returned")
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
	err = serveUntilDone(t.Context(), slog.New(slog.DiscardHandler), srv, func() error { return srv.Serve(ln) },
		func(context.Context) error { return errors.New("database gone") })
	if err == nil || !strings.Contains(err.Error(), "round loop stopped: database gone") {
		t.Errorf("got %v, want the loop's failure", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		_ = c.Close()
		t.Error("listener still open after the loop failed")
	}
}

// servedAggregator is a `kairos aggregator serve` running in this process.
type servedAggregator struct {
	base   string
	cancel context.CancelFunc
	done   chan error
	logs   *lockedWriter
}

// startServe runs serve with args until stop; it waits for the address file.
func startServe(t *testing.T, args ...string) *servedAggregator {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	ctx, cancel := context.WithCancel(t.Context())
	s := &servedAggregator{cancel: cancel, done: make(chan error, 1), logs: &lockedWriter{w: &bytes.Buffer{}}}
	t.Cleanup(cancel)
	go func() {
		cmd := newAggregatorCmd()
		cmd.SetArgs(append([]string{"serve", "--addr-file", addrFile}, args...))
		cmd.SetOut(io.Discard)
		cmd.SetErr(s.logs)
		s.done <- cmd.ExecuteContext(ctx)
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			s.base = strings.TrimSpace(string(b))
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("serve stopped early: %v\n%s", err, s.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not write its address")
		}
	}
}

// stop cancels serve and waits for its graceful exit.
func (s *servedAggregator) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after cancellation")
	}
}

// freshPostgres returns the URL of a new, empty database on the server
// KAIROS_TEST_POSTGRES_URL names, or "" when it is unset (outside CI).
func freshPostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv(pgtest.EnvURL)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(pgtest.EnvURL + " is not set but CI=true")
		}
		return ""
	}
	return pgtest.Database(t, base, "kairos_cmd_")
}

// TestAggregatorServeEndToEnd runs `kairos aggregator serve` in-process on a
// free loopback port over SQLite, and over PostgreSQL with two replicas when
// KAIROS_TEST_POSTGRES_URL is set; drives it with the enrol, models and
// rollback commands and the API client; stops it; and verifies the audit
// chain it left.
func TestAggregatorServeEndToEnd(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			db := ""
			if backend == "postgres" {
				if db = freshPostgres(t); db == "" {
					t.Skip("KAIROS_TEST_POSTGRES_URL not set")
				}
			}
			testServeEndToEnd(t, db)
		})
	}
}

func testServeEndToEnd(t *testing.T, db string) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "agg")
	initArgs := []string{"init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0"}
	if db != "" {
		initArgs = append(initArgs, "--db", db)
	}
	if _, err := runAgg(t, initArgs...); err != nil {
		t.Fatal(err)
	}
	if _, err := runAgg(t, "migrate", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	agg := startServe(t, "--dir", dir, "--no-migrate")
	base := agg.base
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("address file says %q", base)
	}
	ctx := t.Context()

	shop := filepath.Join(tmp, "shop")
	m, err := keys.GenerateMerchant(rand.Reader, "cdnow-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteMerchant(shop, m, nil); err != nil {
		t.Fatal(err)
	}
	out, err := runAgg(t, "enrol", "--dir", dir, "--url", base, "--id", "cdnow-1", "--time-zone", "America/New_York",
		"--public-key", filepath.Join(shop, keys.FileSigningPub))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out)
	c, err := apiclient.New(base, token)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.CurrentRound(ctx)
	if err != nil || r.ID == "" || r.Recipient == "" {
		t.Fatalf("current round with the enrolment token: %+v, %v", r, err)
	}
	if _, err := runAgg(t, "enrol", "--dir", dir, "--url", base, "--id", "cdnow-1", "--time-zone", "UTC",
		"--public-key", shop); err == nil || !strings.Contains(err.Error(), "409 conflict") {
		t.Errorf("second enrolment: got %v, want a 409 conflict", err)
	}

	if db != "" {
		// A second replica over the same database knows the merchant and its token.
		replica := startServe(t, "--dir", dir, "--no-migrate")
		c2, err := apiclient.New(replica.base, token)
		if err != nil {
			t.Fatal(err)
		}
		// Both replicas serve the same round (a round may close between two
		// reads, so read until two reads from the first replica agree).
		agree := false
		for range 5 {
			a1, err1 := c.CurrentRound(ctx)
			b, err2 := c2.CurrentRound(ctx)
			a2, err3 := c.CurrentRound(ctx)
			if err := errors.Join(err1, err2, err3); err != nil {
				t.Fatalf("current round from the replicas: %v", err)
			}
			if a1.ID == a2.ID {
				if b.ID != a1.ID {
					t.Fatalf("second replica serves round %s, first %s", b.ID, a1.ID)
				}
				agree = true
				break
			}
		}
		if !agree {
			t.Error("rounds kept changing; could not compare the replicas")
		}
		replica.stop(t)
	}

	out, err = runAgg(t, "merchants", "--dir", dir, "--url", base)
	if want := "cdnow-1 - America/New_York " + keys.KeyID(m.Signing.Public().(ed25519.PublicKey)) + " false"; err != nil || !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
		t.Errorf("merchants: %v\n%s\nwant a line with %q", err, out, want)
	}
	out, err = runAgg(t, "budgets", "--dir", dir, "--url", base)
	if err != nil || !strings.Contains(strings.Join(strings.Fields(out), " "), "cdnow-1 0.0000 1 1e-06 0 -") {
		t.Errorf("budgets: %v\n%s", err, out)
	}
	out, err = runAgg(t, "models", "--dir", dir, "--url", base)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "VERSION") || !strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "1 * 0 - ") {
		t.Errorf("models table:\n%s", out)
	}
	out, err = runAgg(t, "rollback", "--dir", dir, "--url", base, "--version", "1")
	if err != nil || !strings.Contains(out, "active model is now version 1") {
		t.Errorf("rollback: %q, %v", out, err)
	}
	if _, err := runAgg(t, "rollback", "--dir", dir, "--url", base, "--version", "5"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("rollback to a missing version: got %v, want 404", err)
	}

	// Partner grants come from the policy: crm-demo is in the example policy, crm-x is not.
	ak, err := keys.LoadAggregator(filepath.Join(dir, aggKeysDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	for partner, want := range map[string]int{"crm-demo": 200, "crm-x": 403} {
		tok, err := aggIssue(ak, auth.Grant{Subject: partner, Role: auth.RolePartner, Merchants: []string{"cdnow-1"}, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		pc, _ := apiclient.New(base, tok)
		_, err = pc.Models(ctx)
		var p *apiclient.Problem
		switch {
		case want == 200 && err != nil:
			t.Errorf("partner %s: %v", partner, err)
		case want != 200 && (!errors.As(err, &p) || p.Status != want):
			t.Errorf("partner %s: got %v, want %d", partner, err, want)
		}
	}

	// Revocation: the partner's token verifies, is revoked through the CLI
	// (which sends its jti and expiry, not the token), and is then refused by
	// the server within the verifier's revocation TTL (1 s) and by
	// token verify --db; the audit log gains a token.revoke entry (checked
	// with the others below).
	dbArg := db
	if dbArg == "" {
		dbArg = filepath.Join(dir, aggDBFile)
	}
	crm, err := aggIssue(ak, auth.Grant{Subject: "crm-demo", Role: auth.RolePartner, Merchants: []string{"cdnow-1"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runToken(t, "verify", "--keys", filepath.Join(dir, aggKeysDir), "--db", dbArg, crm); err != nil {
		t.Fatalf("token verify --db before revocation: %v", err)
	}
	out, err = runAgg(t, "revoke-token", "--dir", dir, "--url", base, crm)
	if err != nil || !strings.Contains(out, " refused until ") {
		t.Fatalf("revoke-token: %q, %v", out, err)
	}
	if _, err := runAgg(t, "revoke-token", "--dir", dir, "--url", base, "--jti", "x"); err == nil {
		t.Error("revoke-token --jti without --expires: no error")
	}
	if _, err := runToken(t, "verify", "--keys", filepath.Join(dir, aggKeysDir), "--db", dbArg, crm); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("token verify --db after revocation: %v, want a revoked error", err)
	}
	pc, _ := apiclient.New(base, crm)
	refused := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !refused; time.Sleep(100 * time.Millisecond) {
		_, err := pc.Models(ctx)
		var p *apiclient.Problem
		refused = errors.As(err, &p) && p.Status == http.StatusUnauthorized
	}
	if !refused {
		t.Error("the revoked partner token was still accepted 3 s after the revocation")
	}

	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "kairos_http_request_duration_seconds"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, want 200 containing %q", path, resp.StatusCode, want)
		}
	}

	agg.stop(t)
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}

	// The audit log was flushed and its chain verifies against the checkpoint key.
	a, err := keys.LoadAggregator(filepath.Join(dir, aggKeysDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	dbURL := db
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(dir, aggDBFile)
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := audit.Verify(ctx, st, a.Checkpoint.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	if res.Entries < 4 || res.LastCheckpointSeq != res.Entries {
		t.Errorf("audit: %d entries, last checkpoint at %d; want ≥ 4 entries (enrol ok, enrol denied, rollback, token revocation) all pinned by the closing checkpoint",
			res.Entries, res.LastCheckpointSeq)
	}
	if acts := auditActionsOf(t, st); acts["token.revoke"] != 1 {
		t.Errorf("audit actions %v: want one token.revoke", acts)
	}
	if logs := agg.logs.String(); !strings.Contains(logs, "aggregator serving") || !strings.Contains(logs, "aggregator stopped") {
		t.Errorf("logs lack start or stop:\n%s", logs)
	}
}

// lockedWriter serialises writes from the server's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.w)
}

// TestAggregatorServeTLS serves HTTPS with a self-signed certificate named in
// the config; the admin commands trust it through the config's tls.cert, and
// plain HTTP is not answered.
func TestAggregatorServeTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agg")
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := selfSigned(t)
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, aggConfigFile)
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, append(b, "tls: {cert: tls.crt, key: tls.key}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	agg := startServe(t, "--dir", dir)
	if !strings.HasPrefix(agg.base, "https://127.0.0.1:") {
		t.Fatalf("address file says %q, want https", agg.base)
	}
	out, err := runAgg(t, "models", "--dir", dir, "--url", agg.base)
	if err != nil || !strings.Contains(out, "VERSION") {
		t.Errorf("models over TLS: %q, %v", out, err)
	}
	if resp, err := http.Get("http://" + strings.TrimPrefix(agg.base, "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}
	agg.stop(t)
}

// selfSigned returns a certificate for 127.0.0.1 and its key, PEM-encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kairos test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}

// auditActionsOf counts the audit entries of st by action.
func auditActionsOf(t *testing.T, st store.Store) map[string]int {
	t.Helper()
	es, err := st.AuditEntries(t.Context(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range es {
		out[e.Action]++
	}
	return out
}
