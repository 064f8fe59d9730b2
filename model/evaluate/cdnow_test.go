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
	"github.com/kairos-fl/kairos/model/hazard"
)

// cdnowPath finds CDNOW_master.txt beside the repository or under $KAIROS_SHARED.
func cdnowPath(t *testing.T) string {
	t.Helper()
	var dirs []string
	if s := os.Getenv("KAIROS_SHARED"); s != "" {
		dirs = append(dirs, s)
	}
	dirs = append(dirs, "../../../shared")
	for _, d := range dirs {
		p := filepath.Join(d, "data", "cdnow", "CDNOW_master.txt")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("CDNOW_master.txt not found (set KAIROS_SHARED)")
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

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func envFloat(k string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil {
		return v
	}
	return def
}

func TestCDNOWReference(t *testing.T) {
	events := readCDNOW(t, cdnowPath(t))
	var train []time.Time
	switch os.Getenv("KAIROS_CUTOFFS") {
	case "ref":
		train = []time.Time{date("1997-07-01"), date("1997-09-01"), date("1997-11-01"), date("1998-01-01")}
	case "may":
		train = MonthlyCutoffs(date("1997-05-01"), date("1998-03-01"))
	case "semi":
		for _, c := range MonthlyCutoffs(date("1997-04-01"), date("1998-03-01")) {
			train = append(train, c, c.AddDate(0, 0, 14))
		}
		train = train[:len(train)-1]
	default:
		train = MonthlyCutoffs(date("1997-04-01"), date("1998-03-01"))
	}
	cfg := Config{
		Dataset: "cdnow", TestCutoff: date("1998-03-01"), TrainCutoffs: train, Seed: 1,
		Methods: DefaultMethods,
		Hazard: hazard.TrainOptions{
			Kind: os.Getenv("KAIROS_KIND"), Hidden: envInt("KAIROS_HIDDEN", 0),
			EarlyStopping: os.Getenv("KAIROS_ES") != "0", Anneal: os.Getenv("KAIROS_ANNEAL") == "1", L2: envFloat("KAIROS_L2", 1e-4), LearningRate: envFloat("KAIROS_LR", 0),
			BatchSize: envInt("KAIROS_BATCH", 0), Epochs: envInt("KAIROS_EPOCHS", 0),
		},
	}
	rep, err := Run(context.Background(), events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("train rows %d (positive %.4f), %+v", rep.TrainRows, rep.TrainPositiveRate, rep.TrainReport)
	for _, m := range rep.Methods {
		t.Logf("%-14s auc %v pr %v c %.4f jdata %.4f f1 %.4f", m.Name, m.AUC, m.PRAUC, m.CIndex, m.JData, m.F1)
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
	if got, want := byName[MethodRecency].AUC[30], 0.8090; math.Abs(got-want) > 0.002 {
		t.Errorf("recency AUC@30: got %.4f, want %.4f ± 0.002", got, want)
	}
	if got, want := byName[MethodHazard].AUC[30], 0.823; got < want {
		t.Errorf("hazard AUC@30: got %.4f, want ≥ %.3f", got, want)
	}
}
