package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
)

// gateAuditor holds every predict.batch entry until open is closed, so that
// the batches it admitted stay in flight; other entries pass at once.
type gateAuditor struct {
	open    chan struct{}
	mu      sync.Mutex
	waiting int
}

func (g *gateAuditor) Append(ctx context.Context, rec audit.Record) (audit.Entry, error) {
	if rec.Action != "predict.batch" {
		return audit.Entry{Seq: 1}, nil
	}
	g.mu.Lock()
	g.waiting++
	g.mu.Unlock()
	select {
	case <-g.open:
	case <-ctx.Done():
		return audit.Entry{}, ctx.Err()
	}
	return audit.Entry{Seq: 1}, nil
}

func (g *gateAuditor) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

// floodBody is a batch of customers × events in the attack's shape (about
// 65 bytes an event).
func floodBody(t testing.TB, merchant string, customers, events int) []byte {
	t.Helper()
	req := PredictBatchRequest{Merchant: merchant, AsOf: "2026-11-27T00:00:00Z"}
	for c := range customers {
		bc := BatchCustomer{Customer: fmt.Sprintf("c%04d", c)}
		for e := range events {
			bc.Events = append(bc.Events, EventInput{
				Time: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(e) * time.Hour).Format(time.RFC3339),
				Kind: "view", Item: fmt.Sprintf("i%05d", e%997), Category: "books",
			})
		}
		req.Customers = append(req.Customers, bc)
	}
	return mustJSON(t, req)
}

type floodAnswer struct {
	status      int
	contentType string
	retryAfter  string
	body        []byte
	err         error
}

