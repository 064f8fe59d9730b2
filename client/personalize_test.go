package client

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

func TestPersonalizationCutoffs(t *testing.T) {
	nyc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cutoff := time.Date(1998, 3, 1, 0, 0, 0, 0, nyc).UTC()
	got := PersonalizationCutoffs(cutoff, nyc, 3)
	// 60, 120 and 180 days before 1 March 1998, at New York midnight.
	want := []time.Time{
		time.Date(1997, 9, 2, 0, 0, 0, 0, nyc), time.Date(1997, 11, 1, 0, 0, 0, 0, nyc), time.Date(1997, 12, 31, 0, 0, 0, 0, nyc),
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("cutoff %d: got %s, want %s", i, got[i], want[i])
		}
	}
}

// cadenceEvents gives each customer a fixed gap between purchases (7, 14, 45 or
// 120 days), starting at a random day of 1997, until mid-1998.
func cadenceEvents(customers int, seed uint64) []model.Event {
	rng := rand.New(rand.NewPCG(seed, 2))
	gaps := []int{7, 14, 45, 120}
	end := date(1998, 6, 1)
	var events []model.Event
	for i := range customers {
		gap := gaps[rng.IntN(len(gaps))]
		for d := date(1997, 1, 1).AddDate(0, 0, rng.IntN(365)); d.Before(end); d = d.AddDate(0, 0, gap) {
			events = append(events, model.Event{Customer: fmt.Sprint("c", i), Time: d, Kind: model.Purchase, Amount: 10, HasAmount: true})
		}
	}
	return events
}

func TestScorePersonalized(t *testing.T) {
	// The global model is the federation's starting point: zero weights, so it
	// ranks every customer alike (AUC 0.5). A shop whose customers buy on fixed
	// cadences personalises it, and the personalised p_30d ranks the customers
	// who really buy in the 30 days after the cutoff (read from the events)
	// far better.
	global, err := hazard.Initial(mustSchema(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	events := cadenceEvents(400, 1)
	cutoff := date(1998, 3, 1)
	p, err := Personalize(context.Background(), events, global, cutoff, time.UTC, train.PersonalizeOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Choice == train.ChoiceGlobal {
		t.Fatalf("choice: got %s (%s), want a personalised model", p.Choice, p.Reason)
	}
	buys := map[string]bool{}
	for _, e := range events {
		if !e.Time.Before(cutoff) && e.Time.Before(cutoff.Add(model.Horizon*model.Day)) {
			buys[e.Customer] = true
		}
	}
	auc := func(m *hazard.Model) float64 {
		t.Helper()
		var buf bytes.Buffer
		if _, err := Score(context.Background(), events, ScoreOptions{Model: m, Cutoff: cutoff}, &buf); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var s []float64
		var y []bool
		for _, r := range recs[1:] {
			v, err := strconv.ParseFloat(r[5], 64)
			if err != nil {
				t.Fatal(err)
			}
			s, y = append(s, v), append(y, buys[r[0]])
		}
		a, err := metrics.AUC(s, y)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	got, glob := auc(p.Model), auc(global)
	t.Logf("%s: AUC@30 of p_30d personalised %.4f, global %.4f", p.Describe(), got, glob)
	if glob != 0.5 {
		t.Errorf("global AUC: got %v, want 0.5 (every score equal)", glob)
	}
	if got < 0.8 {
		t.Errorf("personalised AUC: got %.4f, want ≥ 0.8", got)
	}

	// Three customers: too few to cross-fit over five folds, so the shop's
	// own model scores, with a reason.
	small, err := Personalize(context.Background(), cadenceEvents(3, 2), global, cutoff, time.UTC, train.PersonalizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if small.Choice != train.ChoiceLocal || !strings.Contains(small.Reason, "too few customers") {
		t.Errorf("three customers: got %s (%q), want local-only with a reason naming too few customers", small.Choice, small.Reason)
	}
	// No purchase at all before the scoring window: nothing to learn a model
	// of its own from, the global model scores.
	var none []model.Event
	for _, e := range cadenceEvents(200, 3) {
		if e.Time.Before(date(1997, 3, 1)) {
			none = append(none, e)
		}
	}
	if len(none) == 0 {
		t.Fatal("no events before 1997-03-01; pick another seed")
	}
	idle, err := Personalize(context.Background(), none, global, cutoff, time.UTC, train.PersonalizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if idle.Choice != train.ChoiceGlobal || !strings.Contains(idle.Reason, "buyers") {
		t.Errorf("no buyer: got %s (%q), want global with a reason naming buyers", idle.Choice, idle.Reason)
	}
}
