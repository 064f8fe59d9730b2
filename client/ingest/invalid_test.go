package ingest

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model"
)

// TestTooManyInvalid reads files in which a given number of 200 data rows are
// bad and checks that a Skip read fails exactly when more than
// MaxInvalidShare of them are, with the first bad lines in the message.
func TestTooManyInvalid(t *testing.T) {
	file := func(bad int) string {
		var b strings.Builder
		b.WriteString("user,ts,kind,amount\n")
		for i := range 200 {
			ts := fmt.Sprint(1700000000 + i)
			if i < bad {
				ts = "2023-11-14 22:13:20" // a date where the mapping says unix seconds
			}
			fmt.Fprintf(&b, "u%d,%s,buy,1\n", i, ts)
		}
		return b.String()
	}
	tests := []struct {
		name    string
		bad     int
		share   float64
		wantErr bool
	}{
		{"none bad", 0, 0.01, false},
		{"1% bad, 1% allowed", 2, 0.01, false},
		{"1.5% bad, 1% allowed", 3, 0.01, true},
		{"all bad, 1% allowed", 200, 0.01, true},
		{"all bad, no bound", 200, 0, false},
		{"all bad, 100% allowed", 200, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, rep, err := readString(t, file(tt.bad), Options{Format: CSV, Mapping: testMapping(), OnError: Skip, MaxInvalidShare: tt.share})
			if len(evs) != 200-tt.bad || rep.Invalid != tt.bad || rep.Skipped[ReasonBadTime] != tt.bad {
				t.Errorf("got %d events, %d invalid (%v), want %d and %d", len(evs), rep.Invalid, rep.Skipped, 200-tt.bad, tt.bad)
			}
			var tm *TooManyInvalidError
			if got := errors.As(err, &tm); got != tt.wantErr {
				t.Fatalf("got error %v, want a *TooManyInvalidError: %v", err, tt.wantErr)
			}
			if !tt.wantErr {
				return
			}
			if tm.Report.Invalid != tt.bad || tm.Report.Rows != 200 || tm.MaxShare != tt.share {
				t.Errorf("error report: got %d of %d invalid at share %v, want %d of 200 at %v", tm.Report.Invalid, tm.Report.Rows, tm.MaxShare, tt.bad, tt.share)
			}
			msg := err.Error()
			want := fmt.Sprintf("read in.txt: %d of 200 data rows (%.1f%%) are bad input, more than the 1%% allowed\n  unparseable time: %d rows\nfirst bad rows:\n"+
				`  line 2, column 2: unparseable time: time "2023-11-14 22:13:20" is not an integer`, tt.bad, float64(tt.bad)/2, tt.bad)
			if !strings.HasPrefix(msg, want) {
				t.Errorf("got message\n%s\nwant it to start with\n%s", msg, want)
			}
			if n := strings.Count(msg, "\n  line "); n != min(tt.bad, 5) {
				t.Errorf("message lists %d bad lines, want %d", n, min(tt.bad, 5))
			}
		})
	}
}

