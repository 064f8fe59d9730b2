package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
)

func decodeInto(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, body)
	}
}

// TestComplianceDataMatchesLedger reads GET /v1/compliance and checks its
// budgets against GET /v1/budgets (the service's ledger heads, a second
// path to the same numbers), its models against GET /v1/models, and its
// verification against audit.Verify run here over GET /v1/audit/export.
func TestComplianceDataMatchesLedger(t *testing.T) {
	f := auditFixture(t)
	src := withReports(f)
	var got complianceData
	rec := f.do(t, "GET", "/v1/compliance", f.tokens["compliance"], "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/compliance: %d %s", rec.Code, rec.Body)
	}
	decodeInto(t, rec.Body.Bytes(), &got)

	var heads budgetList
	decodeInto(t, f.do(t, "GET", "/v1/budgets", f.tokens["admin"], "", nil).Body.Bytes(), &heads)
	if len(got.Budgets) != len(heads.Budgets) || len(got.Budgets) == 0 {
		t.Fatalf("budgets: got %d, /v1/budgets has %d", len(got.Budgets), len(heads.Budgets))
	}
	for i, b := range got.Budgets {
		h := heads.Budgets[i]
		if b.Merchant != h.Merchant || b.Cap != h.Cap || b.Releases != h.Releases || b.Releases != len(b.Points) {
			t.Errorf("budget %d: got %s cap %v %d releases (%d points), /v1/budgets %s cap %v %d", i, b.Merchant, b.Cap, b.Releases, len(b.Points), h.Merchant, h.Cap, h.Releases)
		}
		// The head stores the ε the acceptance computed; the report recomputes it from the rows.
		if d := b.Epsilon - h.Epsilon; d > 1e-9 || d < -1e-9 || (b.Releases > 0 && b.Points[len(b.Points)-1].Epsilon != b.Epsilon) {
			t.Errorf("budget %s: got ε %v (last point %v), /v1/budgets ε %v", b.Merchant, b.Epsilon, b.Points, h.Epsilon)
		}
	}
	var models modelList
	decodeInto(t, f.do(t, "GET", "/v1/models", f.tokens["admin"], "", nil).Body.Bytes(), &models)
	if len(got.Models) != len(models.Models) || got.PolicyHash != f.policy.Hash() {
		t.Errorf("models: got %d and policy %s, /v1/models has %d and the policy is %s", len(got.Models), got.PolicyHash, len(models.Models), f.policy.Hash())
	}

	rec = f.do(t, "GET", "/v1/audit/export", f.tokens["compliance"], "", nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/jsonl" {
		t.Fatalf("GET /v1/audit/export: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	snap, err := audit.ReadExport(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := audit.Verify(context.Background(), snap, src.CheckpointKey)
	if err != nil {
		t.Fatalf("the export does not verify: %v", err)
	}
	if !got.Audit.OK || got.Audit.Entries != res.Entries || got.Audit.Checkpoints != res.Checkpoints || got.Audit.Head != res.Head.String() {
		t.Errorf("verification: got %+v, the export verified here: %d entries, %d checkpoints, head %s", got.Audit, res.Entries, res.Checkpoints, res.Head)
	}
	if got.Witness.Configured {
		t.Errorf("witness: got %+v, want not configured", got.Witness)
	}
}

// TestComplianceDataWitness checks the witness status: the witness's
// checkpoints are counted and verified with the log; a witness that cannot
// be read is reported, not fatal; a witness checkpoint the log contradicts
// fails the verification.
func TestComplianceDataWitness(t *testing.T) {
	f := auditFixture(t)
	withReports(f)
	// The witness holds a checkpoint over the log's last entry, signed here
	// as a witness copies it out.
	es := stored(t, f)
	sign := func(c audit.Checkpoint) audit.Checkpoint {
		c.Signature = ed25519.Sign(f.keys.Checkpoint, audit.CheckpointMessage(&c))
		return c
	}
	last := sign(audit.Checkpoint{LogID: "kairos", Seq: es[len(es)-1].Seq, Hash: es[len(es)-1].Hash, Time: time.Now().UTC().Truncate(time.Millisecond)})
	cps := []audit.Checkpoint{last}
	read := func() complianceData {
		t.Helper()
		var got complianceData
		rec := f.do(t, "GET", "/v1/compliance", f.tokens["compliance"], "", nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /v1/compliance: %d %s", rec.Code, rec.Body)
		}
		decodeInto(t, rec.Body.Bytes(), &got)
		return got
	}
	f.srv.witness = func(context.Context) ([]audit.Checkpoint, error) { return cps, nil }
	got := read()
	if !got.Witness.Configured || got.Witness.Checkpoints != len(cps) || got.Witness.LastSeq != last.Seq || !got.Audit.OK {
		t.Errorf("witness holding the log's checkpoints: got %+v, audit ok %v; want %d checkpoints, last at %d, ok", got.Witness, got.Audit.OK, len(cps), last.Seq)
	}

	f.srv.witness = func(context.Context) ([]audit.Checkpoint, error) {
		return nil, errors.New("open witness.jsonl: permission denied")
	}
	if got := read(); got.Witness.Error != "open witness.jsonl: permission denied" || !got.Audit.OK {
		t.Errorf("unreadable witness: got %+v", got.Witness)
	}

	// A checkpoint signed by the right key over a hash the log does not hold.
	forged := last
	forged.Hash[0] ^= 1
	forged = sign(forged)
	f.srv.witness = func(context.Context) ([]audit.Checkpoint, error) { return []audit.Checkpoint{forged}, nil }
	if got := read(); got.Audit.OK || got.Audit.Failure == "" || !strings.Contains(got.Audit.Line, "FAILED") {
		t.Errorf("witness contradicting the log: got %+v, want a failed verification", got.Audit)
	}
}

// TestIssueToken issues a partner token as admin, uses it, and finds the
// issue in the audit log under the token id's HMAC; bad grants are 400 and
// other roles 403.
func TestIssueToken(t *testing.T) {
	f := auditFixture(t)
	f.srv.tokenAudit = f.svc
	rec := f.do(t, "POST", "/v1/tokens", f.tokens["admin"], "application/json",
		[]byte(`{"subject":"crm-app","role":"partner","merchants":["m1"],"ttl_seconds":7200}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("issue: %d %s", rec.Code, rec.Body)
	}
	var it protocol.IssuedToken
	decodeInto(t, rec.Body.Bytes(), &it)
	if d := time.Until(it.ExpiresAt); d < 7190*time.Second || d > 7201*time.Second {
		t.Errorf("expires_at %v: %v from now, want 2 h", it.ExpiresAt, d)
	}
	var s protocol.Session
	rec = f.do(t, "GET", "/v1/session", it.Token, "", nil)
	decodeInto(t, rec.Body.Bytes(), &s)
	if s.Subject != "crm-app" || s.Role != "partner" || len(s.Merchants) != 1 || s.Merchants[0] != "m1" || s.TokenID != it.TokenID || !s.ExpiresAt.Equal(it.ExpiresAt) {
		t.Errorf("session of the issued token: got %+v, want crm-app partner [m1] %s", s, it.TokenID)
	}
	es := stored(t, f)
	e := es[len(es)-1]
	if e.Action != "token.issue" || e.Actor != "admin:ops" || e.Details["role"] != "partner" || e.Details["merchants"] != "m1" {
		t.Errorf("last audit entry: got %s by %s %v, want token.issue by admin:admin", e.Action, e.Actor, e.Details)
	}
	if id := e.Identifiers["token"]; !strings.HasPrefix(id, "hmac-sha256:") || strings.Contains(id, it.TokenID) {
		t.Errorf("token identifier stored as %q, want its HMAC", id)
	}

	for _, c := range []struct {
		token, body string
		want        int
	}{
		{"admin", `{"subject":"crm-app","role":"partner","ttl_seconds":60}`, 400},                // a partner names merchants
		{"admin", `{"subject":"m1","role":"merchant","merchants":["m2"],"ttl_seconds":60}`, 400}, // bound to its subject
		{"admin", `{"subject":"x","role":"compliance","ttl_seconds":2678401}`, 400},              // over 30 days
		{"admin", `{"subject":"x","role":"compliance","ttl_seconds":59}`, 400},
		{"admin", `{"subject":"","role":"compliance","ttl_seconds":600}`, 400},
		{"admin", `{"subject":"x","role":"compliance","ttl_seconds":600,"scope":"all"}`, 400},
		{"compliance", `{"subject":"x","role":"admin","ttl_seconds":600}`, 403},
		{"partner", `{"subject":"x","role":"admin","ttl_seconds":600}`, 403},
	} {
		if rec := f.do(t, "POST", "/v1/tokens", f.tokens[c.token], "application/json", []byte(c.body)); rec.Code != c.want {
			t.Errorf("%s %s: got %d, want %d: %s", c.token, c.body, rec.Code, c.want, rec.Body)
		}
	}
	if n := len(stored(t, f)); n != len(es) {
		t.Errorf("refused issues wrote %d audit entries", n-len(es))
	}
}

// TestConsoleMount serves Options.Console under /console/ without a token
// and redirects /console to it.
func TestConsoleMount(t *testing.T) {
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{
		Console: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("console at " + r.URL.Path)) }),
	})
	if rec := f.do(t, "GET", "/console/app.js", "", "", nil); rec.Code != http.StatusOK || rec.Body.String() != "console at /app.js" {
		t.Errorf("GET /console/app.js: got %d %q", rec.Code, rec.Body)
	}
	if rec := f.do(t, "GET", "/console", "", "", nil); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/console/" {
		t.Errorf("GET /console: got %d to %q, want 301 to /console/", rec.Code, rec.Header().Get("Location"))
	}
	if rec := f.do(t, "POST", "/console/", "", "", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/: got %d, want 405", rec.Code)
	}
}

// TestComplianceReportWitness (privacy.md §16, round 8): GET /v1/compliance
// verified the log against the serve's audit witness, but GET /v1/report,
// the HTML report a compliance officer hands on, verified the log alone: a
// log whose tail was cut together with its checkpoints (or rolled back to a
// backup) while serve ran read "Audit log verified" in the report and
// FAILED on the console page. The report now uses the witness too, and says
// so when it cannot read it.
func TestComplianceReportWitness(t *testing.T) {
	f := auditFixture(t)
	withReports(f)
	es := stored(t, f)
	sign := func(c audit.Checkpoint) audit.Checkpoint {
		c.Signature = ed25519.Sign(f.keys.Checkpoint, audit.CheckpointMessage(&c))
		return c
	}
	report := func() string {
		t.Helper()
		rec := f.do(t, "GET", "/v1/report", f.tokens["compliance"], "", nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /v1/report: %d %s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	last := es[len(es)-1]
	// The witness saw the log reach two entries further than it now does.
	beyond := sign(audit.Checkpoint{LogID: "kairos", Seq: last.Seq + 2, Hash: audit.Hash{1}, Time: time.Now().UTC().Truncate(time.Millisecond)})
	f.srv.witness = func(context.Context) ([]audit.Checkpoint, error) { return []audit.Checkpoint{beyond}, nil }
	if page := report(); !strings.Contains(page, "verification FAILED") || !strings.Contains(page, "truncated tail") {
		t.Errorf("report over a log cut below its witness: want a failed verification naming the truncated tail")
	}
	f.srv.witness = func(context.Context) ([]audit.Checkpoint, error) {
		return nil, errors.New("open witness.jsonl: permission denied")
	}
	if page := report(); !strings.Contains(page, "verification FAILED") || !strings.Contains(page, "witness") {
		t.Errorf("report with an unreadable witness: want a failed verification naming the witness")
	}
	good := sign(audit.Checkpoint{LogID: "kairos", Seq: last.Seq, Hash: last.Hash, Time: time.Now().UTC().Truncate(time.Millisecond)})
	f.srv.witness = func(context.Context) ([]audit.Checkpoint, error) { return []audit.Checkpoint{good}, nil }
	if page := report(); !strings.Contains(page, "Audit log verified") {
		t.Errorf("report with a witness the log agrees with: want it verified")
	}
}
