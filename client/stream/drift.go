package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kairos-fl/kairos/client/drift"
	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/hazard"
)

// DriftConfig configures a processor's drift watch (Processor.WatchDrift).
// Everything it computes stays at the merchant: it is logged and served on
// the local endpoint (GET /drift), never sent to the aggregator. What the
// federation learns of drift it learns only through the DP evaluation rounds
// the aggregator schedules, paid from the merchant's budget.
type DriftConfig struct {
	// Reference holds feature vectors of the training period, in the live
	// engine's schema order: the batch builder's rows at the training
	// cutoffs (client.BuildRows). Required.
	Reference [][]float64
	// Bins is the number of quantile bins of the PSI (default 10).
	Bins int
	// MaxSnapshots bounds the prediction snapshots kept to score against
	// realised outcomes (default 60: two months of daily checks), in memory
	// and in the live store.
	MaxSnapshots int
}

// DriftReport is one drift check.
type DriftReport struct {
	At        time.Time `json:"at"`
	Customers int       `json:"customers"`
	// Features is the PSI of every feature against the training period,
	// largest first (< 0.1 stable, > 0.25 a shift, by the usual rule).
	Features []drift.FeatureShift `json:"features"`
	MaxPSI   float64              `json:"max_psi"`
	// Outcomes scores the predictions of past checks whose 30-day window has
	// passed against the purchases seen since; nil until one has (or without
	// a model).
	Outcomes *OutcomeReport `json:"outcomes,omitempty"`
	// Snapshots is the number of past checks kept for outcomes.
	Snapshots int `json:"snapshots"`
}

// OutcomeReport is drift.Outcome in JSON (AUC@30 null when undefined).
type OutcomeReport struct {
	Evaluated int      `json:"evaluated"`
	Pending   int      `json:"pending"`
	Buyers    int      `json:"buyers"`
	AUC30     *float64 `json:"auc_30"`
	Brier     float64  `json:"brier"`
	ECE       float64  `json:"ece"`
}

// DriftWatch compares the live population with the training period and
// past predictions with what customers then did.
//
// Its snapshots and the purchases that label them are kept in the live
// store as well as in memory, so that a restart (or a crash) loses neither:
// a snapshot is stored by the check that takes it, before the check reports,
// and a purchase by the commit of the batch its event belongs to, so that a
// replay after a crash re-observes exactly the purchases the store lacks. At
// most MaxSnapshots snapshots are kept (the oldest are dropped, in memory and
// in the store), and only the purchases at or after the earliest kept
// snapshot: earlier ones cannot label any.
type DriftWatch struct {
	p     *Processor
	cfg   DriftConfig
	names []string
	h30   int

	checkMu   sync.Mutex // held by Check; seq changes under both
	mu        sync.Mutex
	seq       int64      // Seq of the latest snapshot (0: none yet)
	snapshots []snapshot // oldest first
	// from is the earliest kept snapshot's time, or the processor's clock
	// when the watch started if none: a purchase before it labels nothing
	// kept or to come (a snapshot's predictions are at or after its time).
	from      time.Time
	purchases map[string][]time.Time
	last      *DriftReport
}

type snapshot struct {
	at    time.Time
	preds []drift.Prediction
}

// WatchDrift starts recording the purchases the processor applies, restores
// the snapshots and purchases the store holds for the processor's source,
// and returns the watch; call Check (or Run) for reports. Call it before Run,
// so that the messages Run replays after a crash are observed.
func (p *Processor) WatchDrift(ctx context.Context, cfg DriftConfig) (*DriftWatch, error) {
	names := p.cfg.Engine.Schema().Names
	switch {
	case len(cfg.Reference) == 0:
		return nil, errors.New("watch drift: no reference rows from the training period")
	case cfg.Bins < 0 || cfg.MaxSnapshots < 0:
		return nil, fmt.Errorf("watch drift: bins %d and max snapshots %d must be ≥ 0", cfg.Bins, cfg.MaxSnapshots)
	case p.running.Load():
		return nil, errors.New("watch drift: the processor is running; start the watch before Run, so that a replay re-observes the purchases the store lacks")
	}
	for i, r := range cfg.Reference {
		if len(r) != len(names) {
			return nil, fmt.Errorf("watch drift: reference row %d has %d features, the live engine %d", i, len(r), len(names))
		}
	}
	if cfg.Bins == 0 {
		cfg.Bins = 10
	}
	if cfg.MaxSnapshots == 0 {
		cfg.MaxSnapshots = 60
	}
	w := &DriftWatch{p: p, cfg: cfg, names: names, h30: slices.Index(hazard.Horizons[:], model.Horizon), from: p.cfg.Now(), purchases: map[string][]time.Time{}}
	if p.cfg.Store != nil {
		if err := w.restore(ctx); err != nil {
			return nil, fmt.Errorf("watch drift: %w", err)
		}
	}
	p.drift.Store(w)
	return w, nil
}

