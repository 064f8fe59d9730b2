package aggregator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
)

// BenchmarkSubmit measures accepted updates per second: b.N merchants each
// submit one sealed update (post-quantum age recipient, ~1,000-parameter MLP
// hazard model) to one round from 16 goroutines; each acceptance verifies the
// signature, decrypts, recomputes ε over the merchant's ledger, commits the
// update, two ledger rows and the budget head, and waits for its audit entry.
//
//	go test -run '^$' -bench Submit -benchtime 1000x ./aggregator/
func BenchmarkSubmit(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchSubmit(b, sqliteBackend(b)) })
	if u := os.Getenv("KAIROS_TEST_POSTGRES_URL"); u != "" {
		b.Run("postgres", func(b *testing.B) { benchSubmit(b, postgresBackend(b, u)) })
	}
}

func benchSubmit(b *testing.B, be backend) {
	ctx := context.Background()
	n := b.N
	var pol strings.Builder
	pol.WriteString("version: 1\nfederation: bench\ndefaults:\n  epsilon_cap: 1.0\n  delta: 1e-6\n  min_noise_multiplier: 0.5\n  clip_norm: 1.0\n  min_customers_per_update: 100\n  allowed_features: [all]\n  retention_days: 365\nmerchants:\n")
	for i := range n {
		fmt.Fprintf(&pol, "  b%05d: {}\n", i)
	}
	p, err := policies.Parse("bench.yaml", []byte(pol.String()))
	if err != nil {
		b.Fatal(err)
	}
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	recip, err := keys.ParseRecipient(agg.Recipient)
	if err != nil {
		b.Fatal(err)
	}
	schema, err := feature.NewSchema(nil)
	if err != nil {
		b.Fatal(err)
	}
	hidden := max(1, (1000-30)/(schema.Len()+2))
	initial, err := hazard.New(hazard.KindMLP, schema, hazard.FixedStandardization(schema), hidden, 0.003)
	if err != nil {
		b.Fatal(err)
	}
	f := &fed{agg: agg, recip: recip, policy: p, clock: &clock{t: time.Now().UTC()},
		cfg: aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1}, merchant: map[string]ed25519.PrivateKey{}, b: be}
	st := be.open(b)
	log, err := audit.New(ctx, audit.Options{Store: st, HMACKey: agg.AuditHMAC, SigningKey: agg.Checkpoint})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { log.Close() })
	svc, err := aggregator.New(ctx, aggregator.Options{Store: st.(aggregator.Store), Policy: p, Keys: agg, Audit: log, Now: f.clock.Now, Rounds: f.cfg, InitialModel: initial})
	if err != nil {
		b.Fatal(err)
	}
	r := &replica{svc: svc, store: st, log: log}
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("b%05d", i)
	}
	f.enrol(b, r, ids...)
	tick(b, r)
	round, err := svc.CurrentRound(ctx, ids[0])
	if err != nil {
		b.Fatal(err)
	}
	envs := make([][]byte, n)
	for i, id := range ids {
		u := f.update(b, round, id)
		envs[i] = f.seal(b, u)
	}
	var next atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS goroutines
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if _, err := svc.Submit(ctx, ids[i], envs[i]); err != nil {
				b.Errorf("submit %d: %v", i, err)
				return
			}
		}
	})
	b.StopTimer()
	// CPU time of this process (aggregator and its audit writer, not the
	// database server): steadier than the wall clock on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(n), "cpu-µs/update")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "updates/s")
	b.ReportMetric(float64(len(envs[0])), "envelope-bytes")
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublish measures the Tick that closes a round of 100 merchant
// updates of a ~1,000-parameter model: the claim, the merge (FedAvg), the
// FedAdam step, the new version and the next round.
//
//	go test -run '^$' -bench Publish -benchtime 3x ./aggregator/
func BenchmarkPublish(b *testing.B) {
	const merchants = 100
	ctx := context.Background()
	var pol strings.Builder
	pol.WriteString("version: 1\nfederation: bench\ndefaults:\n  epsilon_cap: 100.0\n  delta: 1e-6\n  min_noise_multiplier: 0.5\n  clip_norm: 1.0\n  min_customers_per_update: 100\n  allowed_features: [all]\n  retention_days: 365\nmerchants:\n")
	ids := make([]string, merchants)
	for i := range merchants {
		ids[i] = fmt.Sprintf("b%03d", i)
		fmt.Fprintf(&pol, "  %s: {}\n", ids[i])
	}
	p, err := policies.Parse("bench.yaml", []byte(pol.String()))
	if err != nil {
		b.Fatal(err)
	}
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		b.Fatal(err)
	}
	recip, err := keys.ParseRecipient(agg.Recipient)
	if err != nil {
		b.Fatal(err)
	}
	schema, err := feature.NewSchema(nil)
	if err != nil {
		b.Fatal(err)
	}
	initial, err := hazard.New(hazard.KindMLP, schema, hazard.FixedStandardization(schema), max(1, (1000-30)/(schema.Len()+2)), 0.003)
	if err != nil {
		b.Fatal(err)
	}
	be := sqliteBackend(b)
	f := &fed{agg: agg, recip: recip, policy: p, clock: &clock{t: time.Now().UTC()},
		cfg: aggregator.RoundConfig{Deadline: time.Hour, PlannedRounds: 1000}, merchant: map[string]ed25519.PrivateKey{}, b: be}
	st := be.open(b)
	log, err := audit.New(ctx, audit.Options{Store: st, HMACKey: agg.AuditHMAC, SigningKey: agg.Checkpoint})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { log.Close() })
	svc, err := aggregator.New(ctx, aggregator.Options{Store: st.(aggregator.Store), Policy: p, Keys: agg, Audit: log, Now: f.clock.Now, Rounds: f.cfg, InitialModel: initial})
	if err != nil {
		b.Fatal(err)
	}
	r := &replica{svc: svc, store: st, log: log}
	f.enrol(b, r, ids...)
	tick(b, r)
	for b.Loop() {
		b.StopTimer()
		round, err := svc.CurrentRound(ctx, ids[0])
		if err != nil {
			b.Fatal(err)
		}
		for _, id := range ids[:merchants-1] {
			if _, err := svc.Submit(ctx, id, f.seal(b, f.update(b, round, id))); err != nil {
				b.Fatal(err)
			}
		}
		last := f.seal(b, f.update(b, round, ids[merchants-1]))
		if _, err := svc.Submit(ctx, ids[merchants-1], last); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		tick(b, r) // everyone sent: close, merge, publish, open the next round
	}
}
