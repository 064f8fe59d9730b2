package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
)

func testProvenance() Provenance {
	return Provenance{ModelVersion: 7, Round: "r<1>&", PublishedAt: time.Date(2026, 11, 27, 16, 0, 0, 123456789, time.UTC),
		SchemaHash: "ab", PolicyHash: "cd", Merge: "fedavg",
		Contributions: []protocol.Contribution{{Merchant: "m1", Epsilon: 1.25, Delta: 1e-6, Weight: 0.5}}}
}

// checkEncodeMatches compares the hand encoder with json.Marshal on p and
// on a batch holding p's customer in every omitempty shape. A non-finite
// number, which json.Marshal refuses, must give errNotFinite for a single
// answer and, in a batch, that customer's problem entry (the others intact).
func checkEncodeMatches(t *testing.T, p *Prediction) {
	t.Helper()
	prov, err := json.Marshal(p.Provenance)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json is the judge of what JSON cannot carry.
	_, jsonErr := json.Marshal(p.CustomerPrediction)
	_, nonFinite := errors.AsType[*json.UnsupportedValueError](jsonErr)
	got, gotErr := encodePrediction(p, prov)
	if nonFinite {
		if !errors.Is(gotErr, errNotFinite) || got != nil {
			t.Fatalf("single with %v: got %s (%v), want errNotFinite", jsonErr, got, gotErr)
		}
	} else if want, wantErr := json.Marshal(p); (gotErr == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("single: got %s (%v), want %s (%v)", got, gotErr, want, wantErr)
	}
	c := p.CustomerPrediction
	problem := &ItemProblem{Type: typeInvalidRequest, Title: "Bad Request", Status: 400, Detail: "x<y"}
	items := func() []BatchItem {
		return []BatchItem{
			{Customer: c.Customer, Within: &c.Within, ExpectedDays: c.ExpectedDays, MostLikelyDay: c.MostLikelyDay,
				MostLikelyDate: c.MostLikelyDate, Explanation: &c.Explanation},
			{Customer: c.Customer, Error: c.MostLikelyDate},
			{Customer: c.Customer, Problem: problem, Error: problem.Detail},
			{},
		}
	}
	b := &BatchPrediction{Merchant: p.Merchant, AsOf: p.AsOf, TimeZone: p.TimeZone, Provenance: p.Provenance, Results: items()}
	wantB := *b
	wantB.Results = items()
	if nonFinite {
		detail := `field "customers[0]": ` + errNotFinite.Error()
		wantB.Results[0] = BatchItem{Customer: c.Customer, Error: detail,
			Problem: &ItemProblem{Type: typeInvalidRequest, Title: "Unprocessable Entity", Status: 422, Detail: detail}}
	}
	want, wantErr := json.Marshal(&wantB)
	got, gotErr = encodeBatch(b, prov)
	if (gotErr == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("batch: got %s (%v), want %s (%v)", got, gotErr, want, wantErr)
	}
}

func samplePrediction(s string, f float64) *Prediction {
	return &Prediction{Merchant: "m1", AsOf: time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC), TimeZone: "Europe/Berlin",
		Provenance: testProvenance(),
		CustomerPrediction: CustomerPrediction{Customer: s,
			Within:       Within{D1: f, D3: 0.25, D7: 1e-7, D14: 0.999999999, D30: 1},
			ExpectedDays: f * 3, MostLikelyDay: 3, MostLikelyDate: "2026-11-29",
			Explanation: Explanation{Method: "linear_exact", Score: -f,
				Up:   []FeatureContribution{{Feature: s, Value: f, Standardized: -f / 7, Contribution: 1e21}},
				Down: []FeatureContribution{}}}}
}

// TestPredictEncodeMatchesJSON: the hand encoder gives json.Marshal's bytes,
// escapes and number formats included; a non-finite value is errNotFinite
// (single) or that customer's problem entry (batch), never a failed answer.
func TestPredictEncodeMatchesJSON(t *testing.T) {
	strs := []string{"c1", "", `q"uote\back`, "<tag>&amp;", "ü€😀", "\x00\x1f\x7f", "\xff\xfe", "\u2028\u2029"}
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.0 / 3, 1e-6, 9.99e-7, 1e-7, 1.5e-300, 1e20, 1e21, -1e21, 123456789.125,
		math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1)}
	for _, s := range strs {
		for _, f := range floats {
			checkEncodeMatches(t, samplePrediction(s, f))
		}
	}
	p := samplePrediction("c", 0.5)
	p.Explanation.Up, p.Explanation.Down = nil, nil
	p.Provenance.Contributions = nil
	p.AsOf = time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("X", 3600))
	checkEncodeMatches(t, p)
	p.AsOf = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	checkEncodeMatches(t, p)
	if got, want := must(encodeBatch(&BatchPrediction{}, must(json.Marshal(Provenance{})))), must(json.Marshal(&BatchPrediction{})); !bytes.Equal(got, want) {
		t.Errorf("empty batch: got %s, want %s", got, want)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzPredictEncode compares the hand encoder with json.Marshal on arbitrary
// strings and numbers.
func FuzzPredictEncode(f *testing.F) {
	f.Add("c1", 0.5, int64(0))
	f.Add("<\xff>", 1e-7, int64(-1))
	f.Add("", math.Inf(-1), int64(1<<40))
	f.Fuzz(func(t *testing.T, s string, x float64, sec int64) {
		p := samplePrediction(s, x)
		p.AsOf = time.Unix(sec%(1<<36), 0).UTC()
		p.MostLikelyDate = s
		checkEncodeMatches(t, p)
	})
}

func TestCustomerKey(t *testing.T) {
	for _, i := range []int{0, 7, 42, 999, 1000, 9999, 10000, 123456} {
		if got, want := customerKey(i), fmt.Sprintf("customer.%04d", i); got != want {
			t.Errorf("customerKey(%d): got %q, want %q", i, got, want)
		}
	}
}

// TestDayDates checks the local date of each day's middle, worked by hand:
// as_of 2026-11-27T12:30Z, so day k's middle is 2026-11-28T00:30Z + (k−1)
// days, which is the evening before in Los Angeles (UTC−8 in winter) and
// the same date in Berlin. The per-batch table must give what the
// single-customer path computes.
func TestDayDates(t *testing.T) {
	asOf := time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC)
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Skip(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip(err)
	}
	tests := []struct {
		loc  *time.Location
		day  int
		want string
	}{
		{la, 1, "2026-11-27"}, {la, 2, "2026-11-28"}, {la, 30, "2026-12-26"},
		{berlin, 1, "2026-11-28"}, {berlin, 30, "2026-12-27"},
		{time.UTC, 5, "2026-12-02"},
	}
	for _, tt := range tests {
		single := &scope{asOf: asOf, loc: tt.loc}
		batch := &scope{asOf: asOf, loc: tt.loc}
		batch.fillDates(30)
		if got := single.dayDate(tt.day); got != tt.want {
			t.Errorf("%s day %d: got %s, want %s", tt.loc, tt.day, got, tt.want)
		}
		if got := batch.dayDate(tt.day); got != tt.want {
			t.Errorf("%s day %d from the batch table: got %s, want %s", tt.loc, tt.day, got, tt.want)
		}
	}
}
