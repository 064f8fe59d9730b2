package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/store"
)

// post sends body to path on the loopback server ts with token and returns
// the status and the body.
func post(t *testing.T, ts *httptest.Server, path, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// get is post's GET.
func get(t *testing.T, ts *httptest.Server, path, token string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s (%v)", path, res.StatusCode, b, err)
	}
	return b
}

// purchases is events of one purchase per amount, a day apart, before the
// fixture's clock.
func purchases(amounts ...float64) []EventInput {
	asOf := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	evs := make([]EventInput, len(amounts))
	for i := range amounts {
		evs[i] = EventInput{Time: asOf.Add(-time.Duration(i+1) * 24 * time.Hour).Format(time.RFC3339), Kind: "purchase", Amount: &amounts[i]}
	}
	return evs
}

func filled(v float64) []float64 {
	x := featureVec(0, 0)
	for j := range x {
		x[j] = v
	}
	return x
}

// TestPredictOverflowRefused reproduces issue 10 item 2 over loopback HTTP:
// purchases of 1e308 (or two of 9e307), or a feature vector of 1e308, made a
// feature +Inf and the answer a 500 ("json: unsupported value: +Inf"), and
// one such customer failed its whole batch. Now an amount outside
// [−model.MaxAmount, model.MaxAmount] or a feature outside ±MaxFeatureValue
// is a 422 naming the field; in a batch that customer's own problem entry,
// the others answered. A model whose standardisation overflows on in-range
// inputs (a scale of 5e-324) is refused the same way, never a 500.
func TestPredictOverflowRefused(t *testing.T) {
	f := newPredictFixture(t, PredictOptions{})
	tiny := testModel(t, logit(0.01))
	tiny.Std.Scale[5] = 5e-324 // z_5 = (x_5 − 1)/5e-324 = +Inf for x_5 = 2
	f.svc.versions[2] = versionOf(t, 2, tiny)
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	token := f.tokens["m1"]

	single := []struct {
		name  string
		req   PredictRequest
		field string // named in the 422's detail
	}{
		{"two purchases of 1e308", PredictRequest{Events: purchases(1e308, 1e308)}, `"events[0].amount"`},
		{"two of 9e307", PredictRequest{Events: purchases(9e307, 9e307)}, `"events[0].amount"`},
		{"one amount just above the maximum", PredictRequest{Events: purchases(5, math.Nextafter(model.MaxAmount, math.Inf(1)))}, `"events[1].amount"`},
		{"a negative 1e308", PredictRequest{Events: purchases(-1e308, 3)}, `"events[0].amount"`},
		{"features of 1e308", PredictRequest{Features: filled(1e308)}, `"features[0]"`},
		{"one feature of -1e7", PredictRequest{Features: func() []float64 { x := featureVec(1, 1); x[9] = -1e7; return x }()}, `"features[9]"`},
		{"standardisation overflows", PredictRequest{Features: featureVec(1, 2), ModelVersion: 2}, `"features"`},
	}
	for _, tt := range single {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Merchant, tt.req.Customer = "m1", "c-1"
			code, body := post(t, ts, "/v1/predict", token, mustJSON(t, tt.req))
			var p problemDoc
			if err := json.Unmarshal(body, &p); err != nil || code != 422 || p.Status != 422 || !strings.Contains(p.Detail, tt.field) {
				t.Fatalf("got %d %s, want a 422 problem naming %s", code, body, tt.field)
			}
		})
	}

	// The largest accepted amounts give finite features and a prediction.
	code, body := post(t, ts, "/v1/predict", token, mustJSON(t, PredictRequest{Merchant: "m1", Customer: "c-1",
		Events: purchases(model.MaxAmount, model.MaxAmount, -model.MaxAmount)}))
	if code != 200 {
		t.Fatalf("amounts of ±MaxAmount: got %d %s, want 200", code, body)
	}

	// One batch holding every bad customer between good ones.
	cs := []BatchCustomer{
		{Customer: "ok-0", Features: featureVec(2.5, 3)},
		{Customer: "bad-1", Events: purchases(1e308, 1e308)},
		{Customer: "ok-2", Events: purchases(20, 30)},
		{Customer: "bad-3", Features: filled(1e308)},
		{Customer: "bad-4", Events: purchases(9e307, 9e307)},
		{Customer: "ok-5", Features: featureVec(0.5, 1)},
	}
	want := map[int]string{1: `"customers[1].events[0].amount"`, 3: `"customers[3].features[0]"`, 4: `"customers[4].events[0].amount"`}
	code, body = post(t, ts, "/v1/predict:batch", token, mustJSON(t, PredictBatchRequest{Merchant: "m1", Customers: cs}))
	var bp batchAnswer
	if err := json.Unmarshal(body, &bp); err != nil || code != 200 || len(bp.Results) != len(cs) {
		t.Fatalf("batch: got %d %s (%v), want 200 with %d results", code, body, err, len(cs))
	}
	for i, r := range bp.Results {
		if r.Customer != cs[i].Customer {
			t.Errorf("result %d is for %q, want %q", i, r.Customer, cs[i].Customer)
		}
		if field, bad := want[i]; bad {
			if r.Problem == nil || r.Problem.Status != 422 || r.Problem.Type != typeInvalidRequest ||
				!strings.Contains(r.Problem.Detail, field) || r.Error != r.Problem.Detail || r.Within != nil {
				t.Errorf("result %d: %+v, want a 422 problem naming %s and no prediction", i, r, field)
			}
		} else if r.Problem != nil || r.Within == nil || r.Explanation == nil {
			t.Errorf("result %d: %+v, want a prediction", i, r)
		}
	}
	// The closed form of testModel for ok-0: z = (1, 4), score −0.4 + 1.2.
	if s := bp.Results[0].Explanation; s == nil || !near(s.Score, 0.8) {
		t.Errorf("ok-0's score: got %+v, want 0.8", s)
	}

	// The overflowing model: the customer's problem entry, not the batch's 500.
	code, body = post(t, ts, "/v1/predict:batch", token, mustJSON(t, PredictBatchRequest{Merchant: "m1", ModelVersion: 2,
		Customers: []BatchCustomer{{Customer: "a", Features: featureVec(1, 2)}, {Customer: "b", Features: featureVec(1, 1)}}}))
	bp = batchAnswer{}
	if err := json.Unmarshal(body, &bp); err != nil || code != 200 || len(bp.Results) != 2 {
		t.Fatalf("overflowing model: got %d %s (%v), want 200", code, body, err)
	}
	if r := bp.Results[0]; r.Problem == nil || r.Problem.Status != 422 || !strings.Contains(r.Problem.Detail, `"customers[0].features"`) {
		t.Errorf("overflowing customer: %+v, want a 422 problem naming customers[0].features", r)
	}
	if r := bp.Results[1]; r.Problem != nil || r.Within == nil {
		t.Errorf("in-range customer: %+v, want a prediction", r)
	}
}

