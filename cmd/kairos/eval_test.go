package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model/evaluate"
)

// TestEvalCommandJSON runs `kairos eval --dataset cdnow-sample --json --out F`
// and checks the shape of the one JSON object it prints and the model file.
func TestEvalCommandJSON(t *testing.T) {
	if _, err := sharedDataPath("cdnow/CDNOW_sample.txt"); err != nil {
		t.Skip(err)
	}
	out := filepath.Join(t.TempDir(), "model.json")
	cmd := newRootCmd()
	var stdout bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetArgs([]string{"eval", "--dataset", "cdnow-sample", "--json", "--out", out})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Dataset      string             `json:"dataset"`
		TestCutoff   string             `json:"test_cutoff"`
		Customers    int                `json:"customers"`
		PositiveRate map[string]float64 `json:"positive_rate"`
		Methods      []struct {
			Name  string             `json:"name"`
			AUC   map[string]float64 `json:"auc"`
			PRAUC map[string]float64 `json:"pr_auc"`
		} `json:"methods"`
	}
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode output: %v", err)
	}
	if dec.More() {
		t.Error("output holds more than one JSON value")
	}
	// CDNOW_sample.txt: 2,357 customers, all first seen in 1997 Q1.
	if got.Dataset != "cdnow-sample" || got.TestCutoff != "1998-03-01" || got.Customers != 2357 {
		t.Errorf("header: got %q %q %d, want cdnow-sample 1998-03-01 2357", got.Dataset, got.TestCutoff, got.Customers)
	}
	var names []string
	for _, m := range got.Methods {
		names = append(names, m.Name)
		for _, h := range []string{"1", "3", "7", "14", "30"} {
			if a, ok := m.AUC[h]; !ok || a <= 0.5 || a > 1 {
				t.Errorf("%s auc@%s: got %v (present %v), want in (0.5, 1]", m.Name, h, a, ok)
			}
		}
	}
	if len(names) != 4 || names[0] != "hazard" {
		t.Errorf("methods: got %v, want hazard, bgnbd, recency, frequency_365", names)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var model struct {
		Format string `json:"format"`
		Kind   string `json:"kind"`
	}
	if err := json.Unmarshal(b, &model); err != nil || model.Format != "kairos-hazard-model" || model.Kind != "linear" {
		t.Errorf("model file: got %+v (%v), want a linear kairos-hazard-model", model, err)
	}
}

