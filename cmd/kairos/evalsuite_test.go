package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model/evaluate"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/suite"
)

// suiteDatasets returns the built-in suite resolved to the shared data
// folder, skipping the test when it is not there.
func suiteDatasets(t *testing.T) []suite.Dataset {
	t.Helper()
	dir, err := suiteDataDir("")
	if err != nil {
		t.Skip(err)
	}
	var out []suite.Dataset
	for _, d := range suite.Builtin() {
		d = d.Resolve(dir)
		if _, err := os.Stat(d.Path); err != nil {
			t.Skip(err)
		}
		out = append(out, d)
	}
	return out
}

// TestSuiteProtocolsMatchPublished reads the three built-in data sets with the
// suite's readers and splits them with its protocols (no model is trained:
// only the recency baseline, which cannot fail). The test customers, the
// 30-day positive rate and the recency AUC@30 are those the data README
// publishes from an independent pandas pipeline: CDNOW 23,570 at 8.62%
// (AUC 0.8090), Online Retail full 4,067 at 34.1% (0.6711), grocery 1,525 at
// 10.1% (0.9297). Online Retail counts only if a purchase is a non-cancelled
// invoice of a known customer: with the export's empty customer ids read as
// bad rows and its lines counted as purchases the split would differ.
func TestSuiteProtocolsMatchPublished(t *testing.T) {
	datasets := suiteDatasets(t)
	want := map[string]struct {
		customers  int
		rate, auc  float64
		rateDigits float64
	}{
		"cdnow":              {23570, 0.0862, 0.8090, 1e-4},
		"online-retail-full": {4067, 0.341, 0.6711, 1e-3},
		"grocery":            {1525, 0.101, 0.9297, 1e-3},
	}
	res, err := suite.Run(context.Background(), datasets, suite.Options{
		Load: suiteLoader(io.Discard), Baselines: []string{evaluate.MethodRecency}, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Datasets {
		w, ok := want[d.Name]
		if !ok {
			t.Errorf("unexpected data set %s", d.Name)
			continue
		}
		if d.Error != "" {
			t.Errorf("%s: %s", d.Name, d.Error)
			continue
		}
		rate := math.NaN()
		if d.PositiveRate != nil {
			rate = *d.PositiveRate
		}
		// The README rounds the rate to its last digit.
		if d.Customers != w.customers || math.Abs(rate-w.rate) > w.rateDigits/2 {
			t.Errorf("%s: got %d test customers at %.4f, want %d at %g", d.Name, d.Customers, rate, w.customers, w.rate)
		}
		m := d.Methods[0]
		if m.Error != "" || m.AUC["30"] == nil || math.Abs(*m.AUC["30"]-w.auc) > 5e-5 {
			t.Errorf("%s: recency AUC@30 %v (error %q), want %.4f", d.Name, m.AUC["30"], m.Error, w.auc)
		}
	}
}

// TestEvalSuiteCommand runs `kairos eval --suite-file F --json --plots DIR`
// with a file that keeps only the grocery protocol (the fastest data set) and
// checks the printed JSON's shape — every Kairos model and baseline, metrics
// keyed by horizon — and that both charts are written as SVG.
func TestEvalSuiteCommand(t *testing.T) {
	dir, err := suiteDataDir("")
	if err != nil {
		t.Skip(err)
	}
	tmp := t.TempDir()
	grocery, err := filepath.Abs(filepath.Join(dir, "grocery_btydplus/groceryElog.csv"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(tmp, "suite.yaml")
	src := "builtin: false\ndatasets:\n  - name: grocery-only\n    path: " + grocery +
		"\n    format: grocery\n    test_cutoff: 2007-12-01\n    train_cutoffs: [2007-03-01, 2007-05-01, 2007-07-01, 2007-09-01, 2007-10-01]\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	plots := filepath.Join(tmp, "plots")
	cmd := newRootCmd()
	var stdout bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"eval", "--suite-file", file, "--json", "--plots", plots, "--dp-epsilon", "1", "--dp-delta", "1e-6", "--classic", "--whether", "0.5"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Datasets []struct {
			Name      string `json:"name"`
			Customers int    `json:"customers"`
			Methods   []struct {
				Name  string              `json:"name"`
				Kind  string              `json:"kind"`
				AUC   map[string]*float64 `json:"auc"`
				PRAUC map[string]*float64 `json:"pr_auc"`
				Brier map[string]*float64 `json:"brier"`
				ECE   map[string]*float64 `json:"ece"`
				Error string              `json:"error"`
			} `json:"methods"`
		} `json:"datasets"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("decode: %v\n%s", err, stdout.String())
	}
	if len(got.Datasets) != 1 || got.Datasets[0].Name != "grocery-only" || got.Datasets[0].Customers != 1525 {
		t.Fatalf("got %+v, want one data set grocery-only with 1525 customers", got.Datasets)
	}
	wantMethods := []struct {
		name, kind string
		probs      bool
	}{{"hazard", "kairos", true}, {"mlp", "kairos", true}, {"hazard-dp-eps1", "kairos", true}, {"hazard-whether0.5-dp-eps1", "kairos", true},
		{"hazard+bgnbd-dp-eps1", "kairos", true}, {"hazard+bgnbd", "kairos", true}, {"hazard-whether0.5", "kairos", true}}
	for _, b := range suite.DefaultBaselines() {
		wantMethods = append(wantMethods, struct {
			name, kind string
			probs      bool
		}{b, "baseline", b == evaluate.MethodBGNBD})
	}
	ms := got.Datasets[0].Methods
	if len(ms) != len(wantMethods) {
		t.Fatalf("got %d methods, want %d", len(ms), len(wantMethods))
	}
	for i, w := range wantMethods {
		m := ms[i]
		if m.Name != w.name || m.Kind != w.kind || m.Error != "" {
			t.Errorf("method %d: got %s %s %q, want %s %s", i, m.Name, m.Kind, m.Error, w.name, w.kind)
			continue
		}
		if m.AUC["7"] == nil || m.AUC["30"] == nil || m.PRAUC["30"] == nil || !(*m.AUC["30"] > 0.85) {
			t.Errorf("%s: auc %v pr_auc %v: want AUC@7, AUC@30 > 0.85 and PR-AUC@30", m.Name, m.AUC, m.PRAUC)
		}
		if hasProbs := m.Brier["30"] != nil && m.ECE["30"] != nil; hasProbs != w.probs {
			t.Errorf("%s: brier %v ece %v, want them present = %v", m.Name, m.Brier, m.ECE, w.probs)
		}
	}
	for _, name := range []string{"grocery-only-reliability.svg", "grocery-only-gain.svg"} {
		b, err := os.ReadFile(filepath.Join(plots, name))
		if err != nil {
			t.Fatal(err)
		}
		var root struct {
			XMLName xml.Name
			Circles []struct {
				Series string `xml:"data-series,attr"`
			} `xml:"circle"`
		}
		if err := xml.Unmarshal(b, &root); err != nil || root.XMLName.Local != "svg" || len(root.Circles) == 0 {
			t.Errorf("%s: root %q, %d points, %v: want an SVG with points", name, root.XMLName.Local, len(root.Circles), err)
		}
		if !strings.Contains(string(b), `data-series="hazard"`) {
			t.Errorf("%s: no hazard series", name)
		}
	}
}

// TestEvalTableECE: `kairos eval` prints ECE@30 for the probabilistic methods,
// and it equals the count-weighted mean |predicted − observed| recomputed from
// the calibration table the same output prints (four decimals each, hence the
// tolerance); the JSON of the same report gives it as "ece": {"30": …}.
func TestEvalTableECE(t *testing.T) {
	path, err := sharedDataPath("cdnow/CDNOW_sample.txt")
	if err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	events, input, err := readEvalEvents(ctx, io.Discard, path, ingest.Options{Format: ingest.CDNOWSample})
	if err != nil {
		t.Fatal(err)
	}
	ds := evalDatasets["cdnow-sample"]
	test, _ := parseDate(ds.test)
	rep, err := evaluate.Run(ctx, events, evaluate.Config{Dataset: "cdnow-sample", TestCutoff: test, TrainCutoffs: ds.train(test),
		Seed: 1, Hazard: evaluate.DefaultHazardOptions()})
	if err != nil {
		t.Fatal(err)
	}
	var tableOut, jsonOut bytes.Buffer
	if err := writeEvalTable(&tableOut, rep, time.UTC); err != nil {
		t.Fatal(err)
	}
	if err := writeEvalJSON(&jsonOut, rep, input, time.UTC); err != nil {
		t.Fatal(err)
	}
	table := tableOut.String()
	lines := strings.Split(table, "\n")
	col := -1
	printed := map[string]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "method" && col < 0 { // the main table's header, not the longer horizons'
			col = slices.Index(f, "ECE@30")
			continue
		}
		if col > 0 && len(f) == 12 {
			printed[f[0]] = f[col]
		}
	}
	if col < 0 {
		t.Fatalf("no ECE@30 column in\n%s", table)
	}
	for _, name := range []string{"recency", "frequency_365"} {
		if printed[name] != "-" {
			t.Errorf("%s ECE@30 %q, want - (no probabilities)", name, printed[name])
		}
	}
	var js struct {
		Methods []struct {
			Name string              `json:"name"`
			ECE  map[string]*float64 `json:"ece"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(jsonOut.Bytes(), &js); err != nil {
		t.Fatal(err)
	}
	for _, m := range js.Methods {
		if probs := m.Name == "hazard" || m.Name == "bgnbd"; probs != (m.ECE["30"] != nil) {
			t.Errorf("%s: JSON ece %v, want it present = %v", m.Name, m.ECE, probs)
		}
	}
	for _, name := range []string{"hazard", "bgnbd"} {
		var sum, n float64
		in := false
		for _, l := range lines {
			if strings.HasPrefix(l, name+" 30-day calibration") {
				in = true
				continue
			}
			if in && !strings.HasPrefix(l, "  [") {
				break
			}
			if in {
				var lo, hi, mp, ob float64
				var cnt int
				if _, err := fmt.Sscanf(strings.TrimSpace(l), "[%f, %f)  n=%d mean predicted %f  observed %f", &lo, &hi, &cnt, &mp, &ob); err != nil {
					t.Fatalf("calibration line %q: %v", l, err)
				}
				sum += float64(cnt) * math.Abs(mp-ob)
				n += float64(cnt)
			}
		}
		if n != 2357 {
			t.Fatalf("%s: calibration counts sum to %g, want 2357", name, n)
		}
		want := sum / n
		got, err := strconv.ParseFloat(printed[name], 64)
		if err != nil || math.Abs(got-want) > 2e-4 {
			t.Errorf("%s: printed ECE@30 %q, recomputed %.5f", name, printed[name], want)
		}
		for _, m := range js.Methods {
			if m.Name == name && (m.ECE["30"] == nil || math.Abs(*m.ECE["30"]-got) > 1e-4) {
				t.Errorf("%s: JSON ece %v, table %v", name, m.ECE, got)
			}
		}
	}
}

// BenchmarkEvalSuite runs the whole built-in suite (every model and baseline
// on the three data sets), the job `time kairos eval --suite` measures:
//
//	go test -run XXX -bench EvalSuite -benchtime 1x ./cmd/kairos/
func BenchmarkEvalSuite(b *testing.B) {
	dir, err := suiteDataDir("")
	if err != nil {
		b.Skip(err)
	}
	var datasets []suite.Dataset
	for _, d := range suite.Builtin() {
		datasets = append(datasets, d.Resolve(dir))
	}
	for b.Loop() {
		res, err := suite.Run(context.Background(), datasets, suite.Options{
			Load: suiteLoader(io.Discard), Models: suite.DefaultModels(), Baselines: suite.DefaultBaselines(), Seed: 1,
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range res.Datasets {
			if d.Error != "" {
				b.Fatalf("%s: %s", d.Name, d.Error)
			}
		}
	}
}

// TestEvalSuiteRefusesSingleRunFlags: a flag of a single evaluation beside
// --suite is an error naming it, not silently ignored; a bad suite file is an
// error naming the key.
func TestEvalSuiteRefusesSingleRunFlags(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("datasets:\n  - name: x\n    paht: a.csv\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--suite", "--dataset", "taobao"}, "--dataset cannot be combined with --suite"},
		{[]string{"--suite", "--model", "mlp", "--dp-epsilon", "1"}, "--model cannot be combined"},
		{[]string{"--suite", "--dp-sweep", "1,2"}, "--dp-sweep cannot be combined"},
		{[]string{"--suite", "--whether", "1.5"}, "--whether 1.5: want a weight in (0, 1]"},
		{[]string{"--suite", "--whether", "NaN"}, "--whether NaN: want a weight in (0, 1]"},
		{[]string{"--suite-file", bad, "--data-dir", t.TempDir()}, `line 3, column 5: unknown key "paht" in datasets[0]`},
	}
	for _, tc := range tests {
		cmd := newRootCmd()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"eval"}, tc.args...))
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestEvalSingleRunSuiteFlags: a single evaluation trains with --rhythm (the
// model file it writes carries the rhythm term) and refuses the flags only
// the suite reads, which it used to ignore without a word.
func TestEvalSingleRunSuiteFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--plots", t.TempDir()},
		{"--data-dir", t.TempDir()},
		{"--dp-prior=false"},
	} {
		cmd := newRootCmd()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"eval", "--dataset", "cdnow-sample"}, args...))
		err := cmd.Execute()
		if want := args[0][:strings.IndexAny(args[0]+"=", "=")] + " only apply with --suite"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: got %v, want an error containing %q", args, err, want)
		}
	}
	if _, err := sharedDataPath("cdnow/CDNOW_sample.txt"); err != nil {
		t.Skip(err)
	}
	out := filepath.Join(t.TempDir(), "model.json")
	cmd := newRootCmd()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"eval", "--dataset", "cdnow-sample", "--rhythm", "--json", "--out", out})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := hazard.Unmarshal(b, "")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Rhythm() {
		t.Error("eval --rhythm wrote a model without the rhythm term")
	}
}

