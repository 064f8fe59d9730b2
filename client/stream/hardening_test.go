package stream

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model/feature"
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
