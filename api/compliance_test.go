package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/compliance/report"
	"github.com/kairos-fl/kairos/dp"
)

// auditFixture is a real service on SQLite whose server reads the audit log
// from the store, after m1 and m2 each had an update accepted.
func auditFixture(t *testing.T) *realFixture {
	t.Helper()
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{})
	f.srv.auditSrc = f.store
	for _, m := range []string{"m1", "m2"} {
		r, err := f.svc.CurrentRound(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		rec := f.do(t, "POST", "/v1/rounds/"+r.ID+"/updates", f.tokens[m], "application/octet-stream", f.honest(t, m))
		if rec.Code != http.StatusAccepted {
			t.Fatalf("submit %s: %d %s", m, rec.Code, rec.Body)
		}
	}
	return f
}

// stored returns every entry in the store, read directly.
func stored(t *testing.T, f *realFixture) []audit.Entry {
	t.Helper()
	es, err := f.store.AuditEntries(context.Background(), 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) < 4 {
		t.Fatalf("only %d audit entries in the store", len(es))
	}
	return es
}

func getAudit(t *testing.T, f *realFixture, token string, q url.Values) compliance.AuditPage {
	t.Helper()
	rec := f.do(t, "GET", "/v1/audit?"+q.Encode(), token, "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/audit?%s: %d %s", q.Encode(), rec.Code, rec.Body)
	}
	var p compliance.AuditPage
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuditRouteMatchesStore(t *testing.T) {
	f := auditFixture(t)
	want := stored(t, f)

	// Walk the whole log two entries a page, following the cursor.
	var got []compliance.AuditEntry
	q := url.Values{"limit": {"2"}}
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("cursor does not advance")
		}
		p := getAudit(t, f, f.tokens["compliance"], q)
		got = append(got, p.Entries...)
		if p.Next == 0 {
			break
		}
		q.Set("after", fmt.Sprint(p.Next))
	}
	if len(got) != len(want) {
		t.Fatalf("paged through %d entries, the store has %d", len(got), len(want))
	}
	for i := range want {
		w := &want[i]
		g := got[i]
		if g.Seq != w.Seq || !g.Time.Equal(w.Time) || g.Actor != w.Actor || g.Action != w.Action ||
			g.Hash != w.Hash.String() || g.PrevHash != w.PrevHash.String() || len(g.Identifiers) != len(w.Identifiers) {
			t.Errorf("entry %d: got %+v, want %+v", i, g, *w)
		}
	}

	// Each filter against a filter applied by hand to the stored entries.
	var accept audit.Entry
	for _, e := range want {
		if e.Action == "round.update.accept" && e.Actor == "merchant:m1" {
			accept = e
		}
	}
	if accept.Seq == 0 {
		t.Fatalf("no round.update.accept entry by merchant:m1 among %d", len(want))
	}
	var ident string
	for _, v := range accept.Identifiers {
		ident = v
		break
	}
	mid := want[len(want)/2].Time
	tests := []struct {
		name string
		q    url.Values
		keep func(e audit.Entry) bool
	}{
		{"action", url.Values{"action": {"round.update.accept"}}, func(e audit.Entry) bool { return e.Action == "round.update.accept" }},
		{"actor", url.Values{"actor": {"merchant:m1"}}, func(e audit.Entry) bool { return e.Actor == "merchant:m1" }},
		{"identifier", url.Values{"identifier": {ident}}, func(e audit.Entry) bool {
			for _, v := range e.Identifiers {
				if v == ident {
					return true
				}
			}
			return false
		}},
		{"since", url.Values{"since": {mid.Format(time.RFC3339Nano)}}, func(e audit.Entry) bool { return !e.Time.Before(mid) }},
		{"until", url.Values{"until": {mid.Format(time.RFC3339Nano)}}, func(e audit.Entry) bool { return e.Time.Before(mid) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wantSeqs, gotSeqs []uint64
			for _, e := range want {
				if tt.keep(e) {
					wantSeqs = append(wantSeqs, e.Seq)
				}
			}
			for _, e := range getAudit(t, f, f.tokens["admin"], tt.q).Entries {
				gotSeqs = append(gotSeqs, e.Seq)
			}
			if !slices.Equal(gotSeqs, wantSeqs) {
				t.Errorf("got seqs %v, want %v", gotSeqs, wantSeqs)
			}
		})
	}
}

