package feature

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/bgnbd"
)

// TestClassicFeatures checks the classic-model features of a hand-built log
// against BG/NBD's own summary (bgnbd.SummarizeBefore) and predictions, and
// that they are absent where BG/NBD has nothing to say.
func TestClassicFeatures(t *testing.T) {
	taus := []time.Time{day(1997, 3, 1, 0), day(1997, 6, 1, 0)}
	b, err := NewBuilder(Config{Cutoffs: taus, Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	buys := []time.Time{day(1997, 1, 2, 9), day(1997, 1, 2, 17), day(1997, 1, 20, 8), day(1997, 4, 3, 12)}
	for _, at := range buys {
		if err := b.Add(model.Event{Customer: "a", Time: at, Kind: model.Purchase}); err != nil {
			t.Fatal(err)
		}
	}
	// b only views before the first cutoff: no BG/NBD summary.
	if err := b.Add(model.Event{Customer: "b", Time: day(1997, 2, 1, 0), Kind: model.View}); err != nil {
		t.Fatal(err)
	}
	s := b.Schema()
	for _, n := range []string{"has_classic", "bgnbd_p_alive", "bgnbd_p_buy_30d", "bgnbd_expected_30d", "bgnbd_rate_per_30d"} {
		if !slices.Contains(s.Names, n) {
			t.Fatalf("schema lacks %s", n)
		}
	}
	if base, _ := NewSchema(nil); s.Len() != base.Len()+5 || s.Hash == base.Hash {
		t.Fatalf("classic schema: %d features (hash %s), base %d (%s)", s.Len(), s.Hash, base.Len(), base.Hash)
	}
	// Before SetClassic every row has no classic signal.
	for _, r := range b.Rows() {
		if valueOf(t, s, r.X, "has_classic") != 0 {
			t.Fatalf("row %s@%d: has_classic without parameters", r.Customer, r.Cutoff)
		}
	}
	// Summaries at the first cutoff: a only (b has no purchase), as bgnbd's
	// own summariser makes it: x = 1 (Jan 2 twice, Jan 20), t_x = 18/7, T = 58/7.
	sums, err := b.Summaries(0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := bgnbd.SummarizeBefore(buys, taus[0], ClassicUnit)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0] != want || want != (bgnbd.Customer{X: 1, Tx: 18.0 / 7, T: 58.0 / 7}) {
		t.Fatalf("summaries %+v, bgnbd %+v, want [{1 18/7 58/7}]", sums, want)
	}
	if _, err := b.Summaries(2); err == nil {
		t.Error("cutoff index 2 of 2: no error")
	}
	p := bgnbd.Params{R: 0.25, Alpha: 4.4, A: 0.8, B: 2.4}
	if err := b.SetClassic(p); err != nil {
		t.Fatal(err)
	}
	rows := b.Rows()
	h := 30.0 / 7
	for _, r := range rows {
		got := func(n string) float64 { return valueOf(t, s, r.X, n) }
		if r.Customer == "b" {
			if got("has_classic") != 0 {
				t.Errorf("b@%d: has_classic = 1 without a purchase", r.Cutoff)
			}
			continue
		}
		c, err := bgnbd.SummarizeBefore(buys, taus[r.Cutoff], ClassicUnit)
		if err != nil {
			t.Fatal(err)
		}
		exp, err := p.ExpectedPurchases(c, h)
		if err != nil {
			t.Fatal(err)
		}
		pb := p.ProbPurchaseWithin(c, h)
		for _, w := range []struct {
			name      string
			got, want float64
		}{
			{"has_classic", got("has_classic"), 1},
			{"p_alive", got("bgnbd_p_alive"), p.PAlive(c)},
			{"p_buy_30d", got("bgnbd_p_buy_30d"), math.Log(pb / (1 - pb))},
			{"expected_30d", got("bgnbd_expected_30d"), math.Log1p(exp)},
			// Gamma(r+x, α+T) posterior mean per week, times 30/7.
			{"rate", got("bgnbd_rate_per_30d"), math.Log1p((0.25 + c.X) / (4.4 + c.T) * h)},
		} {
			if math.Abs(w.got-w.want) > 1e-12 {
				t.Errorf("a@%d %s: got %v, want %v", r.Cutoff, w.name, w.got, w.want)
			}
		}
		if r.Cutoff == 1 && c.X != 2 {
			t.Errorf("a@1: x = %v, want 2", c.X)
		}
	}
	// A plain builder refuses parameters; a bad parameter set is refused.
	plain, err := NewBuilder(Config{Cutoffs: taus})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.SetClassic(p); err == nil {
		t.Error("SetClassic on a builder without classic features: no error")
	}
	if err := b.SetClassic(bgnbd.Params{R: 0, Alpha: 1, A: 1, B: 1}); err == nil {
		t.Error("r = 0: no error")
	}
	// Classic names are not part of the base schema's mask.
	if _, err := NewSchema([]string{"bgnbd_p_alive"}); err == nil {
		t.Error("NewSchema with a classic feature: no error")
	}
	// They are gated by has_classic.
	g := s.Gates()
	hc := slices.Index(s.Names, "has_classic")
	for _, n := range []string{"bgnbd_p_alive", "bgnbd_p_buy_30d", "bgnbd_expected_30d", "bgnbd_rate_per_30d"} {
		if g[slices.Index(s.Names, n)] != hc {
			t.Errorf("%s is not gated by has_classic", n)
		}
	}
	if v := Untransform("logit", math.Log(0.2/0.8)); math.Abs(v-0.2) > 1e-15 {
		t.Errorf("untransform logit: got %v, want 0.2", v)
	}
}