// TestEvalCommandDP runs `kairos eval --dataset cdnow-sample --dp-epsilon 2 --json`
// and checks the privacy object: the ε charged is at most the target and close to
// it, and the steps follow from the epochs and the sampling rate.
func TestEvalCommandDP(t *testing.T) {
	if _, err := sharedDataPath("cdnow/CDNOW_sample.txt"); err != nil {
		t.Skip(err)
	}
	cmd := newRootCmd()
	var stdout bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetArgs([]string{"eval", "--dataset", "cdnow-sample", "--json", "--dp-epsilon", "2", "--dp-delta", "1e-5",
		"--dp-batch", "500", "--dp-epochs", "5", "--dp-clip", "2"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Methods []struct {
			Name string             `json:"name"`
			AUC  map[string]float64 `json:"auc"`
		} `json:"methods"`
		Privacy *struct {
			Target  float64 `json:"target_epsilon"`
			Delta   float64 `json:"delta"`
			Epsilon float64 `json:"epsilon"`
			Q       float64 `json:"sampling_rate"`
			Z       float64 `json:"noise_multiplier"`
			Steps   int     `json:"steps"`
			Clip    float64 `json:"clip"`
			Noisy   float64 `json:"noisy_customers"`
		} `json:"privacy"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("decode output: %v", err)
	}
	p := got.Privacy
	if p == nil {
		t.Fatal("no privacy object")
	}
	if p.Target != 2 || p.Delta != 1e-5 || p.Clip != 2 || p.Epsilon > 2 || p.Epsilon < 1.99 || !(p.Z > 0) {
		t.Errorf("privacy: got %+v, want ε in [1.99, 2] at δ 1e-5, clip 2, z > 0", *p)
	}
	// 2,357 customers (the count is released with σ = 100); q = 500/ñ, steps = ⌈5/q⌉.
	if wantQ := 500 / math.Round(p.Noisy); math.Abs(p.Q-wantQ) > 1e-9 || p.Steps != int(math.Ceil(5/wantQ-1e-9)) {
		t.Errorf("q %v, steps %d: want %v, %d", p.Q, p.Steps, wantQ, int(math.Ceil(5/wantQ)))
	}
	if len(got.Methods) == 0 || got.Methods[0].Name != "hazard" || !(got.Methods[0].AUC["30"] > 0.6) {
		t.Errorf("methods: got %+v, want hazard first with AUC@30 > 0.6", got.Methods)
	}
}

// shopLog is a small purchase log written by the tests below: 60 customers,
// customer i buying every 5 + i%23 days at noon UTC from 2020-01-01 + i%7 days
// to the end of June (of March when i%3 == 0, so that some customers do not
// come back), never on 2020-05-01 (the test cutoff), so that nobody
// buys on day 1 of the test window. With views, every purchase is preceded by
// a "pv" row an hour earlier.
type shopLog struct {
	rows  []string    // data lines, without the header
	buys  [][]int64   // per customer, unix seconds of each purchase
	first map[int]int // per customer, the 1-based file line of its first row
}

var (
	shopTest   = time.Date(2020, 5, 1, 0, 0, 0, 0, time.UTC)
	shopCutoff = []string{"--test-cutoff", "2020-05-01", "--train-cutoffs", "2020-03-01,2020-04-01"}
)

func newShopLog(views bool) shopLog {
	l := shopLog{buys: make([][]int64, 60), first: map[int]int{}}
	for i := range 60 {
		end := time.Date(2020, 7, 1, 0, 0, 0, 0, time.UTC)
		if i%3 == 0 {
			end = time.Date(2020, 4, 1, 0, 0, 0, 0, time.UTC) // churned before the test window
		}
		for d := time.Date(2020, 1, 1+i%7, 12, 0, 0, 0, time.UTC); d.Before(end); d = d.AddDate(0, 0, 5+i%23) {
			if d.Format(time.DateOnly) == "2020-05-01" {
				continue
			}
			if views {
				l.rows = append(l.rows, fmt.Sprintf("c%d,%d,pv,", i, d.Add(-time.Hour).Unix()))
			}
			l.rows = append(l.rows, fmt.Sprintf("c%d,%d,buy,%d.50", i, d.Unix(), 10+i%9))
			l.buys[i] = append(l.buys[i], d.Unix())
		}
	}
	return l
}

// positives counts the customers with a purchase in [test, test+h days).
func (l shopLog) positives(h int) int {
	n := 0
	for _, ts := range l.buys {
		for _, s := range ts {
			if t := time.Unix(s, 0); !t.Before(shopTest) && t.Before(shopTest.AddDate(0, 0, h)) {
				n++
				break
			}
		}
	}
	return n
}

// write stores the log (with extra rows appended) and a mapping in dir.
func (l shopLog) write(t *testing.T, mapping string, extra ...string) (data, mappingPath string) {
	t.Helper()
	dir := t.TempDir()
	data, mappingPath = filepath.Join(dir, "shop.csv"), filepath.Join(dir, "shop.mapping.yaml")
	body := "user,ts,event,amount\n" + strings.Join(append(append([]string{}, l.rows...), extra...), "\n") + "\n"
	if err := os.WriteFile(data, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mappingPath, []byte(mapping), 0o644); err != nil {
		t.Fatal(err)
	}
	return data, mappingPath
}

const shopMapping = `header: true
customer: user
time: {column: ts, layout: unix}
kind: {column: event, values: {buy: purchase}}
amount: amount
`

// runEval runs `kairos eval args...` through the root command.
func runEval(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"eval"}, args...))
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// TestEvalCSVWrongTimeLayout: a mapping whose time layout does not match the
// file made every row unreadable; eval skipped them all and failed later with
// "0 training rows, 0 test rows". It must fail at the read, saying how many
// rows were bad, why, and on which lines.
func TestEvalCSVWrongTimeLayout(t *testing.T) {
	l := newShopLog(false)
	data, mapping := l.write(t, strings.Replace(shopMapping, "layout: unix", `layout: "2006-01-02 15:04:05"`, 1))
	_, _, err := runEval(t, append([]string{"--dataset", "csv", "--data", data, "--mapping", mapping}, shopCutoff...)...)
	if err == nil {
		t.Fatal("eval succeeded on a file none of whose times match the layout")
	}
	n := len(l.rows)
	firstTS := strings.Split(l.rows[0], ",")[1]
	for _, want := range []string{
		fmt.Sprintf("read %s: %d of %d data rows (100.0%%) are bad input, more than the 1%% allowed", data, n, n),
		fmt.Sprintf("\n  unparseable time: %d rows\n", n),
		fmt.Sprintf(`line 2, column 2: unparseable time: time %q is not YYYY-MM-DD HH:MM[:SS] (the mapping's time layout is "2006-01-02 15:04:05")`, firstTS),
		"--max-invalid-share 0.01",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error\n%v\nwant it to contain %q", err, want)
		}
	}
	if got := strings.Count(err.Error(), "\n  line "); got != 5 {
		t.Errorf("error lists %d bad lines, want the first 5", got)
	}
}

// TestEvalCSVSkipSummary: a few bad rows (two unreadable times and an amount
// above model.MaxAmount, 3 of about 850 rows) are skipped, and what was
// skipped is printed to stderr with the lines, whatever the log level.
// --max-invalid-share 0 stops at the first of them instead.
func TestEvalCSVSkipSummary(t *testing.T) {
	l := newShopLog(false)
	n := len(l.rows)
	extra := []string{"c0,2020-03-05 10:00:00,buy,1", "c1,,buy,2", fmt.Sprintf("c2,%d,buy,1e13", time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC).Unix())}
	data, mapping := l.write(t, shopMapping, extra...)
	args := append([]string{"--dataset", "csv", "--data", data, "--mapping", mapping}, shopCutoff...)
	_, stderr, err := runEval(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("%s: %d rows, %d events", data, n+3, n),
		", 0 out of range, 3 invalid",
		fmt.Sprintf("line %d, column 2: unparseable time", n+2),
		fmt.Sprintf("line %d, column 4: bad amount: amount \"1e13\" is above the maximum 1e+12", n+4),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr\n%s\nlacks %q", stderr, want)
		}
	}
	for _, re := range []string{`\n  skipped bad amount: +1\n`, `\n  skipped unparseable time: +2\n`} {
		if !regexp.MustCompile(re).MatchString(stderr) {
			t.Errorf("stderr\n%s\nlacks %s", stderr, re)
		}
	}
	_, _, err = runEval(t, append(args, "--max-invalid-share", "0")...)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d, column 2: unparseable time", n+2)) {
		t.Errorf("--max-invalid-share 0: got %v, want the first bad row, line %d", err, n+2)
	}
	_, _, err = runEval(t, append(args, "--max-invalid-share", "1.5")...)
	if err == nil || !strings.Contains(err.Error(), "--max-invalid-share 1.5, want a share in [0, 1]") {
		t.Errorf("--max-invalid-share 1.5: got %v, want it refused", err)
	}
	for _, w := range []string{"-0.5", "2", "NaN"} {
		_, _, err = runEval(t, append(args, "--whether", w)...)
		if want := "--whether " + w + ": want a weight in (0, 1]"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--whether %s: got %v, want %q", w, err, want)
		}
	}
}

