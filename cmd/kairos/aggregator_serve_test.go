package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/bench"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/store"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

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
	initArgs := []string{"init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0", "--policy", cdnowDemoPolicy}
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
	// Nothing published yet: the error says so instead of a bare 404.
	if _, err := runAgg(t, "rollback", "--dir", dir, "--url", base, "--version", "5"); !errors.Is(err, errNoModels) || !strings.Contains(err.Error(), "only the initial model (version 1)") {
		t.Errorf("rollback to a missing version: got %v, want errNoModels naming version 1", err)
	}
	if _, err := runAgg(t, "revoke-token", "--dir", dir, "--url", base, ""); err == nil || !strings.Contains(err.Error(), "token argument is empty") {
		t.Errorf(`revoke-token "": got %v, want an error naming the empty argument`, err)
	}

	// Partner grants come from the policy: crm-demo is in the example policy, crm-x is not.
	ak, err := keys.LoadAggregator(filepath.Join(dir, config.KeysDir), nil)
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
		dbArg = filepath.Join(dir, config.DBFile)
	}
	crm, err := aggIssue(ak, auth.Grant{Subject: "crm-demo", Role: auth.RolePartner, Merchants: []string{"cdnow-1"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runToken(t, "verify", "--keys", filepath.Join(dir, config.KeysDir), "--db", dbArg, crm); err != nil {
		t.Fatalf("token verify --db before revocation: %v", err)
	}
	out, err = runAgg(t, "revoke-token", "--dir", dir, "--url", base, crm)
	if err != nil || !strings.Contains(out, " refused until ") {
		t.Fatalf("revoke-token: %q, %v", out, err)
	}
	if _, err := runAgg(t, "revoke-token", "--dir", dir, "--url", base, "--jti", "x"); err == nil {
		t.Error("revoke-token --jti without --expires: no error")
	}
	if _, err := runToken(t, "verify", "--keys", filepath.Join(dir, config.KeysDir), "--db", dbArg, crm); err == nil || !strings.Contains(err.Error(), "revoked") {
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

	// /metrics needs a compliance or admin token (TestAggregatorServeMetricsDisclosure).
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
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
	a, err := keys.LoadAggregator(filepath.Join(dir, config.KeysDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	dbURL := db
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(dir, config.DBFile)
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
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0", "--policy", cdnowDemoPolicy); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := selfSigned(t)
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, config.File)
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

// uploadGate holds request bodies at their first Read until open or abort
// is closed, and counts the bodies the server asked for.
type uploadGate struct {
	open, abort chan struct{}
	mu          sync.Mutex
	asked       int
}

func (g *uploadGate) reading() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.asked
}

// gatedBody is a request body behind an uploadGate. With Expect:
// 100-continue the client reads it only once the server's handler reads the
// body, that is, once the request was admitted.
type gatedBody struct {
	r    *bytes.Reader
	gate *uploadGate
	held bool
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if !b.held {
		b.held = true
		b.gate.mu.Lock()
		b.gate.asked++
		b.gate.mu.Unlock()
		select {
		case <-b.gate.open:
		case <-b.gate.abort:
			return 0, errors.New("upload aborted by the test")
		}
	}
	return b.r.Read(p)
}

// metricsOf returns the samples of a Prometheus text page by series.
func metricsOf(t *testing.T, page string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(page, "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[name] = x
	}
	return out
}

// getWith GETs url with a bearer token ("" for none).
func getWith(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestAggregatorServeBatchFlood reproduces the memory-amplification attack on
// `kairos aggregator serve` with its default limits: 50 concurrent
// POST /v1/predict:batch of 1,000 customers × 430 events (28 MB each) from
// one partner, within the example policy's rate limit (burst 100). The bodies
// of admitted requests are held at their first byte, so the server keeps
// them in flight: only as many as fit three quarters of the default in-flight
// budget are admitted, every other one is refused at once with 503,
// Retry-After and a problem document, the merchant's and the partner's single
// predictions are answered meanwhile, and the metrics listener reports the
// bytes in flight (no more than the budget) without any merchant series.
// Peak RSS under the unheld attack is in docs/benchmarks.md
// (kairos bench predict flood).
func TestAggregatorServeBatchFlood(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "agg")
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0", "--policy", cdnowDemoPolicy); err != nil {
		t.Fatal(err)
	}
	metricsFile := filepath.Join(tmp, "metrics-addr")
	agg := startServe(t, "--dir", dir, "--metrics-listen", "127.0.0.1:0", "--metrics-addr-file", metricsFile)
	mb, err := os.ReadFile(metricsFile)
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := strings.TrimSpace(string(mb)) + "/metrics"
	enr := enrolServed(t, agg.base, dir, bench.FloodMerchant)
	ak, err := keys.LoadAggregator(filepath.Join(dir, config.KeysDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	partner, err := aggIssue(ak, auth.Grant{Subject: bench.FloodPartner, Role: auth.RolePartner, Merchants: []string{bench.FloodMerchant}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	const attack = 50
	body := bench.FloodBatch(bench.FloodMerchant, bench.FloodAsOf, 1000, 430)
	size := int64(len(body))
	if size < 27<<20 || size > api.DefaultMaxBatchBytes {
		t.Fatalf("attack body %d bytes; want about 28 MB, under the batch limit", size)
	}
	// Large requests share three quarters of the default budget.
	admitted := int(api.DefaultMaxInflightBytes / 4 * 3 / size)
	gate := &uploadGate{open: make(chan struct{}), abort: make(chan struct{})}
	released := false
	t.Cleanup(func() {
		if !released {
			close(gate.abort)
		}
	})
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	t.Cleanup(client.CloseIdleConnections)
	type answer struct {
		code                    int
		contentType, retryAfter string
		body                    []byte
		err                     error
	}
	answers := make(chan answer, attack)
	for range attack {
		go func() {
			req, err := http.NewRequest(http.MethodPost, agg.base+"/v1/predict:batch", &gatedBody{r: bytes.NewReader(body), gate: gate})
			if err != nil {
				answers <- answer{err: err}
				return
			}
			req.ContentLength = size
			req.Header.Set("Authorization", "Bearer "+partner)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Expect", "100-continue")
			res, err := client.Do(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			answers <- answer{res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Retry-After"), b, err}
		}()
	}
	var refused []answer
	deadline := time.After(2 * time.Minute)
	for len(refused)+gate.reading() < attack {
		select {
		case a := <-answers:
			refused = append(refused, a)
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d answered and %d uploading of %d", len(refused), gate.reading(), attack)
		}
	}
	if got := gate.reading(); got != admitted {
		t.Fatalf("%d batches of %d bytes admitted at once, want %d (three quarters of the %d-byte budget)", got, size, admitted, api.DefaultMaxInflightBytes)
	}
	for i, a := range refused {
		var p apiclient.Problem
		secs, rerr := strconv.Atoi(a.retryAfter)
		if a.err != nil || a.code != http.StatusServiceUnavailable || a.contentType != "application/problem+json" ||
			json.Unmarshal(a.body, &p) != nil || p.Type != apiclient.TypeUnavailable || rerr != nil || secs < 1 {
			t.Errorf("refused batch %d: %d %q Retry-After %q %s %v; want 503 problem+json %s with Retry-After ≥ 1",
				i, a.code, a.contentType, a.retryAfter, a.body, a.err, apiclient.TypeUnavailable)
		}
	}

	// Compliant traffic is answered while the admitted batches are in flight.
	single := bench.FloodSingle(bench.FloodMerchant)
	for name, token := range map[string]string{"merchant": enr.Token, "partner": partner} {
		req, err := http.NewRequest(http.MethodPost, agg.base+"/v1/predict", bytes.NewReader(single))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s's single prediction during the flood: %v", name, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s's single prediction during the flood: %d %s", name, res.StatusCode, b)
		}
	}

	code, page := getWith(t, metricsURL, "")
	m := metricsOf(t, page)
	if code != http.StatusOK || strings.Contains(page, "merchant=") || strings.Contains(page, bench.FloodMerchant) {
		t.Errorf("metrics listener: %d, merchant series shown: %v", code, strings.Contains(page, "merchant="))
	}
	if got, want := m["kairos_admission_inflight_bytes"], float64(int64(admitted)*size); got != want {
		t.Errorf("kairos_admission_inflight_bytes %v with %d batches in flight, want %v", got, admitted, want)
	}
	if got := m["kairos_admission_peak_bytes"]; got > api.DefaultMaxInflightBytes || got < float64(int64(admitted)*size) {
		t.Errorf("kairos_admission_peak_bytes %v, want between %d and the budget %d", got, int64(admitted)*size, api.DefaultMaxInflightBytes)
	}

	released = true
	close(gate.open)
	for range admitted {
		a := <-answers
		var bp api.BatchPrediction
		if a.err != nil || a.code != http.StatusOK || json.Unmarshal(a.body, &bp) != nil || len(bp.Results) != 1000 {
			t.Errorf("admitted batch: %d %v, want 200 with 1000 results", a.code, a.err)
		}
	}
	agg.stop(t)
}

// TestAggregatorServeMetricsDisclosure reproduces the /metrics disclosure on
// `kairos aggregator serve`: without a token the API's /metrics used to list
// every merchant's ε spent and cap. Now it answers 401 without a token and
// 403 to a partner; the compliance role sees the series; the operator's
// metrics listener (loopback) has none of them.
func TestAggregatorServeMetricsDisclosure(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "agg")
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0", "--policy", cdnowDemoPolicy); err != nil {
		t.Fatal(err)
	}
	metricsFile := filepath.Join(tmp, "metrics-addr")
	agg := startServe(t, "--dir", dir, "--metrics-listen", "127.0.0.1:0", "--metrics-addr-file", metricsFile)
	mb, err := os.ReadFile(metricsFile)
	if err != nil {
		t.Fatal(err)
	}
	metricsBase := strings.TrimSpace(string(mb))
	if !strings.HasPrefix(metricsBase, "http://127.0.0.1:") || metricsBase == agg.base {
		t.Fatalf("metrics listener at %q, API at %q; want a loopback listener of its own", metricsBase, agg.base)
	}
	enrolServed(t, agg.base, dir, "cdnow-1")
	ak, err := keys.LoadAggregator(filepath.Join(dir, config.KeysDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	token := func(role auth.Role, subject string) string {
		g := auth.Grant{Subject: subject, Role: role, TTL: time.Minute}
		if role == auth.RolePartner || role == auth.RoleMerchant {
			g.Merchants = []string{"cdnow-1"}
		}
		tok, err := aggIssue(ak, g)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	const series = `kairos_epsilon_spent{merchant="cdnow-1"}`
	for _, tt := range []struct {
		caller, token string
		want          int
	}{
		{"nobody", "", http.StatusUnauthorized},
		{"partner", token(auth.RolePartner, "crm-demo"), http.StatusForbidden},
		{"merchant", token(auth.RoleMerchant, "cdnow-1"), http.StatusForbidden},
		{"compliance", token(auth.RoleCompliance, "reviewer"), http.StatusOK},
	} {
		code, page := getWith(t, agg.base+"/metrics", tt.token)
		if code != tt.want || strings.Contains(page, series) != (tt.want == http.StatusOK) {
			t.Errorf("API /metrics as %s: %d, ε series shown %v; want %d, shown only with 200",
				tt.caller, code, strings.Contains(page, series), tt.want)
		}
	}
	code, page := getWith(t, metricsBase+"/metrics", "")
	if code != http.StatusOK || !strings.Contains(page, "kairos_http_request_duration_seconds") {
		t.Errorf("metrics listener: %d, want 200 with the request latencies", code)
	}
	if strings.Contains(page, "merchant=") || strings.Contains(page, "cdnow-1") {
		t.Errorf("metrics listener shows merchant series without a token")
	}
	if code, _ := getWith(t, metricsBase+"/v1/budgets", ""); code != http.StatusNotFound {
		t.Errorf("metrics listener answers /v1/budgets with %d, want 404: it serves /metrics only", code)
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

// enrolServed enrols merchant id, with a fresh signing key, through the admin
// API of the aggregator served from dir at base, as the admin token that
// init wrote.
func enrolServed(t *testing.T, base, dir, id string) protocol.Enrolment {
	t.Helper()
	adminTok, err := os.ReadFile(filepath.Join(dir, config.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := apiclient.New(base, strings.TrimSpace(string(adminTok)))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := admin.Enrol(t.Context(), protocol.EnrolRequest{ID: id, TimeZone: "UTC", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	return enr
}
