package stream

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

// idleSource is a Source with nothing to read (the test applies messages
// itself).
type idleSource struct{}

func (idleSource) Consume(ctx context.Context, _ map[int32]int64, _ chan<- Message) error {
	<-ctx.Done()
	return ctx.Err()
}
func (idleSource) DeadLetter(context.Context, Message, string) error { return nil }

// TestScoresRefuseDNSRebinding (hardening review, session 18): the local
// scores endpoint has no authentication and listens on loopback, so a web
// page that rebinds its own DNS name to 127.0.0.1 could read any customer's
// score through the merchant's browser. Requests whose Host is a DNS name
// are now refused with 403; an IP address or localhost is served as before.
// Before the fix the rebinding request got the customer's scores (200).
func TestScoresRefuseDNSRebinding(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	must(t, err)
	store, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer store.Close()
	p, err := New(ctx, Config{Source: idleSource{}, Decoder: testDecoder(t), Engine: eng, Store: store, Name: "events",
		Model: recencyModel(t, eng.Schema()), Now: func() time.Time { return now }})
	must(t, err)
	must(t, p.process(ctx, []Message{{Offset: 0, Data: []byte(`{"customer":"alice","ts":1717000000,"kind":"purchase","amount":12.5}`)}}))

	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	for _, tt := range []struct {
		host string
		want int
	}{
		{"", http.StatusOK}, // the listener's own 127.0.0.1:port
		{"localhost:" + port, http.StatusOK},
		{"LOCALHOST", http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{"10.1.2.3:" + port, http.StatusOK}, // a private interface, by address
		{"rebind.attacker.example:" + port, http.StatusForbidden},
		{"rebind.attacker.example", http.StatusForbidden},
		{"localhost.attacker.example:" + port, http.StatusForbidden},
		{"127.0.0.1.nip.io:" + port, http.StatusForbidden},
	} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/scores/alice", nil)
		must(t, err)
		if tt.host != "" {
			req.Host = tt.host
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Host %q: status %d, want %d", tt.host, resp.StatusCode, tt.want)
		}
		if tt.want == http.StatusForbidden && strings.Contains(string(body), "alice") {
			t.Errorf("Host %q: refused answer names the customer: %s", tt.host, body)
		}
	}
}

// FuzzScoresHost sends arbitrary Host headers and customer paths to the
// scores endpoint: a DNS name is always refused (403) without naming the
// customer, an IP address or localhost never is; nothing panics.
func FuzzScoresHost(f *testing.F) {
	for _, h := range []string{"127.0.0.1:8377", "localhost", "[::1]:1", "evil.example", "127.0.0.1.nip.io", "[fe80::1%eth0]:80", "", ":80", "[", "LOCALHOST.:1"} {
		f.Add(h, "alice")
	}
	ctx := context.Background()
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	if err != nil {
		f.Fatal(err)
	}
	store, err := livestore.OpenSQLite(ctx, filepath.Join(f.TempDir(), "live.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	m, err := hazard.Initial(eng.Schema(), 0.01)
	if err != nil {
		f.Fatal(err)
	}
	p, err := New(ctx, Config{Source: idleSource{}, Decoder: testDecoder(f), Engine: eng, Store: store, Name: "events", Model: m})
	if err != nil {
		f.Fatal(err)
	}
	if err := p.process(ctx, []Message{{Offset: 0, Data: []byte(`{"customer":"alice","ts":1717000000,"kind":"purchase","amount":12.5}`)}}); err != nil {
		f.Fatal(err)
	}
	h := p.Handler()
	f.Fuzz(func(t *testing.T, host, customer string) {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.URL.Path = "/v1/scores/" + customer
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		name := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			name = hh
		}
		name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
		_, ipErr := netip.ParseAddr(name)
		byAddress := ipErr == nil || strings.EqualFold(name, "localhost")
		if refused := rec.Code == http.StatusForbidden; refused == byAddress {
			t.Fatalf("Host %q: status %d; want 403 exactly when it is not an IP address or localhost", host, rec.Code)
		}
		if rec.Code == http.StatusForbidden && strings.Contains(rec.Body.String(), `"customer"`) {
			t.Fatalf("Host %q: refusal carries a score: %s", host, rec.Body)
		}
	})
}

// deadSource records dead letters.
type deadSource struct {
	idleSource
	dead []string
}

func (s *deadSource) DeadLetter(_ context.Context, _ Message, reason string) error {
	s.dead = append(s.dead, reason)
	return nil
}

// TestNULCustomerDeadLettered (hardening review, session 18): a message
// whose customer id holds a NUL character ("\u0000" in JSON) was applied,
// and the live store's commit failed on PostgreSQL (text cannot hold NUL):
// Run stopped, and on every restart the same message stopped it again. Now
// the message goes to the dead letter with its reason and the batch's other
// events are committed, on SQLite and on PostgreSQL.
func TestNULCustomerDeadLettered(t *testing.T) {
	badCustomerDeadLettered(t, []byte(`{"customer":"ev\u0000il","ts":1717000001,"kind":"purchase","amount":3}`), "NUL")
}

// badCustomerDeadLettered processes bad, a message whose customer id the
// live store must not hold, between two good ones, on SQLite and on
// PostgreSQL: bad goes to the dead letter with a reason holding each of
// want, and the good ones are committed.
func badCustomerDeadLettered(t *testing.T, bad []byte, want ...string) {
	t.Helper()
	ctx := context.Background()
	sq, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer sq.Close()
	stores := map[string]livestore.Store{"sqlite": sq}
	pg, err := livestore.OpenPostgres(ctx, pgtest.Database(t, pgtest.BaseURL(t), "kairos_live_"))
	must(t, err)
	defer pg.Close()
	stores["postgres"] = pg
	for name, st := range stores {
		t.Run(name, func(t *testing.T) {
			eng, err := feature.NewLiveEngine(feature.LiveConfig{})
			must(t, err)
			src := &deadSource{}
			p, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: st, Name: "events"})
			must(t, err)
			batch := []Message{
				{Offset: 0, Data: []byte(`{"customer":"bob","ts":1717000000,"kind":"view"}`)},
				{Offset: 1, Data: bad},
				{Offset: 2, Data: []byte(`{"customer":"carol","ts":1717000002,"kind":"view"}`)},
			}
			if err := p.process(ctx, batch); err != nil {
				t.Fatalf("batch with the bad customer id: %v; want it dead-lettered and the rest committed", err)
			}
			ok := len(src.dead) == 1
			for _, w := range want {
				ok = ok && strings.Contains(src.dead[0], w)
			}
			if !ok {
				t.Errorf("dead letters %.300q, want one naming %q", src.dead, want)
			}
			var got []string
			next, err := st.Load(ctx, "events", func(c string, _ []byte) error { got = append(got, c); return nil })
			must(t, err)
			slices.Sort(got)
			if strings.Join(got, ",") != "bob,carol" || next[0] != 3 {
				t.Errorf("stored %d customers %.40q at offset %d, want bob,carol at 3", len(got), got, next[0])
			}
		})
	}
}