// TestEvalCSVUnmappedKind: the file has "pv" rows the mapping does not map.
// They were skipped without a word; now the run fails naming the value and
// its count, and listing it under kind ignore accepts the file.
func TestEvalCSVUnmappedKind(t *testing.T) {
	l := newShopLog(true)
	views := len(l.rows) / 2
	data, mapping := l.write(t, shopMapping)
	args := append([]string{"--dataset", "csv", "--data", data, "--mapping", mapping}, shopCutoff...)
	_, _, err := runEval(t, args...)
	want := fmt.Sprintf("kind value \"pv\" is not mapped: %d rows", views)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "line 2, column 3: unknown kind") {
		t.Errorf("got %v, want an error containing %q and the first pv line", err, want)
	}
	ignoring := strings.Replace(shopMapping, "values: {buy: purchase}", "values: {buy: purchase}, ignore: [pv]", 1)
	data, mapping = l.write(t, ignoring)
	_, stderr, err := runEval(t, append([]string{"--dataset", "csv", "--data", data, "--mapping", mapping}, shopCutoff...)...)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`\n  skipped ignored kind: +%d\n`, views); !regexp.MustCompile(want).MatchString(stderr) || !strings.Contains(stderr, " 0 invalid") {
		t.Errorf("stderr\n%s\nlacks %q and 0 invalid", stderr, want)
	}
	// Ignoring every value leaves no event: refused at the read, not with "0 training rows".
	data, mapping = l.write(t, strings.Replace(shopMapping, "values: {buy: purchase}", "values: {order: purchase}, ignore: [pv, buy]", 1))
	_, stderr, err = runEval(t, append([]string{"--dataset", "csv", "--data", data, "--mapping", mapping}, shopCutoff...)...)
	if want := fmt.Sprintf("eval: no events in %s: %d rows, all skipped or out of range", data, len(l.rows)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
	if want := fmt.Sprintf(`\n  skipped ignored kind: +%d\n`, len(l.rows)); !regexp.MustCompile(want).MatchString(stderr) {
		t.Errorf("stderr\n%s\nlacks %q", stderr, want)
	}
}

