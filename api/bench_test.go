package api

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

// BenchmarkSubmitAPIOnly measures what the API adds to a submission: routing,
// token verification, role and merchant checks, the body read, the envelope
// header parse, metrics and the receipt. The service is the in-memory one.
func BenchmarkSubmitAPIOnly(b *testing.B) {
	f := newFixture(b, &fakeService{}, Options{})
	env := f.envelope(b, "m1", "r1")
	auth := "Bearer " + f.tokens["m1"]
	b.ReportAllocs()
	b.SetBytes(int64(len(env)))
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/rounds/r1/updates", bytes.NewReader(env))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkSubmitAccepted measures accepted updates through the API handler
// over the real service: token check, signature check, decryption, ledger
// debit and audit entry per update, from 1 or 16 concurrent submitters, on
// SQLite and (with KAIROS_TEST_POSTGRES_URL) PostgreSQL. Each merchant may
// send one update per round, so after every 128 updates the round is closed
// and the next opened, outside the timer.
func BenchmarkSubmitAccepted(b *testing.B) {
	backends := []struct{ name, url string }{{"sqlite", ""}}
	if base := os.Getenv("KAIROS_TEST_POSTGRES_URL"); base != "" {
		backends = append(backends, struct{ name, url string }{"postgres", base})
	}
	for _, be := range backends {
		for _, workers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/workers=%d", be.name, workers), func(b *testing.B) {
				dbURL := ""
				if be.url != "" {
					dbURL = freshPostgresDB(b, be.url)
				}
				benchSubmitAccepted(b, dbURL, workers)
			})
		}
	}
}

func benchSubmitAccepted(b *testing.B, dbURL string, workers int) {
	const merchants = 128
	var pol strings.Builder
	pol.WriteString(realPolicy)
	ids := make([]string, merchants)
	for i := range ids {
		ids[i] = fmt.Sprintf("b%03d", i)
		fmt.Fprintf(&pol, "  %s: {}\n", ids[i])
	}
	rounds := aggregator.RoundConfig{Quorum: 1, Deadline: time.Hour, PlannedRounds: 40}
	f := newRealFixtureWith(b, dbURL, pol.String(), ids, rounds, Options{})
	ctx := b.Context()

	type job struct {
		path, auth string
		env        []byte
	}
	var jobs []job
	prepare := func() {
		jobs = jobs[:0]
		for _, id := range ids {
			r, err := f.svc.CurrentRound(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if !r.Selected {
				b.Fatalf("%s not selected in %s", id, r.ID)
			}
			jobs = append(jobs, job{"/v1/rounds/" + r.ID + "/updates", "Bearer " + f.tokens[id], f.honest(b, id)})
		}
	}
	submit := func(j job) {
		req := httptest.NewRequest("POST", j.path, bytes.NewReader(j.env))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Authorization", j.auth)
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Errorf("status %d: %s", rec.Code, rec.Body)
		}
	}
	// run submits jobs[:n] with the workers.
	run := func(n int) {
		ch := make(chan job)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for j := range ch {
					submit(j)
				}
			})
		}
		for _, j := range jobs[:n] {
			ch <- j
		}
		close(ch)
		wg.Wait()
	}

	prepare()
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(b.N-done, merchants)
		run(n)
		done += n
		if b.Failed() {
			b.FailNow()
		}
		if done < b.N {
			b.StopTimer()
			f.clock.Add(rounds.Deadline + time.Second)
			if err := f.svc.Tick(ctx); err != nil {
				b.Fatal(err)
			}
			prepare()
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// freshPostgresDB creates an empty database on the server base names and
// drops it when tb ends.
func freshPostgresDB(tb testing.TB, base string) string {
	tb.Helper()
	return pgtest.Database(tb, base, "kairos_api_")
}