func TestAuditRouteRefusals(t *testing.T) {
	f := auditFixture(t)
	tests := []struct {
		name, token, query string
		status             int
		detail             string
	}{
		{"no token", "none", "", 401, ""},
		{"merchant", "m1", "", 403, ""},
		{"partner", "partner", "", 403, ""},
		{"unknown parameter", "compliance", "customer=alice", 400, `unknown query parameter "customer"`},
		{"repeated parameter", "compliance", "actor=a&actor=b", 400, `"actor" given 2 times`},
		{"limit zero", "compliance", "limit=0", 400, "limit"},
		{"limit too big", "compliance", "limit=1001", 400, "1..1000"},
		{"negative cursor", "compliance", "after=-1", 400, "after"},
		{"bad time", "compliance", "since=yesterday", 400, "RFC 3339"},
		{"empty range", "compliance", "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", 400, "not before until"},
		{"clear identifier", "compliance", "identifier=alice%40example.com", 400, "hmac-sha256:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(t, "GET", "/v1/audit?"+tt.query, f.tokens[tt.token], "", nil)
			if rec.Code != tt.status {
				t.Fatalf("got %d, want %d (%s)", rec.Code, tt.status, rec.Body)
			}
			if p := problemOf(t, rec); !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("got detail %q, want it to contain %q", p.Detail, tt.detail)
			}
		})
	}
}

func TestAuditCheckpointsRoute(t *testing.T) {
	f := auditFixture(t)
	rec := f.do(t, "GET", "/v1/audit/checkpoints", f.tokens["compliance"], "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	var got checkpointList
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want, err := f.store.AuditCheckpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Checkpoints == nil || len(got.Checkpoints) != len(want) {
		t.Fatalf("got %d checkpoints, the store has %d", len(got.Checkpoints), len(want))
	}
	for i, c := range want {
		if g := got.Checkpoints[i]; g.Seq != c.Seq || g.Hash != c.Hash.String() || g.LogID != c.LogID {
			t.Errorf("checkpoint %d: got %+v, want %+v", i, g, c)
		}
	}
	if rec := f.do(t, "GET", "/v1/audit/checkpoints", f.tokens["m1"], "", nil); rec.Code != http.StatusForbidden {
		t.Errorf("merchant: got %d, want 403", rec.Code)
	}
}

func TestAuditRoutesWithoutSource(t *testing.T) {
	f := newFixture(t, &fakeService{}, Options{})
	for _, path := range []string{"/v1/audit", "/v1/audit/checkpoints"} {
		rec := f.do(t, "GET", path, f.tokens["compliance"], "", nil)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: got %d, want 503", path, rec.Code)
		}
	}
}

