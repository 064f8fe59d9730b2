package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/server"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
	"github.com/kairos-fl/kairos/store/sqlite"
)

const federationPolicy = `version: 1
federation: report-test
defaults:
  epsilon_cap: 2.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 365
merchants:
  shop-a: {}
  shop-b: { epsilon_cap: 3.0 }
  shop-c: {}
`

// federation is a small real store: an aggregator over SQLite with three
// merchants enrolled; shop-a and shop-b send honest sealed updates for two
// rounds, which publish versions 2 and 3. The audit log is closed (so its
// tail is checkpointed) before the test reads the store.
type federation struct {
	db, keyDir, policy string
}

func newFederation(t *testing.T) federation { return newFederationIn(t, "") }

// newFederationIn builds the federation in the database db (a new SQLite
// file when empty).
func newFederationIn(t *testing.T, db string) federation {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	if db == "" {
		db = filepath.Join(tmp, "kairos.db")
	}
	fed := federation{db: db, keyDir: filepath.Join(tmp, "agg"), policy: filepath.Join(tmp, "policy.yaml")}
	if err := os.WriteFile(fed.policy, []byte(federationPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteAggregator(fed.keyDir, agg, nil); err != nil {
		t.Fatal(err)
	}
	recipient, err := keys.ParseRecipient(agg.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, fed.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	clock := func() time.Time { return now }
	pol, err := policies.Parse(fed.policy, []byte(federationPolicy))
	if err != nil {
		t.Fatal(err)
	}
	a, err := server.New(ctx, server.Options{Store: st, Keys: agg, Policy: pol, Now: clock,
		Rounds: aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour, PlannedRounds: 5},
		Audit:  config.Audit{CheckpointInterval: -1}}) // the report counts checkpoints
	if err != nil {
		t.Fatal(err)
	}
	svc := a.Service
	signers := map[string]ed25519.PrivateKey{}
	for _, id := range []string{"shop-a", "shop-b", "shop-c"} {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signers[id] = priv
		if _, err := svc.Enrol(ctx, "admin:test", aggregator.Merchant{ID: id, TimeZone: "UTC", PublicKey: pub}); err != nil {
			t.Fatal(err)
		}
	}
	// The first round opened before anyone enrolled: let it fail.
	now = now.Add(time.Hour + time.Second)
	if err := svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, id := range []string{"shop-a", "shop-b"} {
			r, err := svc.CurrentRound(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			m, err := hazard.Unmarshal(r.Model, "")
			if err != nil {
				t.Fatal(err)
			}
			delta := make([]float64, len(m.Params))
			for i := range delta {
				delta[i] = 0.001 * float64(i%3-1)
			}
			payload, err := json.Marshal(protocol.Update{
				Version: protocol.Version, Round: r.ID, Merchant: id, BaseVersion: r.BaseVersion, SchemaHash: m.Schema.Hash, Delta: delta,
				Release:   protocol.Release{SamplingRate: r.Plan.SamplingRate, NoiseMultiplier: r.Plan.NoiseMultiplier, Steps: r.Plan.Steps, ClipNorm: r.Plan.ClipNorm},
				Customers: protocol.NoisyCount{Value: 400, Sigma: r.Plan.CountNoise},
			})
			if err != nil {
				t.Fatal(err)
			}
			env, err := seal.Seal(rand.Reader, seal.Header{MerchantID: id, Round: r.ID, ModelVersion: strconv.Itoa(r.BaseVersion), CreatedAt: now},
				payload, signers[id], recipient)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Submit(ctx, id, env); err != nil {
				t.Fatalf("submit %s to %s: %v", id, r.ID, err)
			}
			now = now.Add(time.Minute)
		}
		now = now.Add(time.Hour + time.Second)
		if err := svc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return fed
}

// storedModels reads the registry straight from the store.
func storedModels(t *testing.T, db string) []protocol.ModelVersion {
	t.Helper()
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms, err := compliance.LoadModels(context.Background(), st.(aggregator.Store))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestComplianceReport runs on SQLite, and on PostgreSQL when
// KAIROS_TEST_POSTGRES_URL is set.
func TestComplianceReport(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testComplianceReport(t, newFederation(t)) })
	t.Run("postgres", func(t *testing.T) {
		db := freshPostgres(t)
		if db == "" {
			t.Skip("KAIROS_TEST_POSTGRES_URL not set")
		}
		testComplianceReport(t, newFederationIn(t, db))
	})
}

func testComplianceReport(t *testing.T, fed federation) {
	out := filepath.Join(t.TempDir(), "report.html")
	msg, err := runCompliance(t, "report", "--db", fed.db, "--keys", fed.keyDir, "--policy", fed.policy, "--out", out)
	if err != nil {
		t.Fatalf("report: %v\n%s", err, msg)
	}
	if !strings.Contains(msg, "3 merchants, 3 model versions") {
		t.Errorf("got %q", msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	models := storedModels(t, fed.db)
	if len(models) != 3 {
		t.Fatalf("store has %d model versions, want 3 (initial and two rounds)", len(models))
	}
	want := []string{"Audit log verified: ", "report-test", `id="budget-shop-a"`, `id="budget-shop-b"`, `id="budget-shop-c"`,
		"one customer of merchant shop-b", "no releases yet"}
	for _, m := range models {
		want = append(want, `id="version-`+strconv.Itoa(m.Version)+`"`)
		if m.Round != "" {
			want = append(want, m.Round)
		}
		for _, c := range m.Contributions {
			want = append(want, c.Merchant+": ε "+strconv.FormatFloat(c.Epsilon, 'f', 5, 64))
		}
	}
	want = append(want, models[0].PolicyHash)
	for _, w := range want {
		if !strings.Contains(html, w) {
			t.Errorf("report lacks %q", w)
		}
	}
	if strings.Contains(html, "FAILED") {
		t.Error("report says verification failed")
	}
}

func TestComplianceReportTampered(t *testing.T) {
	fed := newFederation(t)
	raw, err := sql.Open("sqlite", fed.db)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TRIGGER audit_entries_no_update", "UPDATE audit_entries SET actor = 'admin:mallory' WHERE seq = 3"} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	out := filepath.Join(t.TempDir(), "report.html")
	_, err = runCompliance(t, "report", "--db", fed.db, "--keys", fed.keyDir, "--policy", fed.policy, "--out", out)
	if err == nil {
		t.Fatal("report over a tampered log: got no error")
	}
	b, rerr := os.ReadFile(out)
	if rerr != nil {
		t.Fatalf("the report should still be written: %v", rerr)
	}
	if !strings.Contains(string(b), "Audit log verification FAILED: ") || !strings.Contains(string(b), "entry 3") {
		t.Errorf("report does not name the failure")
	}
}

func TestComplianceBudgets(t *testing.T) {
	fed := newFederation(t)
	charts := filepath.Join(t.TempDir(), "charts")
	msg, err := runCompliance(t, "budgets", "--db", fed.db, "--policy", fed.policy, "--json", "--chart-dir", charts)
	if err != nil {
		t.Fatalf("budgets: %v\n%s", err, msg)
	}
	var got struct {
		Budgets []compliance.Budget `json:"budgets"`
	}
	if err := json.Unmarshal([]byte(msg), &got); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	if len(got.Budgets) != 3 {
		t.Fatalf("got %d budgets, want 3", len(got.Budgets))
	}
	// Independently: the ledger rows in the store, composed by the accountant
	// in one shot, and the contributions the registry recorded.
	st, err := sqlite.Open(context.Background(), fed.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	models := storedModels(t, fed.db)
	last := models[len(models)-1]
	for _, b := range got.Budgets {
		var rows []aggregator.LedgerRow
		err := st.InTx(context.Background(), func(tx aggregator.Tx) (err error) {
			rows, err = tx.Ledger(context.Background(), b.Merchant)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		wantReleases := map[string]int{"shop-a": 4, "shop-b": 4, "shop-c": 0}[b.Merchant]
		if b.Releases != wantReleases || len(rows) != wantReleases || len(b.Points) != wantReleases {
			t.Errorf("%s: got %d releases (%d points), ledger %d, want %d", b.Merchant, b.Releases, len(b.Points), len(rows), wantReleases)
		}
		rel := make([]dp.Release, len(rows))
		for i, r := range rows {
			rel[i] = r.Release
		}
		want := 0.0
		if len(rel) > 0 {
			if want, _, err = dp.Epsilon(rel, 1e-6, dp.AccountantOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if math.Abs(b.Epsilon-want) > 1e-9 {
			t.Errorf("%s: got ε %v, want %v", b.Merchant, b.Epsilon, want)
		}
		for _, c := range last.Contributions {
			if c.Merchant == b.Merchant && math.Abs(c.Epsilon-b.Epsilon) > 1e-9 {
				t.Errorf("%s: got ε %v, the registry recorded %v at publication", b.Merchant, b.Epsilon, c.Epsilon)
			}
		}
		if wantCap := map[string]float64{"shop-a": 2, "shop-b": 3, "shop-c": 2}[b.Merchant]; b.Cap != wantCap {
			t.Errorf("%s: got cap %v, want %v", b.Merchant, b.Cap, wantCap)
		}
		svg, err := os.ReadFile(filepath.Join(charts, b.Merchant+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Polyline []struct {
				Points string `xml:"points,attr"`
			} `xml:"polyline"`
		}
		if err := xml.Unmarshal(svg, &doc); err != nil {
			t.Fatalf("%s.svg: %v", b.Merchant, err)
		}
		n := 0
		if len(doc.Polyline) == 1 {
			n = len(strings.Fields(doc.Polyline[0].Points))
		}
		if n != wantReleases {
			t.Errorf("%s.svg: %d vertices, want %d", b.Merchant, n, wantReleases)
		}
	}

	text, err := runCompliance(t, "budgets", "--db", fed.db, "--policy", fed.policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"MERCHANT", "shop-a", "shop-c", "Privacy unit: one customer of merchant shop-a"} {
		if !strings.Contains(text, w) {
			t.Errorf("table lacks %q:\n%s", w, text)
		}
	}
}

func TestComplianceReportUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"report", "--db", "x.db", "--policy", "p.yaml"}, "--out"},
		{[]string{"report", "--db", "x.db", "--policy", "p.yaml", "--out", "r.html"}, "exactly one of --keys"},
		{[]string{"budgets", "--db", "x.db"}, "--policy are required"},
		{[]string{"budgets", "--db", filepath.Join(t.TempDir(), "missing.db"), "--policy", "p.yaml"}, "missing.db"},
	}
	for _, tt := range tests {
		_, err := runCompliance(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

// TestServedReport: `kairos aggregator serve` wires the report sources, so
// the compliance role gets the report and the charts over HTTP, and the
// served chart is the one `kairos compliance budgets --chart-dir` writes.
func TestServedReport(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "agg")
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0", "--policy", cdnowDemoPolicy); err != nil {
		t.Fatal(err)
	}
	agg := startServe(t, "--dir", dir)
	m, err := keys.GenerateMerchant(rand.Reader, "cdnow-1")
	if err != nil {
		t.Fatal(err)
	}
	shop := filepath.Join(tmp, "shop")
	if err := keys.WriteMerchant(shop, m, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := runAgg(t, "enrol", "--dir", dir, "--url", agg.base, "--id", "cdnow-1", "--time-zone", "UTC",
		"--public-key", filepath.Join(shop, keys.FileSigningPub)); err != nil {
		t.Fatal(err)
	}
	ak, err := keys.LoadAggregator(filepath.Join(dir, config.KeysDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := aggIssue(ak, auth.Grant{Subject: "reviewer", Role: auth.RoleCompliance, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, wantType string) []byte {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", agg.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != wantType {
			t.Fatalf("GET %s: %d %s, want 200 %s: %.300s", path, res.StatusCode, res.Header.Get("Content-Type"), wantType, b)
		}
		return b
	}
	page := string(get("/v1/report", "text/html; charset=utf-8"))
	for _, w := range []string{`id="budget-cdnow-1"`, "Audit log verified: ", "no releases yet", filepath.Join(dir, config.DBFile)} {
		if !strings.Contains(page, w) {
			t.Errorf("served report lacks %q", w)
		}
	}
	svg := get("/v1/budgets/cdnow-1/chart.svg", "image/svg+xml")
	agg.stop(t)

	charts := filepath.Join(tmp, "charts")
	if _, err := runCompliance(t, "budgets", "--db", filepath.Join(dir, config.DBFile), "--policy", filepath.Join(dir, config.PolicyFile),
		"--chart-dir", charts); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(charts, "cdnow-1.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(svg, want) {
		t.Errorf("served chart differs from the CLI's:\ngot  %.300s\nwant %.300s", svg, want)
	}
}

// TestComplianceReportWitness (privacy.md §16, round 8): `compliance report`
// verified the log alone, with no way to give it the witness `audit verify
// --witness` takes: a log whose tail was cut together with its checkpoints
// read "Audit log verified" in the report handed on. --witness now checks
// the log against the witness file as verify does.
func TestComplianceReportWitness(t *testing.T) {
	fed := newFederation(t)
	witness := filepath.Join(t.TempDir(), "witness.jsonl")
	if out, err := runCompliance(t, "audit", "witness", "--db", fed.db, "--keys", fed.keyDir, "--witness", witness); err != nil {
		t.Fatalf("witness: %v\n%s", err, out)
	}
	report := func() (string, error) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "report.html")
		_, err := runCompliance(t, "report", "--db", fed.db, "--keys", fed.keyDir, "--policy", fed.policy, "--out", out, "--witness", witness)
		b, rerr := os.ReadFile(out)
		if rerr != nil {
			t.Fatalf("the report should be written: %v (%v)", rerr, err)
		}
		return string(b), err
	}
	if html, err := report(); err != nil || !strings.Contains(html, "Audit log verified: ") {
		t.Fatalf("report with the witness of the intact log: %v", err)
	}
	// Cut the log's last entry together with every checkpoint at or after it.
	raw, err := sql.Open("sqlite", fed.db)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	if err := raw.QueryRow("SELECT max(seq) FROM audit_entries").Scan(&last); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"DROP TRIGGER audit_entries_no_delete", "DROP TRIGGER audit_checkpoints_no_delete",
		fmt.Sprintf("DELETE FROM audit_entries WHERE seq >= %d", last), fmt.Sprintf("DELETE FROM audit_checkpoints WHERE seq >= %d", last),
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	html, err := report()
	if err == nil || !strings.Contains(html, "Audit log verification FAILED: ") || !strings.Contains(html, "truncated tail") {
		t.Errorf("report over the cut log with its witness: %v; want a failed verification naming the truncated tail", err)
	}
}
