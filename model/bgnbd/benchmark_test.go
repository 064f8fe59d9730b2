package bgnbd

import (
	"bufio"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model/metrics"
)

// cdnowMaster is the full CDNOW file in the shared data folder (read-only,
// outside the repository); the test that needs it skips when it is absent.
const cdnowMaster = "../../../shared/data/cdnow/CDNOW_master.txt"

// TestCDNOWReferenceBaseline reproduces the BG/NBD row of the reference
// benchmark in /work/shared/data/README.md: fitted by MLE on the history
// before the test cutoff 1998-03-01, scored by P(at least one purchase in the
// next 30 days) against purchases in [cutoff, cutoff+30d): AUC 0.8118, PR-AUC
// 0.3741 (Python peers, 23,570 customers, positive rate 8.62%).
func TestCDNOWReferenceBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the 2 MB CDNOW master file")
	}
	f, err := os.Open(cdnowMaster)
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	defer f.Close()
	byID := make(map[string][]time.Time)
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for line := 2; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 {
			t.Fatalf("line %d: %d fields, want 4", line, len(fs))
		}
		d, err := time.Parse("20060102", fs[1])
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		byID[fs[0]] = append(byID[fs[0]], d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	cutoff := time.Date(1998, 3, 1, 0, 0, 0, 0, time.UTC)
	windowEnd := cutoff.AddDate(0, 0, 30)
	var (
		cs     []Customer
		labels []bool
		pos    int
	)
	for _, id := range ids {
		c, err := SummarizeBefore(byID[id], cutoff, week)
		if err != nil {
			t.Fatalf("customer %s: %v", id, err)
		}
		buys := false
		for _, p := range byID[id] {
			buys = buys || (!p.Before(cutoff) && p.Before(windowEnd))
		}
		if buys {
			pos++
		}
		cs = append(cs, c)
		labels = append(labels, buys)
	}
	if len(cs) != 23570 || math.Abs(float64(pos)/float64(len(cs))-0.0862) > 0.00005 {
		t.Fatalf("got %d customers, %d positives, want 23570 at 8.62%%", len(cs), pos)
	}
	p, _, err := Fit(cs, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scores := make([]float64, len(cs))
	for i, c := range cs {
		scores[i] = p.ProbPurchaseWithin(c, 30.0/7)
	}
	auc, err := metrics.AUC(scores, labels)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := metrics.AveragePrecision(scores, labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fit %+v: AUC %.4f, PR-AUC %.4f", p, auc, ap)
	if math.Abs(auc-0.8118) > 0.00005 || math.Abs(ap-0.3741) > 0.00005 {
		t.Errorf("got AUC %.5f, PR-AUC %.5f, want 0.8118, 0.3741 to 4 decimals", auc, ap)
	}
}

func TestSummarizeBefore(t *testing.T) {
	d := func(m time.Month, day, h int) time.Time { return time.Date(1998, m, day, h, 0, 0, 0, time.UTC) }
	purchases := []time.Time{d(1, 1, 10), d(2, 28, 23), d(3, 1, 0), d(3, 5, 0)}
	// Before the cutoff 1998-03-01 00:00: days Jan 1 and Feb 28 → x = 1,
	// t_x = 58 days, T = 59 days (to the cutoff's day).
	got, err := SummarizeBefore(purchases, d(3, 1, 0), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Customer{X: 1, Tx: 58, T: 59}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Summarize with the day before as end: same x and t_x, T one day shorter.
	got, err = Summarize(purchases, d(2, 28, 0), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Customer{X: 1, Tx: 58, T: 58}); got != want {
		t.Errorf("Summarize to Feb 28: got %+v, want %+v", got, want)
	}
	// A cutoff at noon keeps that morning's purchase: t_x = T.
	got, err = SummarizeBefore(purchases, d(3, 1, 12), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Customer{X: 2, Tx: 59, T: 59}); got != want {
		t.Errorf("noon cutoff: got %+v, want %+v", got, want)
	}
}

// TestFitUnitInvariance: measuring time in days instead of weeks multiplies α
// by 7 and leaves r, a and b unchanged; the likelihood, a density in the x
// repeat-purchase times, drops by a factor 7^x per customer, so the
// log-likelihood by Σx·log 7 (Σx = 2457 repeat purchases in the CDNOW sample).
func TestFitUnitInvariance(t *testing.T) {
	weeks := readSummaryFile(t, "testdata/cdnow_customers_summary.csv")
	days := make([]Customer, len(weeks))
	sumX := 0.0
	for i, c := range weeks {
		days[i] = Customer{X: c.X, Tx: 7 * c.Tx, T: 7 * c.T}
		sumX += c.X
	}
	if sumX != 2457 {
		t.Fatalf("got %v repeat purchases, want 2457", sumX)
	}
	pw, llw, err := Fit(weeks, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pd, lld, err := Fit(days, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"r", pd.R, pw.R}, {"alpha/7", pd.Alpha / 7, pw.Alpha}, {"a", pd.A, pw.A}, {"b", pd.B, pw.B},
		{"log-likelihood", lld, llw - sumX*math.Log(7)},
	} {
		if math.Abs(c.got-c.want) > 1e-5*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%s: got %.8f in days, want %.8f from weeks", c.name, c.got, c.want)
		}
	}
}