// batchAnswer is a batch answer decoded on the test's own terms.
type batchAnswer struct {
	Results []struct {
		Customer    string
		Problem     *problemDoc
		Error       string
		Within      *Within
		Explanation *Explanation
	}
}

// lockedBuffer is a bytes.Buffer the server's handlers may write concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// TestPredictCanaryNeverStored reproduces issue 10 item 3: a predict for
// customer "raw-email:alice@example.com" with only future events stored
// `422 customer "raw-email:…": …` in the append-only audit log, the server
// log, GET /v1/audit and the export. A distinctive id is sent through every
// predict error path (and a success) against the real server on loopback,
// with the real audit log on SQLite; it must appear in no sink: the
// database files, GET /v1/audit, the audit export, the server's log,
// /metrics, nor any answer beyond the documented echo of the caller's own
// id ("customer" of a prediction or of a batch entry). The audit log keeps
// it findable as its HMAC.
func TestPredictCanaryNeverStored(t *testing.T) {
	const canary = "raw-email:alice-7f3a9c@example.com"
	f := newPredictFixture(t, PredictOptions{})
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "kairos.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{0x5a}, 32)
	_, signer, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	alog, err := audit.New(ctx, audit.Options{Store: st, HMACKey: key, SigningKey: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	var logs lockedBuffer
	srv, err := NewServer(Options{
		Service: f.svc, Verifier: verifierForTest(t, f.jwks), Issuer: f.issuer, JWKS: f.jwks,
		Logger: testLogger(&logs), Audit: st,
		Predict: PredictOptions{Audit: alog, Now: f.clock.Now, MayQuery: func(p, m string) bool { return p == "crm" && m == "m1" }},
	})
	if err != nil {
		t.Fatal(err)
	}
	tiny := testModel(t, logit(0.01))
	tiny.Std.Scale[5] = 5e-324
	f.svc.versions[2] = versionOf(t, 2, tiny)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)

	future := []EventInput{{Time: "2027-01-01T00:00:00Z", Kind: "view"}}
	one := func(edit func(*PredictRequest)) []byte {
		r := PredictRequest{Merchant: "m1", Customer: canary, Features: featureVec(1, 1)}
		edit(&r)
		return mustJSON(t, r)
	}
	paths := []struct {
		name, path, token string
		body              []byte
		echoes            int // documented echoes of the id in the answer
	}{
		{"future-only events", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Features, r.Events = nil, future }), 0},
		{"bad event time", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Features, r.Events = nil, []EventInput{{Time: "soon", Kind: "view"}} }), 0},
		{"bad event kind", "/v1/predict", "m1", one(func(r *PredictRequest) {
			r.Features, r.Events = nil, []EventInput{{Time: "2026-01-01T00:00:00Z", Kind: "buy"}}
		}), 0},
		{"overflowing amounts", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Features, r.Events = nil, purchases(1e308, 1e308) }), 0},
		{"overflowing features", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Features = filled(1e308) }), 0},
		{"overflowing model", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Features, r.ModelVersion = featureVec(1, 2), 2 }), 0},
		{"short vector", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Features = []float64{1} }), 0},
		{"events and features", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Events = future }), 0},
		{"no input", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Features = nil }), 0},
		{"unknown merchant", "/v1/predict", "partner", one(func(r *PredictRequest) { r.Merchant = "m404" }), 0},
		{"other merchant", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Merchant = "m2" }), 0},
		{"admin may not predict", "/v1/predict", "admin", one(func(*PredictRequest) {}), 0},
		{"unknown version", "/v1/predict", "m1", one(func(r *PredictRequest) { r.ModelVersion = 9 }), 0},
		{"bad as_of", "/v1/predict", "m1", one(func(r *PredictRequest) { r.AsOf = "tomorrow" }), 0},
		{"id too long", "/v1/predict", "m1", one(func(r *PredictRequest) { r.Customer = strings.Repeat(canary, 10) }), 0},
		{"unknown field", "/v1/predict", "m1", []byte(`{"merchant":"m1","customer":"` + canary + `","featurs":[1]}`), 0},
		{"id as an unknown key", "/v1/predict", "m1", []byte(`{"merchant":"m1","customer":"c-1","` + canary + `":[1]}`), 0},
		{"id as an unknown event key", "/v1/predict", "m1", []byte(`{"merchant":"m1","customer":"c-1","events":[{"time":"2026-01-01T00:00:00Z","kind":"view","` + canary + `":1}]}`), 0},
		{"truncated", "/v1/predict", "m1", []byte(`{"merchant":"m1","customer":"` + canary + `","features":[1,`), 0},
		{"answered", "/v1/predict", "m1", one(func(*PredictRequest) {}), 1},
		{"batch", "/v1/predict:batch", "m1", mustJSON(t, PredictBatchRequest{Merchant: "m1", Customers: []BatchCustomer{
			{Customer: canary, Events: future},
			{Customer: canary, Events: purchases(1e308)},
			{Customer: canary, Features: filled(1e308)},
			{Customer: canary, Features: []float64{1}},
			{Customer: canary, Events: []EventInput{{Time: "soon", Kind: "view"}}},
			{Customer: canary},
			{Customer: canary, Features: featureVec(1, 1)},
		}}), 7},
		{"batch, overflowing model", "/v1/predict:batch", "m1", mustJSON(t, PredictBatchRequest{Merchant: "m1", ModelVersion: 2,
			Customers: []BatchCustomer{{Customer: canary, Features: featureVec(1, 2)}}}), 1},
		{"batch, bad as_of", "/v1/predict:batch", "m1", mustJSON(t, PredictBatchRequest{Merchant: "m1", AsOf: "x",
			Customers: []BatchCustomer{{Customer: canary, Features: featureVec(1, 1)}}}), 0},
		{"batch, other merchant", "/v1/predict:batch", "m1", mustJSON(t, PredictBatchRequest{Merchant: "m2",
			Customers: []BatchCustomer{{Customer: canary, Features: featureVec(1, 1)}}}), 0},
	}
	for _, p := range paths {
		code, body := post(t, ts, p.path, f.tokens[p.token], p.body)
		if code >= 500 {
			t.Errorf("%s: got %d %s, want no 5xx", p.name, code, body)
		}
		if got := bytes.Count(body, []byte(canary)); got != p.echoes {
			t.Errorf("%s: answer %d %s holds the id %d times, want %d (the documented echo only)", p.name, code, body, got, p.echoes)
		}
	}
	if n := alog.Stats().Entries; n < uint64(len(paths)) {
		t.Fatalf("%d audit entries appended, want at least %d (one per call)", n, len(paths))
	}
	if err := alog.Close(); err != nil { // flush and checkpoint
		t.Fatal(err)
	}

	var export bytes.Buffer
	if err := audit.Export(ctx, st, &export); err != nil {
		t.Fatal(err)
	}
	sinks := map[string][]byte{
		"server log":     logs.Bytes(),
		"GET /v1/audit":  get(t, ts, "/v1/audit?limit=1000", f.tokens["compliance"]),
		"audit export":   export.Bytes(),
		"GET /metrics":   get(t, ts, "/metrics", f.tokens["compliance"]),
		"database files": dirBytes(t, dir),
	}
	for name, b := range sinks {
		if len(b) == 0 {
			t.Errorf("%s: empty, nothing checked", name)
		}
		if i := bytes.Index(b, []byte(canary)); i >= 0 {
			t.Errorf("%s holds the customer id in clear: …%s…", name, b[max(0, i-120):min(len(b), i+len(canary)+40)])
		}
	}
	// A reviewer who knows the id finds it as its HMAC.
	if h := audit.HashIdentifier(key, canary); !bytes.Contains(export.Bytes(), []byte(h)) {
		t.Errorf("audit export does not hold %s, the id's HMAC", h)
	}
}

