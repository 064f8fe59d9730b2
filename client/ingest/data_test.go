package ingest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// sharedData returns the path of a file in the shared data folder, skipping
// the test when the folder is not there (a checkout outside the workspace).
func sharedData(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	return p
}

type tally struct {
	events    int
	kinds     map[model.Kind]int
	customers map[string]bool
	amount    float64
	first     time.Time
	last      time.Time
}

func (ta *tally) add(ev model.Event) error {
	if ta.kinds == nil {
		ta.kinds, ta.customers = map[model.Kind]int{}, map[string]bool{}
	}
	if ta.events == 0 || ev.Time.Before(ta.first) {
		ta.first = ev.Time
	}
	if ta.events == 0 || ev.Time.After(ta.last) {
		ta.last = ev.Time
	}
	ta.events++
	ta.kinds[ev.Kind]++
	ta.customers[ev.Customer] = true
	ta.amount += ev.Amount
	return nil
}

// The expected figures below come from the data README and were recomputed
// with awk on the raw files:
//
//	awk 'NR>1{c[$1]=1; s+=$4} END{print NR-1, length(c), s}' CDNOW_master.txt
//	awk '{c[$2]=1; s+=$5} END{print NR, length(c), s}' CDNOW_sample.txt
func TestReadCDNOW(t *testing.T) {
	tests := []struct {
		file          string
		format        Format
		rows, cust    int
		amount        float64
		first, last   string
		firstCustomer string
	}{
		{"cdnow/CDNOW_master.txt", CDNOW, 69659, 23570, 2500315.63, "1997-01-01", "1998-06-30", "00001"},
		{"cdnow/CDNOW_sample.txt", CDNOWSample, 6919, 2357, 244091.94, "1997-01-01", "1998-06-30", "0001"},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			var ta tally
			var firstCust string
			rep, err := ReadFile(context.Background(), sharedData(t, tt.file), Options{Format: tt.format}, func(ev model.Event) error {
				if firstCust == "" {
					firstCust = ev.Customer
				}
				return ta.add(ev)
			})
			if err != nil {
				t.Fatalf("ReadFile: %v", err)
			}
			if rep.Rows != tt.rows || rep.Events != tt.rows || ta.events != tt.rows {
				t.Errorf("got rows %d, events %d (emitted %d), want %d", rep.Rows, rep.Events, ta.events, tt.rows)
			}
			if got := ta.kinds[model.Purchase]; got != tt.rows {
				t.Errorf("got %d purchases, want %d", got, tt.rows)
			}
			if got := len(ta.customers); got != tt.cust {
				t.Errorf("got %d customers, want %d", got, tt.cust)
			}
			if d := ta.amount - tt.amount; d > 0.01 || d < -0.01 {
				t.Errorf("got total amount %.2f, want %.2f", ta.amount, tt.amount)
			}
			if got := ta.first.Format(time.DateOnly); got != tt.first {
				t.Errorf("got first date %s, want %s", got, tt.first)
			}
			if got := ta.last.Format(time.DateOnly); got != tt.last {
				t.Errorf("got last date %s, want %s", got, tt.last)
			}
			if !rep.First.Equal(ta.first) || !rep.Last.Equal(ta.last) {
				t.Errorf("got report range %v..%v, want %v..%v", rep.First, rep.Last, ta.first, ta.last)
			}
			if firstCust != tt.firstCustomer {
				t.Errorf("got first customer %q, want %q", firstCust, tt.firstCustomer)
			}
			if rep.Invalid != 0 || len(rep.Skipped) != 0 || rep.OutOfRange != 0 {
				t.Errorf("got invalid %d, skipped %v, out of range %d, want none", rep.Invalid, rep.Skipped, rep.OutOfRange)
			}
		})
	}
}

