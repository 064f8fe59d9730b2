package stream

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	NATSURL   string
	Events    int           // events for the throughput run (default 200,000)
	Customers int           // distinct customers (default 10,000)
	Rate      int           // offered events per second for the latency run (default 10,000)
	Duration  time.Duration // length of the latency run (default 10 s)
	Seed      uint64
}

// BenchResult is what Bench measured.
type BenchResult struct {
	// EventsPerSecond: events published beforehand, consumed from JetStream,
	// decoded, applied, scored and committed to SQLite, per second.
	EventsPerSecond float64 `json:"events_per_second"`
	// CPUMsPer1000Events: the process's user+system CPU time during the
	// throughput run per 1,000 events (the pipeline's own work, whatever the
	// machine's load; the NATS server's work is not counted).
	CPUMsPer1000Events float64 `json:"cpu_ms_per_1000_events"`
	// StateUpdatesPerSecondPerCore: LiveEngine.Apply alone on one goroutine.
	StateUpdatesPerSecondPerCore float64 `json:"state_updates_per_second_per_core"`
	// P50/P99EventToScoreMs: from the publisher's send to the event's score
	// being committed, at Rate offered events per second.
	P50EventToScoreMs float64 `json:"p50_event_to_score_ms"`
	P99EventToScoreMs float64 `json:"p99_event_to_score_ms"`
	Rate              int     `json:"rate"`
	// LatencyRunCPUMsPer1000Events: the process's CPU time during the
	// latency run per 1,000 events, the paced publisher (JSON encoding and
	// publishing) included: batches there are as small as the rate makes them.
	LatencyRunCPUMsPer1000Events float64 `json:"latency_run_cpu_ms_per_1000_events"`
	AchievedRate                 float64 `json:"achieved_rate"`
	LatencyEvents                int     `json:"latency_events"`
	Events                       int     `json:"events"`
	Customers                    int     `json:"customers"`
	GoMaxProcs                   int     `json:"gomaxprocs"`
}

// benchMessage is the JSON of one benchmark event; Sent is the publisher's
// clock in Unix nanoseconds, which the mapping ignores.
type benchMessage struct {
	Customer string  `json:"customer"`
	TS       int64   `json:"ts"`
	Kind     string  `json:"kind"`
	Amount   float64 `json:"amount,omitempty"`
	Sent     int64   `json:"sent"`
}

func benchMapping() *ingest.Mapping {
	return &ingest.Mapping{Header: true, Customer: ingest.Column{Name: "customer"}, Time: ingest.Column{Name: "ts"},
		TimeLayout: ingest.LayoutUnix, Kind: ingest.Column{Name: "kind"}, Amount: ingest.Column{Name: "amount"}}
}

// benchEvents yields n events of a shop with the given customers over the
// year before now: mostly views, one in five a purchase.
func benchEvents(seed uint64, n, customers int, now time.Time) []benchMessage {
	r := mrand.New(mrand.NewPCG(seed, 3))
	start := now.AddDate(-1, 0, 0).Unix()
	span := now.Unix() - start
	kinds := []string{"view", "view", "view", "cart", "purchase"}
	out := make([]benchMessage, n)
	for i := range out {
		m := benchMessage{Customer: "c" + strconv.Itoa(r.IntN(customers)), TS: start + span*int64(i)/int64(n), Kind: kinds[r.IntN(len(kinds))]}
		if m.Kind == "purchase" {
			m.Amount = float64(r.IntN(20000)) / 100
		}
		out[i] = m
	}
	return out
}