// dirBytes is the concatenation of every file in dir (the database and its
// WAL and shared-memory files).
func dirBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(all, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestPredictInvalidUTF8Refused reproduces issue 10 item 5's id rewrite:
// encoding/json turns invalid UTF-8 and unpaired surrogate escapes into
// U+FFFD, so "c\xff" and "c\xfe" were served as one customer "c\uFFFD". Both
// are now 400 naming the byte; a surrogate pair and a U+FFFD the caller
// really sent are accepted.
func TestPredictInvalidUTF8Refused(t *testing.T) {
	f := newPredictFixture(t, PredictOptions{})
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	x := string(mustJSON(t, featureVec(1, 1)))
	body := func(route, id string) []byte {
		if route == "/v1/predict" {
			return []byte(`{"merchant":"m1","customer":"` + id + `","features":` + x + `}`)
		}
		return []byte(`{"merchant":"m1","customers":[{"customer":"ok","features":` + x + `},{"customer":"` + id + `","features":` + x + `}]}`)
	}
	tests := []struct {
		name, id string
		want     int
		customer string // the id the answer echoes
	}{
		{"raw 0xff", "c\xff", 400, ""},
		{"truncated sequence", "c\xe2\x82", 400, ""},
		{"lone high surrogate", `c\ud83d`, 400, ""},
		{"lone low surrogate", `c\ude00x`, 400, ""},
		{"high then non-surrogate", `c\ud83d\u0041`, 400, ""},
		{"escaped backslash before u", `c\\ud83d`, 200, `c\ud83d`},
		{"surrogate pair", `c\ud83d\ude00`, 200, "c😀"},
		{"U+FFFD sent", "c\uFFFD", 200, "c\uFFFD"},
		{"U+FFFD escaped", `c\ufffd`, 200, "c\uFFFD"},
	}
	for _, route := range []string{"/v1/predict", "/v1/predict:batch"} {
		for _, tt := range tests {
			t.Run(route+"/"+tt.name, func(t *testing.T) {
				code, b := post(t, ts, route, f.tokens["m1"], body(route, tt.id))
				if code != tt.want {
					t.Fatalf("got %d %s, want %d", code, b, tt.want)
				}
				if code == 400 {
					var p problemDoc
					if err := json.Unmarshal(b, &p); err != nil || !strings.Contains(p.Detail, "not valid UTF-8") {
						t.Errorf("problem %s, want one saying the string is not valid UTF-8", b)
					}
					return
				}
				var got struct {
					Customer string
					batchAnswer
				}
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
				if len(got.Results) == 2 {
					got.Customer = got.Results[1].Customer
				}
				if got.Customer != tt.customer {
					t.Errorf("customer %q, want %q", got.Customer, tt.customer)
				}
			})
		}
	}
}

// TestPredictAuditReasonStaysUTF8: a refused call's audit reason is its
// problem detail cut to 512 bytes. The detail echoes text of the caller's
// (an as_of that is not a time, a merchant id); cut in the middle of a
// multi-byte character it was not UTF-8, which the audit log refuses, so the
// call was answered 503 "audit log unavailable" and left no entry: a partner
// could make its bad requests vanish from the log. The reason is now cut at
// a character boundary: the call is a 400 and its entry says so.
func TestPredictAuditReasonStaysUTF8(t *testing.T) {
	// Against the real audit log, which refuses a reason that is not UTF-8.
	ctx := context.Background()
	real, st := realAuditFixture(t)
	body := mustJSON(t, PredictRequest{Merchant: "m1", Customer: "c-1", Features: featureVec(1, 1), AsOf: "a" + strings.Repeat("é", 300)})
	if rec := real.do(t, "POST", "/v1/predict", real.tokens["partner"], "application/json", body); rec.Code != 400 {
		t.Errorf("with the real audit log: got %d, want 400: %s", rec.Code, rec.Body)
	}
	es, err := st.AuditEntries(ctx, 1, 10)
	if err != nil || len(es) != 1 || es[0].Outcome != audit.OutcomeError || !strings.HasPrefix(es[0].Reason, "400 ") {
		t.Errorf("audit entries %+v (%v), want the refused call", es, err)
	}

	f := newPredictFixture(t, PredictOptions{})
	for _, asOf := range []string{"a" + strings.Repeat("é", 300), strings.Repeat("é", 300), "ab" + strings.Repeat("€", 200)} {
		body := mustJSON(t, PredictRequest{Merchant: "m1", Customer: "c-1", Features: featureVec(1, 1), AsOf: asOf})
		rec := f.do(t, "POST", "/v1/predict", f.tokens["partner"], "application/json", body)
		if rec.Code != 400 {
			t.Errorf("as_of of %d bytes: got %d, want 400: %s", len(asOf), rec.Code, rec.Body)
		}
		last := f.aud.last(t)
		if !utf8.ValidString(last.Reason) || !strings.HasPrefix(last.Reason, "400 field \"as_of\"") || len(last.Reason) > 512 {
			t.Errorf("as_of of %d bytes: audit reason of %d bytes, valid UTF-8 %v: %.40q…", len(asOf), len(last.Reason), utf8.ValidString(last.Reason), last.Reason)
		}
	}
}

// TestPredictBatchRefusedEntryBounded (privacy.md §16, round 8): a batch
// refused as a whole (a role that may not predict, a merchant the partner is
// not granted, a bad as_of) served nothing, yet its audit entry named every
// customer of the body, one HMAC each: 1,000 customers made a ~90 kB entry
// in the never-pruned log per refused request, and admin and compliance
// tokens, which have no request rate, could send them as fast as the server
// answers. Such an entry now counts the customers and names none.
func TestPredictBatchRefusedEntryBounded(t *testing.T) {
	f := newPredictFixture(t, PredictOptions{})
	cs := make([]BatchCustomer, DefaultMaxBatch)
	for i := range cs {
		cs[i] = BatchCustomer{Customer: fmt.Sprintf("pseudo-%d", i), Features: featureVec(1, 1)}
	}
	for _, tt := range []struct {
		name, token, merchant, asOf string
		status                      int
		outcome                     audit.Outcome
	}{
		{"compliance", "compliance", "m1", "", 403, audit.OutcomeDenied},
		{"admin", "admin", "m1", "", 403, audit.OutcomeDenied},
		{"partner, merchant not granted", "crm2", "m1", "", 403, audit.OutcomeDenied},
		{"partner, bad as_of", "partner", "m1", "yesterday", 400, audit.OutcomeError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := mustJSON(t, PredictBatchRequest{Merchant: tt.merchant, Customers: cs, AsOf: tt.asOf})
			rec := f.do(t, "POST", "/v1/predict:batch", f.tokens[tt.token], "application/json", body)
			if rec.Code != tt.status {
				t.Fatalf("got %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			r := f.aud.last(t)
			if r.Outcome != tt.outcome || r.Action != "predict.batch" {
				t.Fatalf("audit record %s %s, want predict.batch %s", r.Action, r.Outcome, tt.outcome)
			}
			if len(r.Identifiers) != 1 || r.Identifiers["merchant"] != tt.merchant {
				t.Errorf("refused batch: %d identifiers, want only the merchant", len(r.Identifiers))
			}
			if got := r.Details["customers"]; got != "1000" {
				t.Errorf("details customers = %q, want 1000", got)
			}
		})
	}
}

// TestPredictDuplicateKeysRefused (privacy.md §16, round 8): a body holding
// a key twice, or two keys that differ only in case, was decoded by
// encoding/json, which keeps the last of them and folds case: the server
// authorized, predicted and audited for merchant m2 while every reader that
// keeps the first key (a gateway's policy, a request log, jq's first match)
// saw m1. Such a body is now 400, naming the key.
func TestPredictDuplicateKeysRefused(t *testing.T) {
	f := newPredictFixture(t, PredictOptions{})
	vec := string(mustJSON(t, featureVec(1, 1)))
	for _, tt := range []struct{ name, route, body, key string }{
		{"merchant twice", "/v1/predict", `{"merchant":"m1","customer":"c","features":` + vec + `,"merchant":"m2"}`, `"merchant"`},
		{"merchant in two cases", "/v1/predict", `{"merchant":"m1","customer":"c","features":` + vec + `,"MERCHANT":"m2"}`, `"MERCHANT"`},
		{"customer twice", "/v1/predict", `{"merchant":"m1","customer":"c","customer":"d","features":` + vec + `}`, `"customer"`},
		{"batch merchant twice", "/v1/predict:batch", `{"merchant":"m1","customers":[{"customer":"c","features":` + vec + `}],"merchant":"m2"}`, `"merchant"`},
		{"batch customer twice", "/v1/predict:batch", `{"merchant":"m1","customers":[{"customer":"c","Customer":"d","features":` + vec + `}]}`, `"customers[0].Customer"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(t, "POST", tt.route, f.tokens["crm-all"], "application/json", []byte(tt.body))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("got %d, want 400: %s", rec.Code, rec.Body)
			}
			if p := problemOf(t, rec); !strings.Contains(p.Detail, tt.key) || !strings.Contains(p.Detail, "twice") {
				t.Errorf("detail %q, want it to name %s twice", p.Detail, tt.key)
			}
		})
	}
	// The same keys once each are served.
	rec := f.do(t, "POST", "/v1/predict", f.tokens["crm-all"], "application/json", []byte(`{"merchant":"m2","customer":"c","features":`+vec+`}`))
	if rec.Code != http.StatusOK {
		t.Fatalf("plain body: got %d: %s", rec.Code, rec.Body)
	}
}

// TestPredictByOverseersRateLimited (privacy.md §16, round 8): admin and
// compliance tokens have no request rate, and the predict routes refuse
// them with an audited denial (by design: compliance sees the attempt), so
// a compliance token, a read-only credential, appended one entry to the
// never-pruned log per request at whatever rate it could send. Their predict
// calls are now held to a bucket per token subject (DefaultMerchantRate,
// DefaultMerchantBurst): beyond the burst they are 429, unaudited, as a
// partner's are.
func TestPredictByOverseersRateLimited(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	aud := &recAuditor{}
	svc := &predictService{versions: map[int]protocol.ModelVersion{1: versionOf(t, 1, testModel(t, logit(0.01)))}, active: 1}
	svc.merchants = []aggregator.Merchant{{ID: "m1", TimeZone: "UTC"}}
	f := newFixture(t, svc, Options{Now: clock.Now, Predict: PredictOptions{Audit: aud, Now: clock.Now,
		MayQuery: func(p, m string) bool { return p == "crm" && m == "m1" }}})
	body := mustJSON(t, PredictRequest{Merchant: "m1", Customer: "c", Features: featureVec(1, 1)})
	for _, token := range []string{"compliance", "admin"} {
		before := aud.count()
		denied, limited := 0, 0
		for range DefaultMerchantBurst + 50 {
			switch rec := f.do(t, "POST", "/v1/predict", f.tokens[token], "application/json", body); rec.Code {
			case http.StatusForbidden:
				denied++
			case http.StatusTooManyRequests:
				limited++
			default:
				t.Fatalf("%s: got %d: %s", token, rec.Code, rec.Body)
			}
		}
		if denied != DefaultMerchantBurst || limited != 50 {
			t.Errorf("%s: %d denied, %d rate-limited; want %d and 50 (the clock stands still)", token, denied, limited, DefaultMerchantBurst)
		}
		if got := aud.count() - before; got != DefaultMerchantBurst {
			t.Errorf("%s: %d audit entries, want %d (one per denial, none per 429)", token, got, DefaultMerchantBurst)
		}
	}
	// The partner's own bucket is its grant's, untouched by the overseers'.
	if rec := f.do(t, "POST", "/v1/predict", f.tokens["partner"], "application/json", body); rec.Code != http.StatusOK {
		t.Errorf("partner: got %d: %s", rec.Code, rec.Body)
	}
}

// TestPredictReasonNoCallerProse (privacy.md §16, round 8): a refused
// prediction's audit reason is its problem detail, which quoted the
// caller's merchant, as_of, event time or event kind whole (cut at 512
// bytes): a partner wrote sentences of its choosing into the compliance log
// with every refused call ("… may not predict for merchant \"reviewed and
// approved by the compliance officer, no action needed\""). A value is now
// echoed only when it is short and made of the characters ids and times
// use; otherwise the detail says how long it was and names the field.
func TestPredictReasonNoCallerProse(t *testing.T) {
	f := newPredictFixture(t, PredictOptions{})
	const prose = "reviewed and approved by the compliance officer, no action needed"
	ev := func(tm, kind string) []EventInput { return []EventInput{{Time: tm, Kind: kind}} }
	for _, tt := range []struct {
		name  string
		req   PredictRequest
		field string
	}{
		{"merchant", PredictRequest{Merchant: prose, Customer: "c", Features: featureVec(1, 1)}, "merchant"},
		{"as_of", PredictRequest{Merchant: "m1", Customer: "c", Features: featureVec(1, 1), AsOf: prose}, `"as_of"`},
		{"event time", PredictRequest{Merchant: "m1", Customer: "c", Events: ev(prose, "view")}, `"events[0]"`},
		{"event kind", PredictRequest{Merchant: "m1", Customer: "c", Events: ev("2026-11-01T00:00:00Z", prose)}, `"events[0]"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(t, "POST", "/v1/predict", f.tokens["partner"], "application/json", mustJSON(t, tt.req))
			if rec.Code != http.StatusForbidden && rec.Code != http.StatusBadRequest {
				t.Fatalf("got %d, want 403 or 400: %s", rec.Code, rec.Body)
			}
			r := f.aud.last(t)
			if strings.Contains(r.Reason, "approved") || !strings.Contains(r.Reason, tt.field) {
				t.Errorf("audit reason %q: want it to name %s without the caller's text", r.Reason, tt.field)
			}
		})
	}
	// A short id or time is still echoed, for the caller's sake.
	rec := f.do(t, "POST", "/v1/predict", f.tokens["partner"], "application/json",
		mustJSON(t, PredictRequest{Merchant: "m1", Customer: "c", Features: featureVec(1, 1), AsOf: "2026-13-01T00:00:00Z"}))
	if p := problemOf(t, rec); rec.Code != http.StatusBadRequest || !strings.Contains(p.Detail, `"2026-13-01T00:00:00Z"`) {
		t.Errorf("bad short as_of: %d %q, want 400 echoing it", rec.Code, p.Detail)
	}
}
