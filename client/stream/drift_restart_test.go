package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

// driftScenario is a drift watch's month: 200 customers with two purchases
// in the year before now (the first check), then 3,000 events over the next
// 40 days in time order, views but for one purchase by each customer whose
// index is not a multiple of 4, customer i at event 15i + 1: those before
// day 30 label the first check's predictions (112 customers), the rest fall
// after its window. One purchase each, so a lost purchase changes a label.
type driftScenario struct {
	now              time.Time
	history, later   []model.Event
	reference        [][]float64
	buyersWithin30   int
	purchasesFromNow map[livestore.Purchase]bool // distinct, to the second
}

func newDriftScenario(t *testing.T) driftScenario {
	t.Helper()
	s := driftScenario{now: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC), purchasesFromNow: map[livestore.Purchase]bool{}}
	r := rand.New(rand.NewPCG(21, 4))
	day := 24 * time.Hour
	buy := func(c string, at time.Time) model.Event {
		return model.Event{Customer: c, Time: at, Kind: model.Purchase, Amount: 10, HasAmount: true}
	}
	for i := range 200 {
		c := "c" + strconv.Itoa(i)
		s.history = append(s.history, buy(c, s.now.Add(-300*day)), buy(c, s.now.Add(-time.Duration(1+r.IntN(200))*day-time.Hour)))
	}
	slices.SortStableFunc(s.history, func(a, b model.Event) int { return a.Time.Compare(b.Time) })
	buyers := map[string]bool{}
	for k := range 3000 {
		at := s.now.Add(time.Duration(k) * (40 * day / 3000))
		e := model.Event{Customer: "c" + strconv.Itoa(k%200), Time: at, Kind: model.View}
		if i := (k - 1) / 15; k%15 == 1 && i%4 != 0 {
			e = buy("c"+strconv.Itoa(i), at)
			s.purchasesFromNow[livestore.Purchase{Customer: e.Customer, At: at}] = true
			if at.Before(s.now.Add(30 * day)) {
				buyers[e.Customer] = true
			}
		}
		s.later = append(s.later, e)
	}
	s.buyersWithin30 = len(buyers)
	for _, x := range batchRows(t, s.history, s.now.Add(-30*day)) {
		s.reference = append(s.reference, x)
	}
	return s
}

// message is e as the test decoder's JSON.
func message(e model.Event) []byte {
	kind := "view"
	if e.Kind == model.Purchase {
		kind = "purchase"
	}
	return fmt.Appendf(nil, `{"customer":%q,"ts":%d,"kind":%q,"amount":10}`, e.Customer, e.Time.Unix(), kind)
}

// publishEvents publishes evs to subject and returns the position after them.
func publishEvents(t testing.TB, js jetstream.JetStream, subject string, evs []model.Event) int64 {
	t.Helper()
	var last uint64
	for _, e := range evs {
		ack, err := js.Publish(context.Background(), subject, message(e))
		must(t, err)
		last = ack.Sequence
	}
	return int64(last) + 1
}

// sliceSource is partition 0 of an in-memory stream that grows with publish.
type sliceSource struct {
	mu   sync.Mutex
	msgs [][]byte
}

// publish appends evs and returns the offset after them.
func (s *sliceSource) publish(evs []model.Event) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		s.msgs = append(s.msgs, message(e))
	}
	return int64(len(s.msgs))
}

