package report_test

import (
	"bytes"
	"encoding/xml"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/compliance/report"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// closedForm is ε at δ of unsampled Gaussian releases (q = 1): RDP
// Σ steps·α/(2z²) converted with the improved conversion over the default
// orders.
func closedForm(rel []dp.Release, delta float64) float64 {
	best := math.Inf(1)
	for _, a := range dp.DefaultOrders() {
		r := 0.0
		for _, x := range rel {
			r += float64(x.Steps) * a / (2 * x.Z * x.Z)
		}
		best = math.Min(best, r+math.Log1p(-1/a)-(math.Log(delta)+math.Log(a))/(a-1))
	}
	return math.Max(best, 0)
}

type svgDoc struct {
	XMLName  xml.Name `xml:"svg"`
	ViewBox  string   `xml:"viewBox,attr"`
	Title    string   `xml:"title"`
	Polyline []struct {
		Class  string `xml:"class,attr"`
		Points string `xml:"points,attr"`
	} `xml:"polyline"`
	Lines []struct {
		Class string  `xml:"class,attr"`
		Y1    float64 `xml:"y1,attr"`
		Y2    float64 `xml:"y2,attr"`
	} `xml:"line"`
	Circles []struct {
		Title string `xml:"title"`
	} `xml:"circle"`
}

func parseSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	var d svgDoc
	if err := xml.Unmarshal(b, &d); err != nil {
		t.Fatalf("chart is not XML: %v\n%s", err, b)
	}
	return d
}

// TestChartPointsMatchLedger parses the SVG and maps every polyline vertex
// back to (time, ε) with the documented plot geometry, against the ledger
// times and the closed-form ε.
func TestChartPointsMatchLedger(t *testing.T) {
	t0 := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	rel := []dp.Release{
		{Mechanism: dp.Gaussian, Q: 1, Z: 3, Steps: 1}, {Mechanism: dp.Gaussian, Q: 1, Z: 50, Steps: 1},
		{Mechanism: dp.Gaussian, Q: 1, Z: 3, Steps: 2}, {Mechanism: dp.Gaussian, Q: 1, Z: 2, Steps: 1},
	}
	offsets := []time.Duration{0, time.Minute, 5 * time.Hour, 26 * time.Hour} // uneven, as rounds are
	var rows []aggregator.LedgerRow
	for i, r := range rel {
		rows = append(rows, aggregator.LedgerRow{Merchant: "m1", Seq: int64(i + 1), Release: r, At: t0.Add(offsets[i])})
	}
	const cap, delta = 5.0, 1e-6
	b, err := compliance.ComputeBudget("m1", &policies.MerchantPolicy{EpsilonCap: cap, Delta: delta}, rows)
	if err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, report.Chart(b))
	if len(d.Polyline) != 1 || d.Polyline[0].Class != "epsilon" {
		t.Fatalf("got %d polylines, want one of class epsilon", len(d.Polyline))
	}
	pts := strings.Fields(d.Polyline[0].Points)
	if len(pts) != len(rows) {
		t.Fatalf("got %d vertices, want one per ledger row (%d)", len(pts), len(rows))
	}
	epsN := closedForm(rel, delta)
	yMax := 1.1 * math.Max(cap, epsN)
	span := offsets[len(offsets)-1].Seconds()
	for i, p := range pts {
		xs, ys, ok := strings.Cut(p, ",")
		if !ok {
			t.Fatalf("vertex %q is not x,y", p)
		}
		x, err1 := strconv.ParseFloat(xs, 64)
		y, err2 := strconv.ParseFloat(ys, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("vertex %q: %v %v", p, err1, err2)
		}
		wantX := 60 + 470*offsets[i].Seconds()/span
		wantEps := closedForm(rel[:i+1], delta)
		wantY := 30 + 170*(1-wantEps/yMax)
		if math.Abs(x-wantX) > 0.006 || math.Abs(y-wantY) > 0.006 {
			t.Errorf("vertex %d: got (%v, %v), want (%.3f, %.3f) for ε %.4f", i+1, x, y, wantX, wantY, wantEps)
		}
		// Reading ε back off the chart.
		if got := yMax * (1 - (y-30)/170); math.Abs(got-wantEps) > 0.006*yMax/170+1e-12 {
			t.Errorf("vertex %d: ε read off the chart %v, want %v", i+1, got, wantEps)
		}
	}
	var capLine bool
	for _, l := range d.Lines {
		if l.Class == "cap" {
			capLine = true
			if want := 30 + 170*(1-cap/yMax); math.Abs(l.Y1-want) > 0.006 || l.Y1 != l.Y2 {
				t.Errorf("cap line at y %v..%v, want %v", l.Y1, l.Y2, want)
			}
		}
	}
	if !capLine {
		t.Error("no cap line")
	}
	if len(d.Circles) != len(rows) || !strings.Contains(d.Circles[2].Title, "release 3") {
		t.Errorf("got %d point tooltips (%+v), want %d", len(d.Circles), d.Circles, len(rows))
	}
}

func TestChartEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		b    compliance.Budget
		want string
	}{
		{"no releases", compliance.Budget{Merchant: "m0", Cap: 1, Delta: 1e-6}, "no releases yet"},
		{"one release", compliance.Budget{Merchant: "m1", Cap: 1, Delta: 1e-6, Epsilon: 0.2,
			Points: []compliance.Point{{Seq: 1, At: time.Unix(0, 0), Epsilon: 0.2}}}, `points="60.00,`},
		{"over the cap", compliance.Budget{Merchant: "m2", Cap: 1, Delta: 1e-6, Epsilon: 2,
			Points: []compliance.Point{{Seq: 1, At: time.Unix(0, 0), Epsilon: 2}}}, `,45.45"`}, // 30 + 170·(1 − 2/2.2)
		{"escaped name", compliance.Budget{Merchant: `<b>&"x"`, Cap: 1}, "&lt;b&gt;&amp;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svg := report.Chart(tt.b)
			parseSVG(t, svg)
			if !bytes.Contains(svg, []byte(tt.want)) {
				t.Errorf("chart lacks %q:\n%s", tt.want, svg)
			}
		})
	}
}