// TestEvalMappingErrorsInUserTerms: mapping mistakes are reported with the
// YAML key, value and line, not the Go types of the decoder.
func TestEvalMappingErrorsInUserTerms(t *testing.T) {
	tests := []struct{ name, mapping, want string }{
		{"kind as a word", strings.Replace(shopMapping, "kind: {column: event, values: {buy: purchase}}", "kind: purchase", 1),
			`line 4, column 7: kind must be a map with a column (and optional values) or a constant, like kind: {constant: purchase} for one kind on every row; got "purchase"`},
		{"misspelt key", shopMapping + "amuont: 4\n", `line 6, column 1: unknown key "amuont" (want header, delimiter, encoding, decimal, thousands, customer, customer_normalize, missing_customer, missing_customer_values, time, kind, amount, currency_symbol, accounting_negatives, amount_unit, quantity, currency, item, category, negative_amount, cancelled, order, sheet)`},
		{"unknown kind name", strings.Replace(shopMapping, "buy: purchase", "buy: order", 1), `line 4, column 37: kind value buy: unknown event kind "order"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, mapping := newShopLog(false).write(t, tt.mapping)
			_, _, err := runEval(t, append([]string{"--dataset", "csv", "--data", data, "--mapping", mapping}, shopCutoff...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "yaml.Node") {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestEvalNoPositivesAtHorizon: nobody in the shop log buys on day 1 of the
// test window. The table printed NaN and the JSON dropped the key; now the
// table says why, the JSON holds the key with null, and every horizon with
// fewer than 30 buyers is flagged.
func TestEvalNoPositivesAtHorizon(t *testing.T) {
	l := newShopLog(false)
	data, mapping := l.write(t, shopMapping)
	args := append([]string{"--dataset", "csv", "--data", data, "--mapping", mapping}, shopCutoff...)
	wantPos := map[string]int{}
	var wantWarn []string
	// The log runs to 2020-06-30: it covers the 60-day window after the test
	// cutoff 2020-05-01 and not the 90-day one.
	wantPos["60"] = l.positives(60)
	for _, h := range []int{1, 3, 7, 14, 30} {
		wantPos[strconv.Itoa(h)] = l.positives(h)
		if p := l.positives(h); p > 0 && p < 30 {
			wantWarn = append(wantWarn, fmt.Sprintf("buy within %d days of the test cutoff (fewer than 30): AUC@%d and PR-AUC@%d are unreliable", h, h, h))
		}
	}
	if wantPos["1"] != 0 || wantPos["30"] == 0 {
		t.Fatalf("fixture: positives %v, want none at 1 day and some at 30", wantPos)
	}
	stdout, _, err := runEval(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout, "NaN") {
		t.Errorf("table prints NaN:\n%s", stdout)
	}
	for _, name := range []string{"hazard", "recency", "frequency_365"} {
		if !regexp.MustCompile(`(?m)^\s*` + name + `\s+n/a \(no positives\)\s+0\.\d{4}\s`).MatchString(stdout) {
			t.Errorf("table row %s does not start with AUC@1 n/a (no positives) and a number for AUC@3:\n%s", name, stdout)
		}
	}
	if !strings.Contains(stdout, "warning: no test customer buys within 1 day of the test cutoff: AUC@1 and PR-AUC@1 are undefined") {
		t.Errorf("table lacks the 1-day warning:\n%s", stdout)
	}
	for _, w := range wantWarn {
		if !strings.Contains(stdout, w) {
			t.Errorf("table lacks the warning %q:\n%s", w, stdout)
		}
	}

	stdout, _, err = runEval(t, append(args, "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Positives map[string]int    `json:"positives"`
		Undefined map[string]string `json:"undefined"`
		Warnings  []string          `json:"warnings"`
		Methods   []map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("decode %s: %v", stdout, err)
	}
	if !maps.Equal(got.Positives, wantPos) {
		t.Errorf("positives: got %v, want %v", got.Positives, wantPos)
	}
	if len(got.Undefined) != 1 || got.Undefined["1"] != "no positives" {
		t.Errorf("undefined: got %v, want {1: no positives}", got.Undefined)
	}
	if len(got.Warnings) != 1+len(wantWarn) {
		t.Errorf("warnings: got %q, want the 1-day one and %d more", got.Warnings, len(wantWarn))
	}
	for _, m := range got.Methods {
		if _, failed := m["error"]; failed {
			if len(m) != 2 {
				t.Errorf("failed method %s: got keys %v, want its name and error only", m["name"], slices.Sorted(maps.Keys(m)))
			}
			continue
		}
		for _, key := range []string{"auc", "pr_auc"} {
			var byH map[string]*float64
			if err := json.Unmarshal(m[key], &byH); err != nil {
				t.Fatalf("%s %s: %v", m["name"], key, err)
			}
			v, present := byH["1"]
			if !present || v != nil || len(byH) != 6 || byH["30"] == nil || byH["60"] == nil {
				t.Errorf("%s %s: got %s, want all five horizons and 60, \"1\": null and a value at 30 and 60", m["name"], key, m[key])
			}
		}
	}
}

// TestEvalJSONFailedMethod: a method that could not be computed is written as
// its name and error only, never with zeros that read like metrics.
func TestEvalJSONFailedMethod(t *testing.T) {
	r := evaluate.Report{Dataset: "d", TestCutoff: shopTest, Customers: 100,
		Positives: map[int]int{1: 0, 3: 5, 7: 10, 14: 20, 30: 40}, PositiveRate: map[int]float64{1: 0, 3: 0.05, 7: 0.1, 14: 0.2, 30: 0.4},
		Methods: []evaluate.MethodReport{
			{Name: "bgnbd", Err: "bgnbd fit: maximum likelihood did not converge"},
			{Name: "recency", AUC: map[int]float64{1: math.NaN(), 3: 0.6, 7: 0.61, 14: 0.62, 30: 0.63}, PRAUC: map[int]float64{1: math.NaN(), 3: 0.1, 7: 0.2, 14: 0.3, 30: 0.4},
				CIndex: 0.6, F1Threshold: -3},
		}}
	var b bytes.Buffer
	if err := writeEvalJSON(&b, r, ingest.Report{File: "f"}, time.UTC); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Methods []map[string]any `json:"methods"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	failed := got.Methods[0]
	if len(failed) != 2 || failed["name"] != "bgnbd" || failed["error"] != "bgnbd fit: maximum likelihood did not converge" {
		t.Errorf("failed method: got %v, want only its name and error", failed)
	}
	ok := got.Methods[1]
	if _, has := ok["error"]; has || ok["c_index"] != 0.6 || ok["jdata_score"] != 0.0 || ok["f1_threshold_30"] != -3.0 {
		t.Errorf("computed method: got %v, want every metric and no error", ok)
	}
}

// TestEvalOnlineRetailFailedBaseline runs the documented Online Retail example.
// BG/NBD used not to converge on the thinned sample ("linesearch: failed to
// converge"); it now fits on the no-dropout boundary and must be scored:
// AUC@30 0.6922, PR-AUC@30 0.4237 (the hazard model: 0.7020, 0.4233). A
// failed method's JSON entry carries its name and error only; the 1-day AUC
// (nobody buys on 2011-10-01) is null, not missing.
func TestEvalOnlineRetailFailedBaseline(t *testing.T) {
	path, err := sharedDataPath("online_retail/online_retail_sample_20k.csv")
	if err != nil {
		t.Skip(err)
	}
	stdout, stderr, err := runEval(t, "--dataset", "online-retail", "--data", path, "--json")
	if err != nil {
		t.Fatal(err)
	}
	// The sample's documented exclusions: 5,078 guest lines and 342 cancellations, no bad rows.
	if !strings.Contains(stderr, "20000 rows, 14580 events") || !strings.Contains(stderr, "0 invalid") {
		t.Errorf("stderr summary:\n%s\nwant 20000 rows, 14580 events, 0 invalid", stderr)
	}
	var got struct {
		Methods []map[string]json.RawMessage `json:"methods"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	for _, m := range got.Methods {
		if string(m["name"]) == `"bgnbd"` {
			var auc, pr map[string]*float64
			if err := json.Unmarshal(m["auc"], &auc); err != nil || auc["30"] == nil || math.Abs(*auc["30"]-0.69221) > 1e-4 {
				t.Errorf("bgnbd: error %s, auc %s, want AUC@30 0.69221", m["error"], m["auc"])
			}
			if err := json.Unmarshal(m["pr_auc"], &pr); err != nil || pr["30"] == nil || math.Abs(*pr["30"]-0.423704) > 1e-4 {
				t.Errorf("bgnbd: pr_auc %s, want PR-AUC@30 0.423704", m["pr_auc"])
			}
		}
		if _, failed := m["error"]; failed {
			if len(m) != 2 {
				t.Errorf("failed method %s: got keys %v, want name and error only", m["name"], slices.Sorted(maps.Keys(m)))
			}
			continue
		}
		if string(m["auc"]) == "" || !strings.Contains(string(m["auc"]), `"1":null`) {
			t.Errorf("%s auc: got %s, want \"1\":null", m["name"], m["auc"])
		}
	}
}

// TestEvalCSVDefaultProtocol: with --dataset csv the cutoffs may be left out;
// eval derives them from the log's span (evaluate.DefaultProtocol) and prints
// them. The shop log's purchases run from 2020-01-01 to 2020-06-30 (checked
// below from the log itself), so the test cutoff is 2020-07-01 − 30 days =
// 2020-06-01 and the training cutoffs step back 30 days: 05-02 (May has 31
// days), 04-02, 03-03, 02-02 (2020 is a leap year); 01-03 would be less than
// 30 days after the first purchase. Before, eval refused
// to run without --test-cutoff and --train-cutoffs.
func TestEvalCSVDefaultProtocol(t *testing.T) {
	l := newShopLog(false)
	var first, last int64 = math.MaxInt64, 0
	for _, ts := range l.buys {
		for _, s := range ts {
			first, last = min(first, s), max(last, s)
		}
	}
	if f, e := time.Unix(first, 0).UTC().Format(time.DateOnly), time.Unix(last, 0).UTC().Format(time.DateOnly); f != "2020-01-01" || e != "2020-06-30" {
		t.Fatalf("shop log spans %s .. %s, want 2020-01-01 .. 2020-06-30 (the hand-worked cutoffs assume it)", f, e)
	}
	data, mapping := l.write(t, shopMapping)

	stdout, stderr, err := runEval(t, "--dataset", "csv", "--data", data, "--mapping", mapping, "--json")
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr)
	}
	want := "protocol: test cutoff 2020-06-01, training cutoffs 2020-02-02, 2020-03-03, 2020-04-02, 2020-05-02 (test cutoff and training cutoffs by the default rule"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr:\n%s\nwant %q", stderr, want)
	}
	var got struct {
		TestCutoff string `json:"test_cutoff"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.TestCutoff != "2020-06-01" {
		t.Errorf("test_cutoff: got %s, want 2020-06-01", got.TestCutoff)
	}

	// Only the test cutoff given: training cutoffs 04-01, 03-02, 02-01 back
	// from it (2020-01-02 is before first purchase + 30 days).
	_, stderr, err = runEval(t, "--dataset", "csv", "--data", data, "--mapping", mapping, "--test-cutoff", "2020-05-01", "--json")
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr)
	}
	if want := "protocol: test cutoff 2020-05-01, training cutoffs 2020-02-01, 2020-03-02, 2020-04-01 (training cutoffs by the default rule"; !strings.Contains(stderr, want) {
		t.Errorf("stderr:\n%s\nwant %q", stderr, want)
	}
	// --horizon 90: the test window is 90 days, 2020-07-01 − 90 days =
	// 2020-04-02, training cutoffs 30 days apart back from it: 03-03, 02-02
	// (01-03 is before first purchase + 30 days); positives and metrics at 60
	// and 90 days are reported.
	stdout, stderr, err = runEval(t, "--dataset", "csv", "--data", data, "--mapping", mapping, "--horizon", "90", "--json")
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr)
	}
	if want := "protocol: test cutoff 2020-04-02, training cutoffs 2020-02-02, 2020-03-03 (test cutoff and training cutoffs by the default rule"; !strings.Contains(stderr, want) {
		t.Errorf("stderr:\n%s\nwant %q", stderr, want)
	}
	var long struct {
		Positives map[string]int `json:"positives"`
		Methods   []struct {
			Name  string              `json:"name"`
			AUC   map[string]*float64 `json:"auc"`
			Brier map[string]*float64 `json:"brier"`
		} `json:"methods"`
	}
	if err := json.Unmarshal([]byte(stdout), &long); err != nil {
		t.Fatal(err)
	}
	if _, ok := long.Positives["90"]; !ok || long.Positives["90"] < long.Positives["60"] || long.Positives["60"] < long.Positives["30"] {
		t.Errorf("positives %v: want 30 ≤ 60 ≤ 90 buyers", long.Positives)
	}
	if len(long.Methods) == 0 || long.Methods[0].Name != "hazard" || long.Methods[0].AUC["90"] == nil || long.Methods[0].Brier["90"] == nil {
		t.Errorf("hazard metrics at 90 days missing: %+v", long.Methods)
	}
	if _, _, err := runEval(t, "--dataset", "csv", "--data", data, "--mapping", mapping, "--horizon", "45"); err == nil || !strings.Contains(err.Error(), "--horizon 45") {
		t.Errorf("--horizon 45: got %v, want a refusal naming it", err)
	}
	// Both given: nothing is derived, nothing printed about the protocol.
	_, stderr, err = runEval(t, append([]string{"--dataset", "csv", "--data", data, "--mapping", mapping, "--json"}, shopCutoff...)...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "protocol:") {
		t.Errorf("stderr with both cutoffs given:\n%s\nwant no protocol line", stderr)
	}
}