func TestBudgetsStatement(t *testing.T) {
	f := auditFixture(t)
	rec := f.do(t, "GET", "/v1/budgets", f.tokens["compliance"], "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	var got budgetList
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Budgets) != 2 {
		t.Fatalf("got %d budgets, want 2", len(got.Budgets))
	}
	for _, b := range got.Budgets {
		// Independently: the accountant over the ledger rows in the store.
		var rows []aggregator.LedgerRow
		err := f.store.(aggregator.Store).InTx(context.Background(), func(tx aggregator.Tx) (err error) {
			rows, err = tx.Ledger(context.Background(), b.Merchant)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		rel := make([]dp.Release, len(rows))
		for i, r := range rows {
			rel[i] = r.Release
		}
		want, _, err := dp.Epsilon(rel, 1e-6, dp.AccountantOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(b.Epsilon-want) > 1e-9 || b.Epsilon <= 0 {
			t.Errorf("%s: got ε %v, the accountant over its %d ledger rows gives %v", b.Merchant, b.Epsilon, len(rows), want)
		}
		if b.Releases != 2 {
			t.Errorf("%s: got %d releases, want 2 (DP-SGD and count)", b.Merchant, b.Releases)
		}
		for _, want := range []string{"one customer of merchant " + b.Merchant, "adding or removing one customer",
			"Poisson-subsampled Gaussian", "δ = 1e-06", fmt.Sprintf("ε = %.5f of a cap of 1", b.Epsilon)} {
			if !strings.Contains(b.Statement, want) {
				t.Errorf("%s: statement lacks %q: %s", b.Merchant, want, b.Statement)
			}
		}
	}
}

// FuzzAuditFilter: any query string is refused with a 400 naming what is
// wrong, or accepted as a valid filter that the same query reproduces.
func FuzzAuditFilter(f *testing.F) {
	for _, s := range []string{"", "limit=5&after=10", "actor=admin%3Aops&action=predict",
		"since=2026-11-27T12:00:00Z&until=2026-11-28T00:00:00.5Z", "identifier=hmac-sha256:" + strings.Repeat("0", 64),
		"limit=0", "after=-1", "x=1", "actor=a&actor=b", "since=2026-13-01T00:00:00Z", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := auditFilter(q)
		if err != nil {
			he, ok := errors.AsType[*httpError](err)
			if !ok || he.status != http.StatusBadRequest || he.detail == "" {
				t.Fatalf("%q: got %v, want a 400 with a detail", raw, err)
			}
			return
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("%q: accepted an invalid filter: %v", raw, err)
		}
		if flt.Limit < 0 || flt.Limit > compliance.MaxAuditLimit {
			t.Fatalf("%q: limit %d accepted", raw, flt.Limit)
		}
		again, err := auditFilter(q)
		utc := func(f compliance.AuditFilter) compliance.AuditFilter {
			f.Since, f.Until = f.Since.UTC(), f.Until.UTC()
			return f
		}
		if err != nil || utc(again) != utc(flt) {
			t.Fatalf("%q: second parse %+v, %v; first %+v", raw, again, err, flt)
		}
	})
}

// fixedReports hands the API fixed report sources.
type fixedReports report.Sources

var _ ComplianceReporter = fixedReports{}

func (s fixedReports) ReportSources() report.Sources { return report.Sources(s) }

// withReports makes f's server answer the chart and report routes from f's
// store, policy and checkpoint key, and returns those sources.
func withReports(f *realFixture) report.Sources {
	src := report.Sources{
		Store: f.store.(aggregator.Store), Audit: f.store, Policy: f.policy,
		CheckpointKey: f.keys.Checkpoint.Public().(ed25519.PublicKey), Source: "api test", Now: f.clock.Now,
	}
	f.srv.reports = fixedReports(src)
	return src
}

// chartDoc is what the chart tests read of an SVG document.
type chartDoc struct {
	XMLName xml.Name `xml:"svg"`
	Title   string   `xml:"title"`
	Circles []struct {
		Title string `xml:"title"`
	} `xml:"circle"`
}

func TestBudgetChartRoute(t *testing.T) {
	f := auditFixture(t)
	src := withReports(f)
	ctx := context.Background()
	for _, m := range []string{"m1", "m2"} {
		t.Run(m, func(t *testing.T) {
			rec := f.do(t, "GET", "/v1/budgets/"+m+"/chart.svg", f.tokens["compliance"], "", nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("got %d %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "image/svg+xml" {
				t.Errorf("Content-Type %q, want image/svg+xml", ct)
			}
			// Byte for byte the chart the CLI writes for the same budget.
			bs, err := compliance.LoadBudgets(ctx, src.Store, src.Policy)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(bs, func(b compliance.Budget) bool { return b.Merchant == m })
			if i < 0 {
				t.Fatalf("no budget of %s among %d", m, len(bs))
			}
			if want := report.Chart(bs[i]); !bytes.Equal(rec.Body.Bytes(), want) {
				t.Errorf("served chart differs from report.Chart of %s's budget:\ngot  %.300s\nwant %.300s", m, rec.Body, want)
			}
			var doc chartDoc
			if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("chart is not XML: %v", err)
			}
			// Independently: one point per ledger row, the last at the ε the
			// accountant gives over all of them.
			rows := ledgerOf(t, f, m)
			rel := make([]dp.Release, len(rows))
			for i, r := range rows {
				rel[i] = r.Release
			}
			eps, _, err := dp.Epsilon(rel, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(doc.Circles) != len(rows) || len(rows) != 2 {
				t.Fatalf("%d points for %d ledger rows, want 2 and 2", len(doc.Circles), len(rows))
			}
			if last := doc.Circles[len(doc.Circles)-1].Title; !strings.HasSuffix(last, fmt.Sprintf("ε = %.5f", eps)) {
				t.Errorf("last point %q, want ε = %.5f", last, eps)
			}
			if !strings.Contains(doc.Title, "merchant "+m) {
				t.Errorf("title %q does not name %s", doc.Title, m)
			}
		})
	}
	// m3 is in the policy but never enrolled; the others are guesses.
	for _, m := range []string{"m3", "m404", "%3Cb%3E"} {
		rec := f.do(t, "GET", "/v1/budgets/"+m+"/chart.svg", f.tokens["admin"], "", nil)
		if rec.Code != http.StatusNotFound {
			t.Fatalf("%s: got %d %s, want 404", m, rec.Code, rec.Body)
		}
		id, _ := url.PathUnescape(m)
		if p := problemOf(t, rec); !strings.Contains(p.Detail, fmt.Sprintf("%q", id)) {
			t.Errorf("%s: detail %q does not name the merchant", m, p.Detail)
		}
	}
}

func ledgerOf(t *testing.T, f *realFixture, merchant string) []aggregator.LedgerRow {
	t.Helper()
	var rows []aggregator.LedgerRow
	err := f.store.(aggregator.Store).InTx(context.Background(), func(tx aggregator.Tx) (err error) {
		rows, err = tx.Ledger(context.Background(), merchant)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestComplianceReportRoute(t *testing.T) {
	f := auditFixture(t)
	src := withReports(f)
	rec := f.do(t, "GET", "/v1/report", f.tokens["admin"], "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q, want text/html; charset=utf-8", ct)
	}
	page := rec.Body.String()
	// The verification line, built from the stored log rather than by
	// audit.Verify: every entry, every checkpoint, the last entry's hash.
	es := stored(t, f)
	cps, err := f.store.AuditCheckpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("Audit log verified: %d entries, %d signed checkpoints, head %s.", len(es), len(cps), es[len(es)-1].Hash),
		`id="budget-m1"`, `id="budget-m2"`, "one customer of merchant m1", "one customer of merchant m2",
		`id="version-1"`, f.policy.Hash(),
	}
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("report lacks %q", w)
		}
	}
	if strings.Contains(page, "FAILED") {
		t.Error("report says verification failed")
	}
	// The same document the CLI's code path renders from the same sources.
	r, err := report.Gather(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	var cli bytes.Buffer
	if err := report.HTML(&cli, r); err != nil {
		t.Fatal(err)
	}
	if page != cli.String() {
		t.Error("served report differs from report.HTML(report.Gather(...)) over the same sources")
	}
	if rec := f.do(t, "GET", "/v1/report", f.tokens["m1"], "", nil); rec.Code != http.StatusForbidden {
		t.Errorf("merchant: got %d, want 403", rec.Code)
	}
}

func TestReportRoutesWithoutSource(t *testing.T) {
	f := newFixture(t, &fakeService{}, Options{})
	for _, path := range []string{"/v1/report", "/v1/budgets/m1/chart.svg"} {
		rec := f.do(t, "GET", path, f.tokens["compliance"], "", nil)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: got %d, want 503", path, rec.Code)
		}
		problemOf(t, rec)
	}
}
