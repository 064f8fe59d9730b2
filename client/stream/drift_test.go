package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/drift"
	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// batchRows returns the batch builder's feature rows of events at cutoff tau,
// by customer.
func batchRows(t *testing.T, events []model.Event, tau time.Time) map[string][]float64 {
	t.Helper()
	b, err := feature.NewBuilder(feature.Config{Cutoffs: []time.Time{tau}})
	must(t, err)
	for _, e := range events {
		must(t, b.Add(e))
	}
	out := map[string][]float64{}
	for _, r := range b.Rows() {
		out[r.Customer] = r.X
	}
	return out
}

// TestDriftWatch streams a population whose customers buy far less often
// than the training period's through the real NATS server. The watch's PSI
// per feature equals the PSI computed from the batch builder's features of
// the same events (a second path to the same numbers), and recency shows the
// shift. A month later, the realised outcomes of the first check's
// predictions are scored against the purchases streamed since: their AUC@30
// equals metrics.AUC of the batch model's predictions and the known labels.
// GET /drift serves the last report.
func TestDriftWatch(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	refCut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(7, 1))
	day := 24 * time.Hour
	buy := func(c string, at time.Time) model.Event {
		return model.Event{Customer: c, Time: at, Kind: model.Purchase, Amount: 10, HasAmount: true}
	}
	// Training period: bought 1–20 days before the cutoff. Now: 40–120 days before.
	var ref, live []model.Event
	for i := range 200 {
		c := "c" + strconv.Itoa(i)
		ref = append(ref, buy(c, refCut.Add(-100*day)), buy(c, refCut.Add(-time.Duration(1+r.IntN(20))*day-time.Hour)))
		live = append(live, buy(c, now.Add(-300*day)), buy(c, now.Add(-time.Duration(40+r.IntN(80))*day-time.Hour)))
	}
	var reference [][]float64
	for _, x := range batchRows(t, ref, refCut) {
		reference = append(reference, x)
	}

	js, _ := jetstream.New(nc)
	publish := func(evs []model.Event) int64 {
		slices.SortStableFunc(evs, func(a, b model.Event) int { return a.Time.Compare(b.Time) })
		return publishEvents(t, js, cfg.Subject, evs)
	}
	pos := publish(slices.Clone(live))
	src, err := NewNATS(nc, cfg)
	must(t, err)
	store, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer store.Close()
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	m := recencyModel(t, eng.Schema())
	p, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: store, Name: "events", Model: m,
		Now: func() time.Time { return now }})
	must(t, err)
	runUntil(t, p, map[int32]int64{0: pos})
	w, err := p.WatchDrift(ctx, DriftConfig{Reference: reference})
	must(t, err)

	rep, err := w.Check(ctx, now)
	must(t, err)
	atNow := batchRows(t, live, now)
	var current [][]float64
	for _, x := range atNow {
		current = append(current, x)
	}
	want, err := drift.Shifts(eng.Schema().Names, reference, current, 10)
	must(t, err)
	if rep.Customers != 200 || len(rep.Features) != len(want) {
		t.Fatalf("report: %d customers, %d features; want 200 and %d", rep.Customers, len(rep.Features), len(want))
	}
	for i := range want {
		if rep.Features[i].Name != want[i].Name || math.Abs(rep.Features[i].PSI-want[i].PSI) > 1e-9 {
			t.Errorf("feature %d: got %+v, want %+v (batch features)", i, rep.Features[i], want[i])
		}
	}
	recency := slices.IndexFunc(rep.Features, func(f drift.FeatureShift) bool { return f.Name == "recency_days" })
	if recency < 0 || rep.Features[recency].PSI <= 0.25 {
		t.Errorf("recency PSI %+v, want above 0.25: the population shifted", rep.Features)
	}
	if rep.Outcomes != nil {
		t.Errorf("outcomes %+v before any label window passed", rep.Outcomes)
	}

	// Half the customers buy 5 days later; a month on, score the first check.
	var later []model.Event
	labels := map[string]bool{}
	for i := 0; i < 200; i += 2 {
		c := "c" + strconv.Itoa(i)
		later = append(later, buy(c, now.Add(5*day)))
		labels[c] = true
	}
	runUntil(t, p, map[int32]int64{0: publish(later)})
	rep2, err := w.Check(ctx, now.Add(31*day))
	must(t, err)
	h30 := slices.Index(hazard.Horizons[:], 30)
	var probs []float64
	var ys []bool
	for c, x := range atNow {
		pr, err := m.Predict(x)
		must(t, err)
		probs = append(probs, pr.Within[h30])
		ys = append(ys, labels[c])
	}
	auc, err := metrics.AUC(probs, ys)
	must(t, err)
	o := rep2.Outcomes
	if o == nil || o.Evaluated != 200 || o.Pending != 200 || o.Buyers != 100 || o.AUC30 == nil || math.Abs(*o.AUC30-auc) > 1e-9 {
		t.Fatalf("outcomes %+v (auc %v), want 200 evaluated, 200 pending, 100 buyers, AUC@30 %v", o, o.AUC30, auc)
	}

	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/drift")
	must(t, err)
	var got DriftReport
	must(t, json.NewDecoder(resp.Body).Decode(&got))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !got.At.Equal(now.Add(31*day)) || math.Abs(got.MaxPSI-rep2.MaxPSI) > 1e-12 || got.Outcomes == nil {
		t.Errorf("GET /drift: status %d, report at %v max PSI %v; want 200, %v, %v", resp.StatusCode, got.At, got.MaxPSI, now.Add(31*day), rep2.MaxPSI)
	}
}

// TestDriftWatchRefusesBadReference: reference rows of another width are
// refused with the row named; GET /drift without a watch is 404.
func TestDriftWatchRefusesBadReference(t *testing.T) {
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	ctx := context.Background()
	p := &Processor{cfg: Config{Engine: eng, Now: time.Now}}
	n := len(eng.Schema().Names)
	_, err := p.WatchDrift(ctx, DriftConfig{Reference: [][]float64{make([]float64, n), make([]float64, n-1)}})
	if err == nil || err.Error() != fmt.Sprintf("watch drift: reference row 1 has %d features, the live engine %d", n-1, n) {
		t.Errorf("bad reference: got %v", err)
	}
	if _, err := p.WatchDrift(ctx, DriftConfig{}); err == nil {
		t.Error("no reference accepted")
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/drift", nil)
	req.Host = "127.0.0.1:8377"
	p.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /drift without a watch: %d, want 404", rec.Code)
	}
}