func (s *sliceSource) Consume(ctx context.Context, next map[int32]int64, out chan<- Message) error {
	o := next[0]
	for {
		s.mu.Lock()
		avail := s.msgs[min(o, int64(len(s.msgs))):]
		s.mu.Unlock()
		for _, m := range avail {
			select {
			case out <- Message{Partition: 0, Offset: o, Data: m}:
				o++
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (s *sliceSource) DeadLetter(context.Context, Message, string) error {
	return errors.New("no dead letters expected")
}

// crashStore fails every commit after the first `left` once armed: the
// processor stops with its memory ahead of the store, as a crash leaves it.
type crashStore struct {
	livestore.Store
	armed atomic.Bool
	left  atomic.Int64
}

var errCrash = errors.New("crash")

func (s *crashStore) Commit(ctx context.Context, src string, b livestore.Batch) error {
	if s.armed.Load() && s.left.Add(-1) < 0 {
		return errCrash
	}
	return s.Store.Commit(ctx, src, b)
}

// driftTestModel is the scenario's model (recencyModel's, without a test).
func driftTestModel(schema feature.Schema) (*hazard.Model, error) {
	m, err := hazard.Initial(schema, 0.01)
	if err != nil {
		return nil, err
	}
	for j, n := range schema.Names {
		if n == "recency_days" {
			m.Params[m.Horizon+j] = -1.5
		}
	}
	return m, nil
}

// uninterruptedDrift is the reference: the scenario through one processor
// on a fresh store of kind, checked at now and at now + 31 days.
func uninterruptedDrift(t *testing.T, sc driftScenario, st livestore.Store) DriftReport {
	t.Helper()
	ctx := context.Background()
	src := &sliceSource{}
	p := newDriftProcessor(t, sc, src, st, sc.now, 0)
	w := checkAtNow(t, sc, p, src.publish(sc.history))
	runUntil(t, p, map[int32]int64{0: src.publish(sc.later)})
	rep, err := w.Check(ctx, sc.now.Add(31*24*time.Hour))
	must(t, err)
	return rep
}

// checkAtNow runs p to position hist (the end of the scenario's history),
// starts its drift watch and checks at now.
func checkAtNow(t *testing.T, sc driftScenario, p *Processor, hist int64) *DriftWatch {
	t.Helper()
	runUntil(t, p, map[int32]int64{0: hist})
	w, err := p.WatchDrift(context.Background(), DriftConfig{Reference: sc.reference})
	must(t, err)
	_, err = w.Check(context.Background(), sc.now)
	must(t, err)
	return w
}

func newDriftProcessor(t testing.TB, sc driftScenario, src Source, st livestore.Store, clock time.Time, batch int) *Processor {
	t.Helper()
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	must(t, err)
	m, err := driftTestModel(eng.Schema())
	must(t, err)
	p, err := New(context.Background(), Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: st, Name: "events", Model: m,
		Now: func() time.Time { return clock }, BatchSize: batch})
	must(t, err)
	return p
}

// twoStores opens two fresh stores of each kind (PostgreSQL from
// KAIROS_TEST_POSTGRES_URL; never skipped under CI=true).
func twoStores(t *testing.T) map[string][2]livestore.Store {
	t.Helper()
	ctx := context.Background()
	out := map[string][2]livestore.Store{}
	var sq, pg [2]livestore.Store
	for i := range 2 {
		s, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
		must(t, err)
		sq[i] = s
		p, err := livestore.OpenPostgres(ctx, pgtest.Database(t, pgtest.BaseURL(t), "kairos_live_"))
		must(t, err)
		pg[i] = p
	}
	out["sqlite"], out["postgres"] = sq, pg
	for _, ss := range out {
		for _, s := range ss {
			t.Cleanup(func() { s.Close() })
		}
	}
	return out
}

// TestDriftRestartMidWindow: a processor checks at now, then stops in the
// middle of the next 40 days' events with applied messages its store never
// got (its commits fail from the 40th on, as a crash leaves it). A new
// processor on the same store, ten days later by its clock, restores the
// watch and replays the rest. The report at now + 31 days equals, field for
// field, that of one processor that ran the same events without a stop; its
// buyers are the customers the scenario has buying in [now, now + 30 d)
// (counted from the events), and the store holds each purchase from now on
// exactly once. Before the watch was stored, the restarted report had no
// outcomes at all (the first check's predictions were lost). Both stores.
func TestDriftRestartMidWindow(t *testing.T) {
	sc := newDriftScenario(t)
	ctx := context.Background()
	day := 24 * time.Hour
	for name, st := range twoStores(t) {
		t.Run(name, func(t *testing.T) {
			want := uninterruptedDrift(t, sc, st[1])

			src := &sliceSource{}
			cs := &crashStore{Store: st[0]}
			p := newDriftProcessor(t, sc, src, cs, sc.now, 8)
			checkAtNow(t, sc, p, src.publish(sc.history))
			end := src.publish(sc.later)
			cs.left.Store(40)
			cs.armed.Store(true)
			if err := p.Run(ctx); !errors.Is(err, errCrash) {
				t.Fatalf("run: %v, want the crash", err)
			}
			stopped, err := st[0].Load(ctx, "events", func(string, []byte) error { return nil })
			must(t, err)
			stored, err := st[0].LoadDrift(ctx, "events")
			must(t, err)
			if h := int64(len(sc.history)); stopped[0] <= h || stopped[0] >= end || len(stored.Purchases) == 0 || len(p.Position()) == 0 {
				t.Fatalf("stopped at %d (history ends at %d, stream at %d) with %d purchases stored: not mid-window", stopped[0], h, end, len(stored.Purchases))
			}
			t.Logf("stopped at offset %d of %d with %d purchases stored", stopped[0], end, len(stored.Purchases))

			p2 := newDriftProcessor(t, sc, src, st[0], sc.now.Add(10*day), 8)
			w2, err := p2.WatchDrift(ctx, DriftConfig{Reference: sc.reference})
			must(t, err)
			runUntil(t, p2, map[int32]int64{0: end})
			got, err := w2.Check(ctx, sc.now.Add(31*day))
			must(t, err)
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got.Outcomes)
				w, _ := json.Marshal(want.Outcomes)
				t.Errorf("after the restart the report differs from the uninterrupted run's: outcomes %s, want %s; max PSI %v, want %v; %d snapshots, want %d",
					g, w, got.MaxPSI, want.MaxPSI, got.Snapshots, want.Snapshots)
			}
			if o := got.Outcomes; o == nil || o.Evaluated != 200 || o.Buyers != sc.buyersWithin30 || o.AUC30 == nil {
				t.Errorf("outcomes %+v, want 200 evaluated, %d buyers (from the events) and an AUC", o, sc.buyersWithin30)
			}
			// GET /drift serves that report, byte for byte the uninterrupted one's.
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/drift", nil)
			req.Host = "127.0.0.1:8377"
			p2.Handler().ServeHTTP(rec, req)
			wantJSON, err := json.Marshal(want)
			must(t, err)
			if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != string(wantJSON) {
				t.Errorf("GET /drift after the restart: %d %s\nwant the uninterrupted run's %s", rec.Code, rec.Body.String(), wantJSON)
			}
			stored, err = st[0].LoadDrift(ctx, "events")
			must(t, err)
			if len(stored.Purchases) != len(sc.purchasesFromNow) {
				t.Errorf("stored %d purchases, want %d (each purchase from now on once)", len(stored.Purchases), len(sc.purchasesFromNow))
			}
			have := map[livestore.Purchase]bool{}
			for _, pu := range stored.Purchases {
				have[pu] = true
			}
			n := 0
			for pu := range sc.purchasesFromNow {
				if !have[pu] && n < 5 {
					n++
					t.Logf("missing %v (%v after now)", pu, pu.At.Sub(sc.now))
				}
			}
			for _, pu := range stored.Purchases {
				if !sc.purchasesFromNow[pu] {
					t.Errorf("stored purchase %+v is not one of the scenario's", pu)
				}
			}
		})
	}
}

// TestDriftSnapshotsBounded: with MaxSnapshots 2, three daily checks leave
// the two latest snapshots in memory and in the store, and only the
// purchases from the earliest kept one's time on; a restarted watch restores
// them and numbers its next snapshot after them, still keeping two.
func TestDriftSnapshotsBounded(t *testing.T) {
	sc := newDriftScenario(t)
	ctx := context.Background()
	day := 24 * time.Hour
	st, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer st.Close()
	src := &sliceSource{}
	p := newDriftProcessor(t, sc, src, st, sc.now, 0)
	runUntil(t, p, map[int32]int64{0: src.publish(sc.history)})
	cfg := DriftConfig{Reference: sc.reference, MaxSnapshots: 2}
	w, err := p.WatchDrift(ctx, cfg)
	must(t, err)
	runUntil(t, p, map[int32]int64{0: src.publish(sc.later)})
	var rep DriftReport
	for d := range 3 {
		rep, err = w.Check(ctx, sc.now.Add(time.Duration(d)*day))
		must(t, err)
	}
	// The scenario's purchases at or after from, counted from the events.
	purchasesFrom := func(from time.Time) int {
		n := 0
		for pu := range sc.purchasesFromNow {
			if !pu.At.Before(from) {
				n++
			}
		}
		return n
	}
	want := purchasesFrom(sc.now.Add(day))
	check := func(when string, seqs ...int64) {
		t.Helper()
		d, err := st.LoadDrift(ctx, "events")
		must(t, err)
		var got []int64
		for _, s := range d.Snapshots {
			got = append(got, s.Seq)
		}
		if !slices.Equal(got, seqs) || len(d.Purchases) != want {
			t.Errorf("%s: stored snapshots %v and %d purchases, want %v and %d", when, got, len(d.Purchases), seqs, want)
		}
	}
	if rep.Snapshots != 2 {
		t.Errorf("report keeps %d snapshots, want 2", rep.Snapshots)
	}
	check("after three checks", 2, 3)

	p2 := newDriftProcessor(t, sc, src, st, sc.now.Add(3*day), 0)
	w2, err := p2.WatchDrift(ctx, cfg)
	must(t, err)
	if rep, err = w2.Check(ctx, sc.now.Add(3*day)); err != nil || rep.Snapshots != 2 {
		t.Fatalf("check after the restart: %v, %d snapshots; want 2", err, rep.Snapshots)
	}
	want = purchasesFrom(sc.now.Add(2 * day))
	check("after the restart's check", 3, 4)
}

// refusingStore refuses every drift snapshot.
type refusingStore struct{ livestore.Store }

func (refusingStore) AddSnapshot(context.Context, string, livestore.Snapshot, int) error {
	return errors.New("disk full")
}

// TestDriftCheckFailsWithoutItsSnapshot: a check whose snapshot the store
// refuses fails with the store's error and keeps nothing, so memory never
// holds a snapshot a restart would not find; the next check is refused the
// same way (not by a conflicting sequence number).
func TestDriftCheckFailsWithoutItsSnapshot(t *testing.T) {
	sc := newDriftScenario(t)
	ctx := context.Background()
	st, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer st.Close()
	src := &sliceSource{}
	p := newDriftProcessor(t, sc, src, refusingStore{st}, sc.now, 0)
	runUntil(t, p, map[int32]int64{0: src.publish(sc.history)})
	w, err := p.WatchDrift(ctx, DriftConfig{Reference: sc.reference})
	must(t, err)
	for range 2 {
		if _, err := w.Check(ctx, sc.now); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("check with a refused snapshot: %v, want the store's error", err)
		}
	}
	if _, ok := w.Report(); ok || len(w.snapshots) != 0 || w.seq != 0 {
		t.Errorf("after refused checks: report kept %v, %d snapshots, seq %d; want none", ok, len(w.snapshots), w.seq)
	}
}