// TestSuiteFileWithoutSharedData: a user's suite file of its own logs
// (builtin: false) was refused for want of the shared data folder, which
// only the built-in data sets read; a suite that keeps a built-in data set
// still needs it, and says which.
func TestSuiteFileWithoutSharedData(t *testing.T) {
	data, mapping := newShopLog(false).write(t, shopMapping)
	dir := filepath.Dir(data)
	own := filepath.Join(dir, "own.yaml")
	body := "builtin: false\ndatasets:\n  - {name: shop, path: " + data + ", format: csv, mapping: " + mapping +
		", test_cutoff: 2020-05-01, train_cutoffs: [2020-03-01, 2020-04-01]}\n"
	if err := os.WriteFile(own, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	with := filepath.Join(dir, "with.yaml")
	if err := os.WriteFile(with, []byte(strings.Replace(body, "builtin: false\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KAIROS_DATA", "")
	t.Chdir(t.TempDir()) // no ../shared/data above it
	if _, err := suiteDataDir(""); err == nil {
		t.Skip("a shared data folder is reachable from the temporary directory")
	}
	out, _, err := runEval(t, "--suite-file", own, "--json")
	if err != nil {
		t.Fatalf("own logs only: %v", err)
	}
	if !strings.Contains(out, `"name":"shop"`) {
		t.Errorf("output %.200q does not hold the shop data set", out)
	}
	if _, _, err := runEval(t, "--suite-file", with, "--json"); err == nil || !strings.Contains(err.Error(), "built-in data set cdnow") ||
		!strings.Contains(err.Error(), "--data-dir") || !strings.Contains(err.Error(), "builtin: false") {
		t.Errorf("with the built-ins: %v, want an error naming the built-in data set, --data-dir and builtin: false", err)
	}
}

// TestSuiteTableNotesTheChoice: the suite's text table says under it which
// model the default row chose and why, and the own-rhythm weight where one
// was kept (none where it is 0).
func TestSuiteTableNotesTheChoice(t *testing.T) {
	one := 0.9
	res := suite.Result{Datasets: []suite.DatasetResult{{Name: "shop", Customers: 10, Methods: []suite.Method{
		{Name: "hazard", Kind: suite.KindKairos, AUC: map[string]*float64{"30": &one},
			Selection: &suite.Selection{Chosen: "mlp", Reason: "mlp chosen: inner AUC@30 +0.0100 (5.0 standard errors)"},
			OwnDay:    &suite.OwnDay{Weight: 2, TrainMAE: 3.5, TrainMAE0: 5}},
		{Name: "mlp", Kind: suite.KindKairos, AUC: map[string]*float64{"30": &one}, OwnDay: &suite.OwnDay{}},
	}}}}
	var b bytes.Buffer
	if err := writeSuiteTable(&b, res); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"shop: hazard: mlp chosen: inner AUC@30 +0.0100 (5.0 standard errors)\n",
		"shop: hazard: predicted day weighed by the customer's own rhythm (weight 2; training buyers' MAE 3.50 days, 5.00 without)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "shop: mlp: predicted day") {
		t.Errorf("a weight of 0 is noted:\n%s", out)
	}
}
