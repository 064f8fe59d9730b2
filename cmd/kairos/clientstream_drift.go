package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/stream"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// driftFlags are `kairos client stream`'s drift watch flags.
type driftFlags struct {
	data    string   // the training period's events (CSV under --mapping)
	cutoffs []string // training cutoffs (dates)
	every   time.Duration
}

func (f *driftFlags) on() bool { return f.data != "" }

// reference reads the training period's events and returns the batch
// builder's feature rows at the training cutoffs: the population the live
// one is compared with.
func (f *driftFlags) reference(ctx context.Context, m *ingest.Mapping, loc *time.Location, schema feature.Schema) ([][]float64, error) {
	if len(f.cutoffs) == 0 {
		return nil, errors.New("--drift-data needs --drift-cutoff (the training cutoffs, e.g. 2026-06-01)")
	}
	if f.every <= 0 {
		return nil, fmt.Errorf("--drift-every %v must be > 0", f.every)
	}
	var cuts []time.Time
	for _, s := range f.cutoffs {
		t, err := time.ParseInLocation(time.DateOnly, s, loc)
		if err != nil {
			return nil, fmt.Errorf("--drift-cutoff %q: want a date such as 2026-06-01", s)
		}
		cuts = append(cuts, t)
	}
	b, err := feature.NewBuilder(feature.Config{Cutoffs: cuts, Location: loc, Allow: schema.Names})
	if err != nil {
		return nil, fmt.Errorf("drift reference: %w", err)
	}
	if _, err := ingest.ReadFile(ctx, f.data, ingest.Options{Format: ingest.CSV, Mapping: m, Location: loc}, func(e model.Event) error { return b.Add(e) }); err != nil {
		return nil, fmt.Errorf("drift reference %s: %w", f.data, err)
	}
	var out [][]float64
	for _, r := range b.Rows() {
		out = append(out, r.X)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("drift reference %s: no customer active before the cutoffs %v", f.data, f.cutoffs)
	}
	return out, nil
}

// startDrift starts the drift watch of p in the background (until ctx ends).
func (f *driftFlags) start(ctx context.Context, p *stream.Processor, m *ingest.Mapping, loc *time.Location, schema feature.Schema, log *slog.Logger) error {
	ref, err := f.reference(ctx, m, loc, schema)
	if err != nil {
		return err
	}
	w, err := p.WatchDrift(ctx, stream.DriftConfig{Reference: ref})
	if err != nil {
		return err
	}
	log.Info("drift watch", "reference_rows", len(ref), "every", f.every.String())
	go w.Run(ctx, f.every, nil) //nolint:errcheck // ends with ctx
	return nil
}
