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
	"sync"
	"time"

	"github.com/kairos-fl/kairos/client/drift"
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
	// realised outcomes (default 60: two months of daily checks).
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
type DriftWatch struct {
	p     *Processor
	cfg   DriftConfig
	names []string
	h30   int
	// since is the processor's clock when the watch started: a purchase
	// before it cannot label any snapshot.
	since time.Time

	mu        sync.Mutex
	snapshots []snapshot // oldest first
	purchases map[string][]time.Time
	last      *DriftReport
}

type snapshot struct {
	at    time.Time
	preds []drift.Prediction
}

// WatchDrift starts recording the purchases the processor applies and
// returns the watch; call Check (or Run) for reports.
func (p *Processor) WatchDrift(cfg DriftConfig) (*DriftWatch, error) {
	names := p.cfg.Engine.Schema().Names
	switch {
	case len(cfg.Reference) == 0:
		return nil, errors.New("watch drift: no reference rows from the training period")
	case cfg.Bins < 0 || cfg.MaxSnapshots < 0:
		return nil, fmt.Errorf("watch drift: bins %d and max snapshots %d must be ≥ 0", cfg.Bins, cfg.MaxSnapshots)
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
	w := &DriftWatch{p: p, cfg: cfg, names: names, h30: slices.Index(hazard.Horizons[:], model.Horizon), since: p.cfg.Now(), purchases: map[string][]time.Time{}}
	p.drift.Store(w)
	return w, nil
}

// observe records a purchase the processor applied (for realised outcomes).
func (p *Processor) observe(ev model.Event) {
	w := p.drift.Load()
	if w == nil || ev.Kind != model.Purchase {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	from := w.since
	if len(w.snapshots) > 0 {
		from = w.snapshots[0].at
	}
	if ev.Time.Before(from) {
		return // before every prediction kept or to come: labels nothing
	}
	w.purchases[ev.Customer] = append(w.purchases[ev.Customer], ev.Time)
}

// Check computes every customer's features at now (or just after its latest
// event, as scores are), their PSI against the reference, and, with a model,
// snapshots P(buy within 30 days) and scores the snapshots whose label
// window has passed. now should not be before the processor's clock when the
// watch started (purchases before that are not kept).
func (w *DriftWatch) Check(now time.Time) (DriftReport, error) {
	p := w.p
	var current [][]float64
	var preds []drift.Prediction
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
			pr, err := p.cfg.Model.Predict(x)
			if err != nil {
				p.mu.RUnlock()
				return DriftReport{}, fmt.Errorf("drift check: score %q: %w", c, err)
			}
			preds = append(preds, drift.Prediction{Customer: c, At: at, P30: pr.Within[w.h30]})
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

	w.mu.Lock()
	defer w.mu.Unlock()
	if preds != nil {
		w.snapshots = append(w.snapshots, snapshot{at: now, preds: preds})
		if n := len(w.snapshots) - w.cfg.MaxSnapshots; n > 0 {
			w.snapshots = slices.Delete(w.snapshots, 0, n)
			w.prunePurchases()
		}
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

// prunePurchases forgets purchases before the oldest kept snapshot.
func (w *DriftWatch) prunePurchases() {
	if len(w.snapshots) == 0 {
		clear(w.purchases)
		return
	}
	from := w.snapshots[0].at
	for c, ts := range w.purchases {
		ts = slices.DeleteFunc(ts, func(t time.Time) bool { return t.Before(from) })
		if len(ts) == 0 {
			delete(w.purchases, c)
		} else {
			w.purchases[c] = ts
		}
	}
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
		rep, err := w.Check(now())
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
