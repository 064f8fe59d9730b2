package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime/metrics"
	"slices"
	"sync"
	"time"

	"github.com/kairos-fl/kairos/api"
	"github.com/kairos-fl/kairos/audit"
)

// Breakdown is what --breakdown adds to a load level: where a request's time
// went besides the handler's own work. The audit figures come from wrappers
// around the in-process server's audit log and store; the runtime figures
// from runtime/metrics over the level.
type Breakdown struct {
	AuditWaitP50ms float64 `json:"audit_wait_p50_ms"` // Append as the handler sees it: queue + commit
	AuditWaitP99ms float64 `json:"audit_wait_p99_ms"`
	CommitP50ms    float64 `json:"commit_p50_ms"` // one store transaction (PostgreSQL round trip + fsync)
	CommitP99ms    float64 `json:"commit_p99_ms"`
	Commits        int     `json:"commits"`
	Entries        int     `json:"entries_committed"` // audit entries those commits wrote
	PerCommit      float64 `json:"entries_per_commit"`
	GCCycles       uint64  `json:"gc_cycles"`
	GCCPUShare     float64 `json:"gc_cpu_share"`     // GC CPU / all Go CPU of the process
	AssistCPUShare float64 `json:"assist_cpu_share"` // of which mark assists by request goroutines
	SchedP99ms     float64 `json:"sched_latency_p99_ms"`
	SchedP999ms    float64 `json:"sched_latency_p999_ms"`
	GCPauseMaxms   float64 `json:"gc_pause_max_ms"`
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu  sync.Mutex
	d   []time.Duration
	sum int // entries, for the commit recorder
}

func (l *latencies) add(d time.Duration, n int) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.sum += n
	l.mu.Unlock()
}

// take returns the sorted durations and the entry count, and resets.
func (l *latencies) take() ([]time.Duration, int) {
	l.mu.Lock()
	d, n := l.d, l.sum
	l.d, l.sum = nil, 0
	l.mu.Unlock()
	slices.Sort(d)
	return d, n
}

// timedAuditor times Append as the predict handler waits for it.
type timedAuditor struct {
	api.Auditor
	lat *latencies
}

func (t timedAuditor) Append(ctx context.Context, rec audit.Record) (audit.Entry, error) {
	t0 := time.Now()
	e, err := t.Auditor.Append(ctx, rec)
	t.lat.add(time.Since(t0), 1)
	return e, err
}

// timedAuditStore times the audit log's store transactions.
type timedAuditStore struct {
	audit.Store
	lat *latencies
}

func (t timedAuditStore) AppendAudit(ctx context.Context, entries []audit.Entry, cps []audit.Checkpoint) error {
	t0 := time.Now()
	err := t.Store.AppendAudit(ctx, entries, cps)
	t.lat.add(time.Since(t0), len(entries))
	return err
}

// diag measures one level: start it before, finish after.
type diag struct {
	wait, commit *latencies
	before       snapshot
}

var diagMetrics = []string{
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/gc/mark/assist:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/cpu/classes/idle:cpu-seconds",
	"/sched/latencies:seconds",
	"/sched/pauses/total/gc:seconds",
}

// snapshot is one read of diagMetrics: scalars as float64, histograms as
// their counts (copied: metrics.Read may reuse them) and bucket bounds.
type snapshot struct {
	scalar  []float64
	counts  [][]uint64
	buckets [][]float64
}

func readSnapshot() snapshot {
	s := make([]metrics.Sample, len(diagMetrics))
	for i, n := range diagMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	sn := snapshot{scalar: make([]float64, len(s)), counts: make([][]uint64, len(s)), buckets: make([][]float64, len(s))}
	for i := range s {
		switch v := s[i].Value; v.Kind() {
		case metrics.KindUint64:
			sn.scalar[i] = float64(v.Uint64())
		case metrics.KindFloat64:
			sn.scalar[i] = v.Float64()
		case metrics.KindFloat64Histogram:
			h := v.Float64Histogram()
			sn.counts[i], sn.buckets[i] = slices.Clone(h.Counts), h.Buckets
		}
	}
	return sn
}

func (d *diag) start() {
	if d == nil {
		return
	}
	d.wait.take()
	d.commit.take()
	d.before = readSnapshot()
}

func (d *diag) finish() *Breakdown {
	if d == nil {
		return nil
	}
	after := readSnapshot()
	f := func(i int) float64 { return after.scalar[i] - d.before.scalar[i] }
	hist := func(i int, q float64) float64 {
		a, b := after.counts[i], d.before.counts[i]
		if len(a) == 0 || len(a) != len(b) {
			return 0
		}
		diff := make([]uint64, len(a))
		for j := range diff {
			diff[j] = a[j] - b[j]
		}
		return histPct(after.buckets[i], diff, q)
	}
	br := &Breakdown{GCCycles: uint64(f(0))}
	if busy := f(3) - f(4); busy > 0 {
		br.GCCPUShare, br.AssistCPUShare = f(1)/busy, f(2)/busy
	}
	br.SchedP99ms, br.SchedP999ms = hist(5, 0.99)*1e3, hist(5, 0.999)*1e3
	br.GCPauseMaxms = hist(6, 1) * 1e3
	w, _ := d.wait.take()
	br.AuditWaitP50ms, br.AuditWaitP99ms = pct(w, 0.5), pct(w, 0.99)
	cm, n := d.commit.take()
	br.CommitP50ms, br.CommitP99ms, br.Commits, br.Entries = pct(cm, 0.5), pct(cm, 0.99), len(cm), n
	br.PerCommit = float64(n) / math.Max(1, float64(len(cm)))
	return br
}

// histPct is the upper bound of the bucket holding the q-quantile of counts.
func histPct(buckets []float64, counts []uint64, q float64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			ub := buckets[i+1]
			if math.IsInf(ub, 1) {
				ub = buckets[i]
			}
			return ub
		}
	}
	return buckets[len(buckets)-1]
}

func printBreakdown(w io.Writer, br *Breakdown) {
	if br == nil {
		return
	}
	fmt.Fprintf(w, "    audit wait p50 %.2f p99 %.2f ms; commit p50 %.2f p99 %.2f ms, %d commits, %.1f entries each; GC %d cycles, %.1f%% of CPU (assist %.1f%%), max pause %.2f ms; scheduling latency p99 %.2f p99.9 %.2f ms\n",
		br.AuditWaitP50ms, br.AuditWaitP99ms, br.CommitP50ms, br.CommitP99ms, br.Commits, br.PerCommit,
		br.GCCycles, 100*br.GCCPUShare, 100*br.AssistCPUShare, br.GCPauseMaxms, br.SchedP99ms, br.SchedP999ms)
}