// restore loads the stored snapshots and purchases of the processor's source.
func (w *DriftWatch) restore(ctx context.Context) error {
	d, err := w.p.cfg.Store.LoadDrift(ctx, w.p.cfg.Name)
	if err != nil {
		return err
	}
	for _, s := range d.Snapshots {
		at, preds, err := decodeSnapshot(s.Data)
		if err != nil {
			return fmt.Errorf("stored snapshot %d: %w", s.Seq, err)
		}
		w.snapshots = append(w.snapshots, snapshot{at: at, preds: preds})
		w.seq = s.Seq
	}
	// A lower MaxSnapshots than the store was kept with takes effect now in
	// memory, and in the store at the next snapshot.
	if n := len(w.snapshots) - w.cfg.MaxSnapshots; n > 0 {
		w.snapshots = slices.Delete(w.snapshots, 0, n)
	}
	w.setFrom()
	// A batch that committed after a check trimmed the store can have
	// stored a purchase older than the earliest snapshot; it labels nothing
	// and the next check's trim deletes it.
	for _, pu := range d.Purchases {
		if !pu.At.Before(w.from) {
			w.purchases[pu.Customer] = append(w.purchases[pu.Customer], pu.At)
		}
	}
	return nil
}

// setFrom sets from to the earliest kept snapshot's time (left as it is
// without a snapshot) and forgets the purchases before it.
func (w *DriftWatch) setFrom() {
	if len(w.snapshots) == 0 {
		return
	}
	w.from = w.snapshots[0].at
	for _, s := range w.snapshots[1:] {
		if s.at.Before(w.from) {
			w.from = s.at
		}
	}
	for c, ts := range w.purchases {
		ts = slices.DeleteFunc(ts, func(t time.Time) bool { return t.Before(w.from) })
		if len(ts) == 0 {
			delete(w.purchases, c)
		} else {
			w.purchases[c] = ts
		}
	}
}

// observe records a purchase the processor applied into b, to be committed
// with it, and in memory (for realised outcomes). Purchases are kept to the
// second, as live states keep times. Without a model there are no
// predictions to label, so nothing is kept.
func (p *Processor) observe(b *batch, ev model.Event) {
	w := p.drift.Load()
	if w == nil || ev.Kind != model.Purchase || p.cfg.Model == nil {
		return
	}
	t := time.Unix(ev.Time.Unix(), 0).UTC()
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.Before(w.from) {
		return // before every prediction kept or to come: labels nothing
	}
	w.purchases[ev.Customer] = append(w.purchases[ev.Customer], t)
	b.purchases = append(b.purchases, livestore.Purchase{Customer: ev.Customer, At: t})
}