// TestDriftSubSecondPurchase: a purchase 0.2 s after a check made at a
// fractional second labels that check's prediction (times are kept to the
// second, the check's too). Before the check's time was truncated, the
// purchase (kept as the whole second, before the check) labelled nothing.
func TestDriftSubSecondPurchase(t *testing.T) {
	sc := newDriftScenario(t)
	ctx := context.Background()
	st, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer st.Close()
	src := &sliceSource{}
	p := newDriftProcessor(t, sc, src, st, sc.now, 0)
	runUntil(t, p, map[int32]int64{0: src.publish(sc.history)})
	w, err := p.WatchDrift(ctx, DriftConfig{Reference: sc.reference})
	must(t, err)
	_, err = w.Check(ctx, sc.now.Add(500*time.Millisecond))
	must(t, err)
	b := newBatch()
	p.observe(b, model.Event{Customer: "c7", Time: sc.now.Add(700 * time.Millisecond), Kind: model.Purchase, Amount: 1, HasAmount: true})
	if len(b.purchases) != 1 || !b.purchases[0].At.Equal(sc.now) {
		t.Fatalf("batch purchases %+v, want c7's at %v (to the second)", b.purchases, sc.now)
	}
	rep, err := w.Check(ctx, sc.now.Add(31*24*time.Hour))
	must(t, err)
	if o := rep.Outcomes; o == nil || o.Evaluated != 200 || o.Buyers != 1 {
		t.Errorf("outcomes %+v, want 200 evaluated and 1 buyer (c7)", o)
	}
}

// TestWatchDriftRefusedWhileRunning: a watch started on a running processor
// would miss the purchases of the messages already replayed, so it is
// refused with the reason.
func TestWatchDriftRefusedWhileRunning(t *testing.T) {
	sc := newDriftScenario(t)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer st.Close()
	p := newDriftProcessor(t, sc, idleSource{}, st, sc.now, 0)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for !p.running.Load() {
		time.Sleep(time.Millisecond)
	}
	_, err = p.WatchDrift(ctx, DriftConfig{Reference: sc.reference})
	cancel()
	if runErr := <-done; !errors.Is(runErr, context.Canceled) {
		t.Fatalf("run: %v", runErr)
	}
	if err == nil || !strings.Contains(err.Error(), "start the watch before Run") {
		t.Errorf("watch on a running processor: %v, want refused", err)
	}
	if _, err := p.WatchDrift(context.Background(), DriftConfig{Reference: sc.reference}); err != nil {
		t.Errorf("watch after Run returned: %v", err)
	}
}