func sampleReport(t *testing.T) report.Report {
	t.Helper()
	t0 := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	mk := func(id string, n int) compliance.Budget {
		var rows []aggregator.LedgerRow
		for i := range n {
			rows = append(rows, aggregator.LedgerRow{Seq: int64(i + 1), Release: dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: 4, Steps: 1}, At: t0.Add(time.Duration(i) * time.Hour)})
		}
		b, err := compliance.ComputeBudget(id, &policies.MerchantPolicy{EpsilonCap: 1, Delta: 1e-6}, rows)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	models := []protocol.ModelVersion{
		{Version: 1, PublishedAt: t0, PolicyHash: "sha256:aaaa", SchemaHash: "sha256:ssss", Merge: "initial"},
		{Version: 2, Round: "round-000001", Parent: 1, PublishedAt: t0.Add(time.Hour), PolicyHash: "sha256:aaaa", SchemaHash: "sha256:ssss",
			Merge: "fedavg+fedadam", Active: true, Contributions: []protocol.Contribution{{Merchant: "m1", Epsilon: 0.31, Delta: 1e-6, Weight: 0.5}},
			Metrics: map[string]float64{"auc_30": 0.81234, "auc_30_se": 0.0104, "auc_7": 0.8, "auc_7_se": 0.02, "pr_auc_30": 0.35, "pr_auc_30_se": 0.03, "merchants": 5}},
	}
	return report.Report{
		Generated: t0.Add(48 * time.Hour), Source: "kairos.db", Federation: "demo", PolicyHash: "sha256:aaaa",
		Budgets: []compliance.Budget{mk("m1", 3), mk(`<script>alert("x")</script>`, 1), mk("m3", 0)},
		Models:  models, Policies: compliance.PolicyHistory(models, "sha256:aaaa"),
		Audit: report.Verification{OK: true, Entries: 42, Checkpoints: 3, Head: "abcd", Unpinned: 2},
	}
}

var svgBlock = regexp.MustCompile(`(?s)<svg .*?</svg>`)

func TestHTML(t *testing.T) {
	r := sampleReport(t)
	var buf bytes.Buffer
	if err := report.HTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"<!DOCTYPE html>", `id="budget-m1"`, `id="budget-m3"`, `id="version-1"`, `id="version-2"`,
		"round-000001", "m1: ε 0.31000 at δ 1e-06, weight 0.5",
		"AUC@30 0.812 ± 0.010, AUC@7 0.800 ± 0.020, PR-AUC@30 0.350 ± 0.030 (5 merchants, DP)",
		"Audit log verified: 42 entries, 3 signed checkpoints, head abcd. The last 2 entries are chained but not yet covered by a signed checkpoint.",
		"sha256:aaaa", "in force", "one customer of merchant m1",
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(out, `<script>alert`) {
		t.Error("merchant id is not escaped")
	}
	for _, bad := range []string{"src=", `href="http`, "url(", "@import", "<link", "<script"} {
		if strings.Contains(out, bad) {
			t.Errorf("report refers to something outside itself: %q", bad)
		}
	}
	svgs := svgBlock.FindAllString(out, -1)
	if len(svgs) != len(r.Budgets) {
		t.Fatalf("got %d inline charts, want %d", len(svgs), len(r.Budgets))
	}
	for _, s := range svgs {
		parseSVG(t, []byte(s))
	}
}

func TestVerificationLine(t *testing.T) {
	tests := []struct {
		v    report.Verification
		want string
	}{
		{report.Verification{OK: true, Entries: 5, Checkpoints: 1, Head: "ff"}, "Audit log verified: 5 entries, 1 signed checkpoint, head ff."},
		{report.Verification{OK: true, Entries: 1, Checkpoints: 2, Head: "ff", Unpinned: 1},
			"Audit log verified: 1 entry, 2 signed checkpoints, head ff. The last entry is chained but not yet covered by a signed checkpoint."},
		{report.Verification{Entries: 7, Checkpoints: 1, Failure: "entry 8: hash mismatch"},
			"Audit log verification FAILED: entry 8: hash mismatch (7 entries and 1 checkpoint verified before it)."},
	}
	for _, tt := range tests {
		if got := tt.v.Line(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// TestHTMLWithdrawn: the report marks a version a rollback withdrew, with
// the seq of the rollback's audit entry (privacy.md §16, round 8 row 12).
func TestHTMLWithdrawn(t *testing.T) {
	r := sampleReport(t)
	r.Models = append(r.Models, protocol.ModelVersion{Version: 3, Round: "round-000002", Parent: 2, PublishedAt: r.Generated.Add(-time.Hour),
		Merge: "fedavg+fedadam", Withdrawn: true, WithdrawnAt: r.Generated.Add(-30 * time.Minute), WithdrawnSeq: 17})
	var buf bytes.Buffer
	if err := report.HTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	i := strings.Index(out, `id="version-3"`)
	if i < 0 {
		t.Fatal("no row for version 3")
	}
	row, _, _ := strings.Cut(out[i:], "</tr>")
	if !strings.Contains(row, "withdrawn ") || !strings.Contains(row, "(audit seq 17)") || strings.Contains(row, ">active<") {
		t.Errorf("version 3's row %q, want it withdrawn at audit seq 17", row)
	}
}