// TestCDNOWLocation checks that dates are local midnights: the first purchase,
// 1997-01-01 in America/New_York, is 05:00 UTC.
func TestCDNOWLocation(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	var first time.Time
	_, err = ReadFile(context.Background(), sharedData(t, "cdnow/CDNOW_master.txt"), Options{Format: CDNOW, Location: ny}, func(ev model.Event) error {
		if first.IsZero() {
			first = ev.Time
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(1997, 1, 1, 5, 0, 0, 0, time.UTC); !first.Equal(want) || first.Location() != time.UTC {
		t.Errorf("got first event at %v, want %v in UTC", first, want)
	}
}

// Taobao figures: the data README gives the behaviour counts; the
// out-of-range rows were counted independently with
//
//	awk -F, '$5<1511539200 || $5>=1512316800' UserBehavior_head84k.csv | wc -l   # 35
//	awk -F, '$5<1511539200 || $5>=1512316800 {k[$4]++} END{for(x in k) print x,k[x]}'  # pv 35
//
// where 1511539200 = 2017-11-25T00:00+08:00 and 1512316800 = 2017-12-04T00:00+08:00.
// Distinct users: awk -F, '{u[$1]=1} END{print length(u)}' gives 815.
func TestReadTaobao(t *testing.T) {
	from, to := TaobaoRange()
	if from.Unix() != 1511539200 || to.Unix() != 1512316800 {
		t.Fatalf("got TaobaoRange %d..%d, want 1511539200..1512316800", from.Unix(), to.Unix())
	}
	path := sharedData(t, "taobao/UserBehavior_head84k.csv")
	tests := []struct {
		name       string
		opts       Options
		events     int
		outOfRange int
		pv         int
	}{
		{"unbounded", Options{Format: Taobao}, 84475, 0, 75872},
		{"documented range", Options{Format: Taobao, ValidFrom: from, ValidTo: to}, 84475 - 35, 35, 75872 - 35},
		{"documented range, skip", Options{Format: Taobao, ValidFrom: from, ValidTo: to, OnError: Skip}, 84475 - 35, 35, 75872 - 35},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ta tally
			rep, err := ReadFile(context.Background(), path, tt.opts, ta.add)
			if err != nil {
				t.Fatalf("ReadFile: %v", err)
			}
			if rep.Rows != 84475 || rep.Events != tt.events || rep.OutOfRange != tt.outOfRange {
				t.Errorf("got rows %d, events %d, out of range %d; want 84475, %d, %d", rep.Rows, rep.Events, rep.OutOfRange, tt.events, tt.outOfRange)
			}
			want := map[model.Kind]int{model.View: tt.pv, model.Cart: 4497, model.Favorite: 2356, model.Purchase: 1750}
			for k, n := range want {
				if ta.kinds[k] != n {
					t.Errorf("got %d %v events, want %d", ta.kinds[k], k, n)
				}
			}
			if got := len(ta.customers); got != 815 && tt.outOfRange == 0 {
				t.Errorf("got %d users, want 815", got)
			}
			if tt.outOfRange > 0 {
				if len(rep.OutOfRangeRows) != maxExamples {
					t.Errorf("got %d out-of-range examples, want %d", len(rep.OutOfRangeRows), maxExamples)
				}
				// awk -F, '($5<1511539200 || $5>=1512316800) {print NR, $5; exit}' → 4171 1505117799
				if o := rep.OutOfRangeRows[0]; o.Line != 4171 || o.Time.Unix() != 1505117799 {
					t.Errorf("got first out-of-range row line %d at %d, want line 4171 at 1505117799", o.Line, o.Time.Unix())
				}
				if ta.first.Before(from) || !ta.last.Before(to) {
					t.Errorf("got events %v..%v, want inside [%v, %v)", ta.first, ta.last, from, to)
				}
			}
		})
	}
}

// Online Retail figures, computed with Python's csv module on the raw file
// (20,000 data lines) and cross-checked with grep:
//
//	grep -c ',NA,'  → 5078 lines without a customer (8 of them cancellations)
//	grep -c '^"C'   → 350 cancellations, so 342 with a customer
//	20000 − 5078 − 342 = 14580 purchase lines from 3017 customers in 34 countries
//	8144 distinct (customer, invoice) pairs; Σ Quantity·UnitPrice = 316047.01; United Kingdom has 13018 of the lines.
func TestReadOnlineRetail(t *testing.T) {
	path := sharedData(t, "online_retail/online_retail_sample_20k.csv")
	for _, policy := range []ErrorPolicy{FailFast, Skip} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var ta tally
		countries := map[string]int{}
		invoices := map[[2]string]bool{}
		rep, err := ReadOnlineRetail(context.Background(), f, path, Options{OnError: policy}, func(ev model.Event, l RetailLine) error {
			countries[l.Country]++
			invoices[[2]string{ev.Customer, l.Invoice}] = true
			return ta.add(ev)
		})
		f.Close()
		if err != nil {
			t.Fatalf("policy %d: %v", policy, err)
		}
		if rep.Rows != 20000 || rep.Events != 14580 || ta.events != 14580 {
			t.Errorf("got rows %d, events %d, want 20000, 14580", rep.Rows, rep.Events)
		}
		if got := rep.Skipped[ReasonMissingCustomer]; got != 5078 {
			t.Errorf("got %d missing customers, want 5078", got)
		}
		if got := rep.Skipped[ReasonCancellation]; got != 342 {
			t.Errorf("got %d cancellations, want 342", got)
		}
		if rep.Invalid != 0 {
			t.Errorf("got %d invalid rows, want 0: %v", rep.Invalid, rep.Errors)
		}
		if len(ta.customers) != 3017 || len(countries) != 34 || len(invoices) != 8144 {
			t.Errorf("got %d customers, %d countries, %d invoices; want 3017, 34, 8144", len(ta.customers), len(countries), len(invoices))
		}
		if countries["United Kingdom"] != 13018 {
			t.Errorf("got %d United Kingdom lines, want 13018", countries["United Kingdom"])
		}
		if d := ta.amount - 316047.01; d > 0.01 || d < -0.01 {
			t.Errorf("got total amount %.2f, want 316047.01", ta.amount)
		}
		if ta.kinds[model.Purchase] != 14580 {
			t.Errorf("got %d purchases, want 14580", ta.kinds[model.Purchase])
		}
	}
}