// Bench measures the live pipeline on the NATS server at opt.NATSURL, in
// streams of its own that it deletes afterwards, with an SQLite store in a
// temporary directory.
func Bench(ctx context.Context, opt BenchOptions) (BenchResult, error) {
	if opt.Events <= 0 {
		opt.Events = 200_000
	}
	if opt.Customers <= 0 {
		opt.Customers = 10_000
	}
	if opt.Rate <= 0 {
		opt.Rate = 10_000
	}
	if opt.Duration <= 0 {
		opt.Duration = 10 * time.Second
	}
	res := BenchResult{Rate: opt.Rate, Events: opt.Events, Customers: opt.Customers, GoMaxProcs: runtime.GOMAXPROCS(0)}
	nc, err := nats.Connect(opt.NATSURL)
	if err != nil {
		return res, fmt.Errorf("bench stream: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, fmt.Errorf("bench stream: %w", err)
	}
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	if err != nil {
		return res, err
	}
	m, err := hazard.Initial(eng.Schema(), 0)
	if err != nil {
		return res, err
	}
	now := time.Now()

	// State updates alone.
	evs := benchEvents(opt.Seed, opt.Events, opt.Customers, now)
	decoded := make([]model.Event, len(evs))
	for i, e := range evs {
		k := map[string]model.Kind{"view": model.View, "cart": model.Cart, "purchase": model.Purchase}[e.Kind]
		decoded[i] = model.Event{Customer: e.Customer, Time: time.Unix(e.TS, 0), Kind: k, Amount: e.Amount, HasAmount: k == model.Purchase}
	}
	states := make(map[string]*feature.LiveState, opt.Customers)
	t0 := time.Now()
	for _, e := range decoded {
		s := states[e.Customer]
		if s == nil {
			s = &feature.LiveState{}
			states[e.Customer] = s
		}
		if err := eng.Apply(s, e); err != nil {
			return res, err
		}
	}
	res.StateUpdatesPerSecondPerCore = float64(len(decoded)) / time.Since(t0).Seconds()

	// Throughput: the whole log published first, then consumed.
	// run returns the time from the processor's start (throughput) or the
	// first send (latency) to the commit of the last event, and the process's
	// CPU time over the same span.
	run := func(name string, feed func(subject string) (int64, error), onScored func(Message)) (elapsed, cpu time.Duration, err error) {
		var b [6]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		cfg := NATSConfig{Stream: "KAIROS_BENCH_" + id, Subject: "kairos.bench." + id + ".events", DeadLetter: "kairos.bench." + id + ".dead"}
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream, Subjects: []string{cfg.Subject, cfg.DeadLetter}, Storage: jetstream.MemoryStorage}); err != nil {
			return 0, 0, fmt.Errorf("bench stream %s: %w", name, err)
		}
		defer js.DeleteStream(context.WithoutCancel(ctx), cfg.Stream) //nolint:errcheck // best effort cleanup
		dir, err := os.MkdirTemp("", "kairos-bench-stream-")
		if err != nil {
			return 0, 0, err
		}
		defer os.RemoveAll(dir)
		store, err := livestore.OpenSQLite(ctx, filepath.Join(dir, "live.db"))
		if err != nil {
			return 0, 0, err
		}
		defer store.Close()
		src, err := NewNATS(nc, cfg)
		if err != nil {
			return 0, 0, err
		}
		dec, err := ingest.NewMessageDecoder(benchMapping(), ingest.MessageJSON, nil)
		if err != nil {
			return 0, 0, err
		}
		p, err := New(ctx, Config{Source: src, Decoder: dec, Engine: eng, Store: store, Name: "bench", Model: m, OnScored: onScored})
		if err != nil {
			return 0, 0, err
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		var started time.Time
		var cpu0 time.Duration
		var last int64
		if onScored == nil { // throughput: publish first
			if last, err = feed(cfg.Subject); err != nil {
				return 0, 0, err
			}
			started, cpu0 = time.Now(), processCPU()
			go func() { done <- p.Run(rctx) }()
		} else {
			go func() { done <- p.Run(rctx) }()
			started, cpu0 = time.Now(), processCPU()
			if last, err = feed(cfg.Subject); err != nil {
				return 0, 0, err
			}
		}
		for p.Position()[0] <= last {
			select {
			case err := <-done:
				return 0, 0, fmt.Errorf("bench stream %s: processor stopped: %w", name, err)
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			case <-time.After(20 * time.Millisecond): // latency is taken in OnScored, not here
			}
		}
		elapsed, cpu = time.Since(started), processCPU()-cpu0
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			return 0, 0, err
		}
		if st := p.Stats(); st.DeadLetters > 0 {
			return 0, 0, fmt.Errorf("bench stream %s: %d dead letters", name, st.DeadLetters)
		}
		return elapsed, cpu, nil
	}
	elapsed, cpu, err := run("throughput", func(subject string) (int64, error) {
		var last int64
		for i, e := range evs {
			b, _ := json.Marshal(e)
			f, err := publishAsync(ctx, js, subject, b)
			if err != nil {
				return 0, err
			}
			if i == len(evs)-1 {
				select {
				case ack := <-f.Ok():
					last = int64(ack.Sequence)
				case err := <-f.Err():
					return 0, err
				}
			}
		}
		<-js.PublishAsyncComplete()
		return last, nil
	}, nil)
	if err != nil {
		return res, err
	}
	res.EventsPerSecond = float64(opt.Events) / elapsed.Seconds()
	res.CPUMsPer1000Events = float64(cpu) / float64(time.Millisecond) / float64(opt.Events) * 1000

	// Latency at a fixed offered rate: sends paced per millisecond tick.
	n := int(float64(opt.Rate) * opt.Duration.Seconds())
	if n < 1 {
		return res, fmt.Errorf("bench stream: %d/s for %v offers no event", opt.Rate, opt.Duration)
	}
	lat := make([]float64, 0, n)
	var mu sync.Mutex
	onScored := func(msg Message) {
		// The publisher's clock is the last key of its JSON (benchMessage).
		i := bytes.LastIndex(msg.Data, []byte(`"sent":`))
		if i < 0 {
			return
		}
		sent, err := strconv.ParseInt(string(bytes.TrimRight(msg.Data[i+len(`"sent":`):], "}")), 10, 64)
		if err != nil {
			return
		}
		d := float64(time.Now().UnixNano()-sent) / 1e6
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	}
	var sendElapsed time.Duration
	_, lcpu, err := run("latency", func(subject string) (int64, error) {
		levs := benchEvents(opt.Seed+1, n, opt.Customers, now)
		t0 := time.Now()
		for i := range levs {
			due := t0.Add(time.Duration(float64(i) / float64(opt.Rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			levs[i].Sent = time.Now().UnixNano()
			b, _ := json.Marshal(levs[i])
			if _, err := publishAsync(ctx, js, subject, b); err != nil {
				return 0, err
			}
		}
		sendElapsed = time.Since(t0)
		<-js.PublishAsyncComplete()
		info, err := js.Stream(ctx, streamOf(subject))
		if err != nil {
			return 0, err
		}
		return int64(info.CachedInfo().State.LastSeq), nil
	}, onScored)
	if err != nil {
		return res, err
	}
	res.LatencyRunCPUMsPer1000Events = float64(lcpu) / float64(time.Millisecond) / float64(n) * 1000
	res.AchievedRate = float64(n) / sendElapsed.Seconds()
	slices.Sort(lat)
	res.LatencyEvents = len(lat)
	if len(lat) > 0 {
		res.P50EventToScoreMs = lat[len(lat)/2]
		res.P99EventToScoreMs = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res, nil
}

// streamOf maps a bench subject back to its stream name.
func streamOf(subject string) string {
	// kairos.bench.<id>.events → KAIROS_BENCH_<id>
	id := subject[len("kairos.bench.") : len(subject)-len(".events")]
	return "KAIROS_BENCH_" + id
}

// processCPU is the user+system CPU time this process has used (zero where
// the system cannot tell).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// publishAsync publishes b, waiting for the server to acknowledge earlier
// messages while too many are outstanding (a loaded server falls behind the
// publisher), until ctx ends.
func publishAsync(ctx context.Context, js jetstream.JetStream, subject string, b []byte) (jetstream.PubAckFuture, error) {
	for {
		f, err := js.PublishAsync(subject, b)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return f, err
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