// TestExcludedRowsAreNotInvalid: rows a format excludes by rule (Online Retail
// guest checkouts and cancellations, ignored kind values) do not count toward
// MaxInvalidShare even when they are most of the file.
func TestExcludedRowsAreNotInvalid(t *testing.T) {
	in := retailHead +
		`"1","A","x",2,"2011-02-28 10:00:00",1.5,NA,"UK"` + "\n" +
		`"C2","A","x",-2,"2011-02-28 11:00:00",1.5,17850,"UK"` + "\n" +
		`"3","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n"
	evs, rep, err := readString(t, in, Options{Format: OnlineRetail, OnError: Skip, MaxInvalidShare: 0.01})
	if err != nil || len(evs) != 1 || rep.Invalid != 0 || rep.Skipped[ReasonMissingCustomer] != 1 || rep.Skipped[ReasonCancellation] != 1 {
		t.Errorf("online retail: got %d events, report %+v, error %v; want 1 event, one guest and one cancellation skipped, no error", len(evs), rep, err)
	}
	m := testMapping()
	m.KindValues = map[string]model.Kind{"buy": model.Purchase}
	m.IgnoreKinds = []string{"pv", "cart"}
	// The ignored rows may be otherwise malformed (no customer, no time).
	evs, rep, err = readString(t, "user,ts,kind,amount\nu1,100,pv,\n,,cart,\nu1,200,buy,3\n", Options{Format: CSV, Mapping: m, OnError: Skip, MaxInvalidShare: 0.01})
	if err != nil || len(evs) != 1 || rep.Invalid != 0 || rep.Skipped[ReasonIgnoredKind] != 2 {
		t.Errorf("csv: got %d events, report %+v, error %v; want 1 event and 2 ignored rows", len(evs), rep, err)
	}
}

// TestUnknownKindsCounted: every kind value the mapping does not map is
// counted by value and named in the report, most frequent first.
func TestUnknownKindsCounted(t *testing.T) {
	m := testMapping()
	m.KindValues = map[string]model.Kind{"buy": model.Purchase}
	var b strings.Builder
	b.WriteString("user,ts,kind,amount\n")
	for i, k := range []string{"pv", "buy", "pv", "cart", "pv", "fav", "buy", "cart", "pv", "pv"} {
		fmt.Fprintf(&b, "u1,%d,%s,\n", 100+i, k)
	}
	_, rep, err := readString(t, b.String(), Options{Format: CSV, Mapping: m, OnError: Skip})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"pv": 5, "cart": 2, "fav": 1}
	if len(rep.UnknownKinds) != len(want) || rep.Skipped[ReasonUnknownKind] != 8 || rep.Events != 2 {
		t.Errorf("got unknown kinds %v (%d rows), %d events; want %v (8 rows), 2 events", rep.UnknownKinds, rep.Skipped[ReasonUnknownKind], rep.Events, want)
	}
	for v, n := range want {
		if rep.UnknownKinds[v] != n {
			t.Errorf("kind value %q: got %d rows, want %d", v, rep.UnknownKinds[v], n)
		}
	}
	s := rep.String()
	wantLines := "\n  kind value \"pv\" is not mapped: 5 rows\n  kind value \"cart\" is not mapped: 2 rows\n  kind value \"fav\" is not mapped: 1 rows"
	if !strings.Contains(s, wantLines) {
		t.Errorf("report\n%s\nlacks%s", s, wantLines)
	}
	// Under a bound, the failure names the values too.
	_, _, err = readString(t, b.String(), Options{Format: CSV, Mapping: m, OnError: Skip, MaxInvalidShare: 0.5})
	if err == nil || !strings.Contains(err.Error(), wantLines) || !strings.Contains(err.Error(), "8 of 10 data rows (80.0%)") {
		t.Errorf("got %v, want a bound error naming 8 of 10 rows and%s", err, wantLines)
	}
}

// TestUnknownKindsBounded: a file with many distinct unmapped values keeps at
// most maxKindValues of them, while the per-reason total stays exact.
func TestUnknownKindsBounded(t *testing.T) {
	var b strings.Builder
	for i := range 3 * maxKindValues {
		fmt.Fprintf(&b, "1,2,3,k%d,1511544070\n", i)
	}
	_, rep, err := readString(t, b.String(), Options{Format: Taobao, OnError: Skip})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.UnknownKinds) != maxKindValues || rep.Skipped[ReasonUnknownKind] != 3*maxKindValues || rep.UnknownKinds["k0"] != 1 {
		t.Errorf("got %d distinct values (k0: %d), %d rows; want %d, 1, %d", len(rep.UnknownKinds), rep.UnknownKinds["k0"], rep.Skipped[ReasonUnknownKind], maxKindValues, 3*maxKindValues)
	}
}

func TestMaxInvalidShareValidated(t *testing.T) {
	for _, share := range []float64{-0.01, 1.5, math.NaN(), math.Inf(1)} {
		_, _, err := readString(t, "", Options{Format: Taobao, OnError: Skip, MaxInvalidShare: share})
		if err == nil || !strings.Contains(err.Error(), "max invalid share") {
			t.Errorf("share %v: got %v, want an options error", share, err)
		}
	}
}