// TestAdmissionBoundsBatchFlood reproduces the memory amplification attack
// on a real HTTP server: 50 concurrent batches from one partner, all within
// its rate limit. Only as many as fit three quarters of the in-flight body
// budget are admitted (they are held in flight by the audit log); every other
// one is refused at once with 503, Retry-After and a problem document, its
// body unread; meanwhile another partner's and a merchant's single
// predictions are answered; once the held batches finish, the budget is
// whole again.
func TestAdmissionBoundsBatchFlood(t *testing.T) {
	const (
		budget   = 8 << 20
		attack   = 50
		maxBatch = 4 << 20
	)
	f := newPredictFixture(t, PredictOptions{})
	gate := &gateAuditor{open: make(chan struct{})}
	srv, err := NewServer(Options{
		Service: f.svc, Verifier: verifierForTest(t, f.jwks), Issuer: f.issuer, JWKS: f.jwks,
		MaxInflightBytes: budget,
		Partners: func(id string) (float64, int, error) {
			if id == "crm" || id == "good" {
				return 1000, 1000, nil // the whole flood is within the rate limit
			}
			return 0, 0, errors.New("no grant")
		},
		Predict: PredictOptions{Audit: gate, MaxBatchBytes: maxBatch, Now: f.clock.Now,
			MayQuery: func(p, m string) bool { return m == "m1" && (p == "crm" || p == "good") }},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	crm := issue(t, f.issuer, auth.Grant{Subject: "crm", Role: auth.RolePartner, Merchants: []string{"m1"}, TTL: time.Hour})
	good := issue(t, f.issuer, auth.Grant{Subject: "good", Role: auth.RolePartner, Merchants: []string{"m1"}, TTL: time.Hour})

	body := floodBody(t, "m1", 40, 430)
	size := int64(len(body))
	// Large requests share three quarters of the budget, so this many fit.
	admitted := int((budget / 4 * 3) / size)
	t.Logf("batch body %d bytes; budget %d bytes admits %d of %d at once", size, budget, admitted, attack)
	if admitted < 2 || admitted >= attack {
		t.Fatalf("the test's sizes admit %d batches; want a few", admitted)
	}

	// Expect: 100-continue, as curl sends for large bodies: a refused body is
	// never sent, so the answers do not race the upload.
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute, MaxConnsPerHost: 0}}
	t.Cleanup(client.CloseIdleConnections)
	post := func(path, token string, b []byte) floodAnswer {
		req, err := http.NewRequest(http.MethodPost, ts.URL+path, bytes.NewReader(b))
		if err != nil {
			return floodAnswer{err: err}
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Expect", "100-continue")
		res, err := client.Do(req)
		if err != nil {
			return floodAnswer{err: err}
		}
		defer res.Body.Close()
		rb, err := io.ReadAll(res.Body)
		return floodAnswer{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), retryAfter: res.Header.Get("Retry-After"), body: rb, err: err}
	}

	answers := make(chan floodAnswer, attack)
	for range attack {
		go func() { answers <- post("/v1/predict:batch", crm, body) }()
	}
	// Every attack request is either answered or held in flight.
	var refused []floodAnswer
	deadline := time.After(time.Minute)
	for len(refused)+gate.held() < attack {
		select {
		case a := <-answers:
			refused = append(refused, a)
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("after a minute %d answered, %d held, of %d", len(refused), gate.held(), attack)
		}
	}
	if got := gate.held(); got != admitted {
		t.Errorf("%d batches in flight at once, want %d (budget %d bytes, %d bytes each)", got, admitted, budget, size)
	}
	for i, a := range refused {
		if a.err != nil {
			t.Errorf("refused request %d: %v", i, a.err)
			continue
		}
		var p problemDoc
		perr := json.Unmarshal(a.body, &p)
		secs, rerr := strconv.Atoi(a.retryAfter)
		if a.status != http.StatusServiceUnavailable || a.contentType != "application/problem+json" || perr != nil ||
			p.Type != apiclient.TypeUnavailable || p.Status != 503 || rerr != nil || secs < 1 {
			t.Errorf("refused request %d: %d %s Retry-After %q %s; want 503 problem+json of type %s with Retry-After ≥ 1",
				i, a.status, a.contentType, a.retryAfter, a.body, apiclient.TypeUnavailable)
		}
	}

	// Compliant traffic is answered while the flood holds the large share.
	single := mustJSON(t, PredictRequest{Merchant: "m1", Customer: "c", Features: featureVec(1, 1), AsOf: "2026-11-27T00:00:00Z"})
	for name, token := range map[string]string{"another partner": good, "the merchant": f.tokens["m1"]} {
		if a := post("/v1/predict", token, single); a.err != nil || a.status != http.StatusOK {
			t.Errorf("%s's single prediction during the flood: %d %v %s", name, a.status, a.err, a.body)
		}
	}
	metrics := scrape(t, srv.MetricsHandler())
	if got, want := metrics["kairos_admission_inflight_bytes"], float64(int64(admitted)*size); got != want {
		t.Errorf("kairos_admission_inflight_bytes %v while %d batches are held, want %v", got, admitted, want)
	}
	if got := metrics["kairos_admission_peak_bytes"]; got > budget {
		t.Errorf("kairos_admission_peak_bytes %v, over the budget %d", got, budget)
	}
	if got, want := metrics[`kairos_admission_refused_total{class="large"}`], float64(attack-admitted); got != want {
		t.Errorf("kairos_admission_refused_total{class=\"large\"} %v, want %v", got, want)
	}

	close(gate.open)
	for range admitted {
		a := <-answers
		var bp BatchPrediction
		if a.err != nil || a.status != http.StatusOK || json.Unmarshal(a.body, &bp) != nil || len(bp.Results) != 40 {
			t.Errorf("admitted batch: %d %v, want 200 with 40 results", a.status, a.err)
		}
	}
	// A handler gives its bytes back when it returns, which may be just
	// after its caller has read the answer.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		got := scrape(t, srv.MetricsHandler())["kairos_admission_inflight_bytes"]
		if got == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kairos_admission_inflight_bytes %v a minute after every batch was answered, want 0", got)
		}
	}
	if a := post("/v1/predict:batch", crm, body); a.status != http.StatusOK {
		t.Errorf("a batch after the flood: %d %v, want 200", a.status, a.err)
	}
}

// scrape returns the unlabelled and labelled samples of h's Prometheus text.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics: %d", rec.Code)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
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

func TestCharge(t *testing.T) {
	for _, tt := range []struct {
		contentLength, limit, want int64
	}{
		{0, 1 << 20, 0},             // no body
		{1000, 1 << 20, 1000},       // declared
		{5 << 20, 1 << 20, 1 << 20}, // over the limit: refused by the handler before more is read
		{-1, 1 << 20, 1 << 20},      // chunked: the most it can read
		{-1, 0, 0},                  // a route without a body
	} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.ContentLength = tt.contentLength
		if got := charge(r, tt.limit); got != tt.want {
			t.Errorf("charge(Content-Length %d, limit %d) = %d, want %d", tt.contentLength, tt.limit, got, tt.want)
		}
	}
}

// TestAdmissionBudgetMustHoldABatch: a budget whose large share cannot hold
// one full batch body would refuse every batch; NewServer says so.
func TestAdmissionBudgetMustHoldABatch(t *testing.T) {
	f := newPredictFixture(t, PredictOptions{})
	_, err := NewServer(Options{Service: f.svc, Verifier: verifierForTest(t, f.jwks), Issuer: f.issuer, JWKS: f.jwks,
		MaxInflightBytes: 16 << 20}) // 12 MiB for large requests; batches may be 32 MiB
	if err == nil || !regexp.MustCompile(`largest body limit 33554432`).MatchString(err.Error()) {
		t.Errorf("got %v, want an error naming the 32 MiB batch limit", err)
	}
}