// Check computes every customer's features at now (or just after its latest
// event, as scores are), their PSI against the reference, and, with a model,
// snapshots P(buy within 30 days), stores the snapshot, and scores the
// snapshots whose label window has passed. now should not be before the
// processor's clock when the watch started (purchases before that are not
// kept). A snapshot the store refuses is not kept either: the check fails.
// now is taken to the second, as purchases (and live states) are: a purchase
// in the same second as the check but after it then labels the check's
// predictions.
func (w *DriftWatch) Check(ctx context.Context, now time.Time) (DriftReport, error) {
	now = now.Truncate(time.Second)
	p := w.p
	var current [][]float64
	var preds []drift.Prediction
	var scratch hazard.Scratch
	p.mu.RLock()
	for c, e := range p.cust {
		at := now
		if l, ok := e.st.Latest(); ok && !now.After(l) {
			at = l.Add(time.Second)
		}
		x, err := p.cfg.Engine.Features(&e.st, at, nil)
		if err != nil {
			p.mu.RUnlock()
			return DriftReport{}, fmt.Errorf("drift check: features of %q: %w", c, err)
		}
		current = append(current, x)
		if p.cfg.Model != nil {
			// Within is Predict(x).Within[h30] bit for bit, without the curve.
			p30, err := p.cfg.Model.Within(x, hazard.Horizons[w.h30], &scratch)
			if err != nil {
				p.mu.RUnlock()
				return DriftReport{}, fmt.Errorf("drift check: score %q: %w", c, err)
			}
			preds = append(preds, drift.Prediction{Customer: c, At: at, P30: p30})
		}
	}
	p.mu.RUnlock()
	rep := DriftReport{At: now.UTC(), Customers: len(current)}
	if len(current) == 0 {
		return rep, errors.New("drift check: no customers yet")
	}
	shifts, err := drift.Shifts(w.names, w.cfg.Reference, current, w.cfg.Bins)
	if err != nil {
		return DriftReport{}, fmt.Errorf("drift check: %w", err)
	}
	rep.Features = shifts
	rep.MaxPSI = shifts[0].PSI

	// checkMu orders checks; the store write runs outside mu so that the
	// stream's purchases do not wait for it.
	w.checkMu.Lock()
	defer w.checkMu.Unlock()
	if preds != nil {
		// Map order differs from run to run; customer order makes a stored
		// snapshot the same bytes for the same predictions.
		slices.SortFunc(preds, func(a, b drift.Prediction) int { return strings.Compare(a.Customer, b.Customer) })
		if p.cfg.Store != nil {
			s := livestore.Snapshot{Seq: w.seq + 1, At: now, Data: encodeSnapshot(now, preds)}
			if err := p.cfg.Store.AddSnapshot(ctx, p.cfg.Name, s, w.cfg.MaxSnapshots); err != nil {
				return DriftReport{}, fmt.Errorf("drift check: %w", err)
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if preds != nil {
		w.seq++
		w.snapshots = append(w.snapshots, snapshot{at: now, preds: preds})
		if n := len(w.snapshots) - w.cfg.MaxSnapshots; n > 0 {
			w.snapshots = slices.Delete(w.snapshots, 0, n)
		}
		w.setFrom()
	}
	rep.Snapshots = len(w.snapshots)
	var matured []drift.Prediction
	pending := 0
	for _, s := range w.snapshots {
		if s.at.Add(model.Horizon * model.Day).After(now) {
			pending += len(s.preds)
			continue
		}
		matured = append(matured, s.preds...)
	}
	if len(matured) > 0 {
		o, err := drift.Outcomes(matured, w.purchases, now, 10)
		if err != nil {
			return DriftReport{}, fmt.Errorf("drift check: %w", err)
		}
		rep.Outcomes = &OutcomeReport{Evaluated: o.Evaluated, Pending: o.Pending + pending, Buyers: o.Buyers, Brier: o.Brier, ECE: o.ECE}
		if !math.IsNaN(o.AUC30) {
			auc := o.AUC30
			rep.Outcomes.AUC30 = &auc
		}
	}
	w.last = &rep
	return rep, nil
}

// Report returns the last check's report.
func (w *DriftWatch) Report() (DriftReport, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		return DriftReport{}, false
	}
	return *w.last, true
}

// Run checks every period until ctx ends, logging each report's summary
// (the largest PSI, the realised AUC@30); a failed check is logged.
func (w *DriftWatch) Run(ctx context.Context, every time.Duration, now func() time.Time) error {
	if every <= 0 {
		return fmt.Errorf("drift watch: period %v must be > 0", every)
	}
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		rep, err := w.Check(ctx, now())
		if err != nil {
			w.p.cfg.Logger.Warn("drift check", "err", err)
			continue
		}
		attrs := []any{"customers", rep.Customers, "max_psi", rep.MaxPSI, "feature", rep.Features[0].Name}
		if o := rep.Outcomes; o != nil && o.AUC30 != nil {
			attrs = append(attrs, "realised_auc_30", *o.AUC30, "evaluated", o.Evaluated)
		}
		level := slog.LevelInfo
		if rep.MaxPSI > 0.25 {
			level = slog.LevelWarn
		}
		w.p.cfg.Logger.Log(ctx, level, "drift", attrs...)
	}
}

// serveDrift is GET /drift: the last drift report, 404 before the first.
func (p *Processor) serveDrift(w http.ResponseWriter, _ *http.Request) {
	dw := p.drift.Load()
	if dw == nil {
		http.Error(w, "drift watch is off (kairos client stream --drift-data)", http.StatusNotFound)
		return
	}
	rep, ok := dw.Report()
	if !ok {
		http.Error(w, "no drift check yet", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}
