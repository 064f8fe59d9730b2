package evaluate

import (
	"bufio"
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// cdnowPath finds CDNOW_master.txt under $KAIROS_DATA or beside the repository.
func cdnowPath(t *testing.T) string {
	t.Helper()
	var dirs []string
	if s := os.Getenv("KAIROS_DATA"); s != "" {
		dirs = append(dirs, s)
	}
	dirs = append(dirs, "../../../shared/data")
	for _, d := range dirs {
		p := filepath.Join(d, "cdnow", "CDNOW_master.txt")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("CDNOW_master.txt not found (set KAIROS_DATA)")
	return ""
}

// readCDNOW is a minimal reader for the test; the product reads through client/ingest.
func readCDNOW(t *testing.T, path string) []model.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []model.Event
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 {
			t.Fatalf("cdnow line %q: got %d fields, want 4", sc.Text(), len(fs))
		}
		d, err := time.Parse("20060102", fs[1])
		if err != nil {
			t.Fatal(err)
		}
		amt, err := strconv.ParseFloat(fs[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, model.Event{Customer: fs[0], Time: d, Kind: model.Purchase, Amount: amt, HasAmount: true})
	}
	return out
}

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

// TestCDNOWReference runs the CDNOW reference benchmark end to end with the
// settings of `kairos eval` and checks it against the figures in
// /work/shared/data/README.md: 23,570 customers, positive rate 8.62%, the peers'
// recency AUC 0.8090 and BG/NBD AUC 0.8118, and the hazard model's target.
func TestCDNOWReference(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the reference model")
	}
	events := readCDNOW(t, cdnowPath(t))
	test := date("1998-03-01")
	cfg := Config{
		Dataset: "cdnow", TestCutoff: test, Seed: 1,
		TrainCutoffs: SpacedCutoffs(date("1997-04-01"), test, 15*model.Day),
		Hazard:       DefaultHazardOptions(),
	}
	rep, err := Run(context.Background(), events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("train rows %d (positive %.4f), %+v", rep.TrainRows, rep.TrainPositiveRate, rep.TrainReport)
	for _, m := range rep.Methods {
		t.Logf("%-14s auc@30 %.4f pr-auc@30 %.4f c %.4f jdata %.4f f1 %.4f", m.Name, m.AUC[30], m.PRAUC[30], m.CIndex, m.JData, m.F1)
	}
	if got, want := rep.Customers, 23570; got != want {
		t.Errorf("customers: got %d, want %d", got, want)
	}
	if got, want := rep.PositiveRate[30], 0.0862; math.Abs(got-want) > 0.0001 {
		t.Errorf("positive rate: got %.5f, want %.4f ± 0.0001", got, want)
	}
	byName := map[string]MethodReport{}
	for _, m := range rep.Methods {
		byName[m.Name] = m
	}
	for _, c := range []struct {
		method string
		want   float64
	}{{MethodRecency, 0.8090}, {MethodFrequency365, 0.8029}, {MethodBGNBD, 0.8118}} {
		if got := byName[c.method].AUC[30]; math.Abs(got-c.want) > 0.002 {
			t.Errorf("%s AUC@30: got %.4f, want the peer value %.4f ± 0.002", c.method, got, c.want)
		}
	}
	if got, want := byName[MethodBGNBD].PRAUC[30], 0.3741; math.Abs(got-want) > 0.002 {
		t.Errorf("bgnbd PR-AUC@30: got %.4f, want the peer value %.4f ± 0.002", got, want)
	}
	// The bar is the best peer of the data README (logistic regression,
	// 0.8224 / 0.3884), not the figure of one model version: since schema 2
	// the default reaches 0.8237 / 0.3895 here (0.8233 / 0.3908 before).
	if got, want := byName[MethodHazard].AUC[30], 0.8224; got < want {
		t.Errorf("hazard AUC@30: got %.4f, want ≥ %.4f (logistic peer)", got, want)
	}
	if got, want := byName[MethodHazard].PRAUC[30], 0.3884; got < want {
		t.Errorf("hazard PR-AUC@30: got %.4f, want ≥ %.4f (logistic peer)", got, want)
	}
}
