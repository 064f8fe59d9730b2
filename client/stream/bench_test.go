package stream

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// BenchmarkRescore is the processor's per-customer work when it seals a
// batch: a customer's features now and their P(buy within 7 days), for 1,000
// customers with a year of events each, under a linear model and one with the
// rhythm term.
func BenchmarkRescore(b *testing.B) {
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	must(b, err)
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(3, 4))
	kinds := []model.Kind{model.View, model.View, model.Cart, model.Purchase}
	cust := map[string]*entry{}
	var names []string
	for i := range 1000 {
		c := "c" + strconv.Itoa(i)
		e := &entry{}
		for k := range 40 {
			ev := model.Event{Customer: c, Time: now.Add(-time.Duration(365-9*k) * 24 * time.Hour), Kind: kinds[r.IntN(len(kinds))]}
			if ev.Kind == model.Purchase {
				ev.Amount, ev.HasAmount = 20, true
			}
			must(b, eng.Apply(&e.st, ev))
		}
		cust[c] = e
		names = append(names, c)
	}
	linear := recencyModel(b, eng.Schema())
	rhythm := recencyModel(b, eng.Schema())
	must(b, rhythm.EnableRhythm())
	rhythm.Params[len(rhythm.Params)-2] = -0.5
	for _, tc := range []struct {
		name string
		m    *hazard.Model
	}{{"linear", linear}, {"rhythm", rhythm}} {
		b.Run(tc.name, func(b *testing.B) {
			p := &Processor{cfg: Config{Engine: eng, Model: tc.m, Now: func() time.Time { return now }}, h7: slices.Index(hazard.Horizons[:], 7), cust: cust}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.rescore(names[i%len(names)])
				i++
			}
		})
	}
}