// TestEvalCSVShortLog: a log under 90 days is refused with its span and the
// length the default protocol needs.
func TestEvalCSVShortLog(t *testing.T) {
	var rows []string
	for i := range 40 {
		d := time.Date(2021, 3, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, (i*7)%60)
		rows = append(rows, fmt.Sprintf("c%d,%d,buy,1", i%9, d.Unix()))
	}
	data, mapping := shopLog{rows: rows}.write(t, shopMapping)
	_, _, err := runEval(t, "--dataset", "csv", "--data", data, "--mapping", mapping)
	if err == nil {
		t.Fatal("got nil error, want the short-log refusal")
	}
	for _, want := range []string{"log too short", "events span 60 days (2021-03-01 .. 2021-04-29)", "needs at least 90"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// FuzzParseEvalCutoffs: the cutoff flags never panic, and what they accept is
// exactly the dates they were given.
func FuzzParseEvalCutoffs(f *testing.F) {
	f.Add("2020-05-01", "2020-03-01,2020-04-01")
	f.Add("", " 2020-03-01 , 2020-04-01")
	f.Add("2020-02-30", ",")
	f.Fuzz(func(t *testing.T, test, train string) {
		gotTest, gotTrain, err := parseEvalCutoffs(test, train)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "eval: --") {
				t.Fatalf("error %q does not name the flag", err)
			}
			return
		}
		if test == "" && !gotTest.IsZero() || test != "" && gotTest.Format(time.DateOnly) != test {
			t.Fatalf("test %q: got %s", test, gotTest)
		}
		if train == "" {
			if gotTrain != nil {
				t.Fatalf("train %q: got %v", train, gotTrain)
			}
			return
		}
		parts := strings.Split(train, ",")
		if len(parts) != len(gotTrain) {
			t.Fatalf("train %q: got %d cutoffs", train, len(gotTrain))
		}
		for i, p := range parts {
			if gotTrain[i].Format(time.DateOnly) != strings.TrimSpace(p) {
				t.Fatalf("train %q: cutoff %d is %s", train, i, gotTrain[i])
			}
		}
	})
}

// TestBadRowHint: the hint after too many bad rows names what the bad rows'
// reasons point at, most frequent first (it used to name the time layout and
// kind values whatever was wrong, e.g. for amounts written "$12.50").
func TestBadRowHint(t *testing.T) {
	rep := ingest.Report{Skipped: map[string]int{ingest.ReasonBadAmount: 3, ingest.ReasonBadTime: 1, ingest.ReasonCancellation: 9}}
	got := badRowHint(rep)
	amount, tm := strings.Index(got, "the amount column"), strings.Index(got, "the time layout")
	if amount < 0 || tm < 0 || amount > tm || strings.Contains(got, "kind values") {
		t.Errorf("hint %q: want the amount column first, then the time layout, and no kind values", got)
	}
	if got := badRowHint(ingest.Report{Skipped: map[string]int{ingest.ReasonCancellation: 2}}); !strings.Contains(got, "time layout and kind values") {
		t.Errorf("hint without a known reason %q: want the time layout and kind values", got)
	}
}
