package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client"
)

// uploadGate forwards requests to the aggregator, but while armed it holds
// every update upload until the test decides whether the aggregator ever
// receives it: the test kills the uploading client meanwhile.
type uploadGate struct {
	backend string
	armed   atomic.Bool
	arrived chan struct{}
	release chan bool // true: forward the held upload; false: drop it
	settled chan struct{}
}

func (g *uploadGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	forward := func(ctx context.Context) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, r.Method, g.backend+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header = r.Header.Clone()
		return http.DefaultClient.Do(req)
	}
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/updates") && g.armed.CompareAndSwap(true, false) {
		g.arrived <- struct{}{}
		if <-g.release {
			// The client is dead by now: deliver its upload anyway, as a
			// request already in the aggregator's socket buffer would be.
			if resp, err := forward(context.Background()); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		g.settled <- struct{}{}
		return
	}
	resp, err := forward(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// TestClientKilledMidUpload kills a client with SIGKILL while its upload is in
// flight, twice: once when the upload then reaches the aggregator (the
// restarted client re-sends the same envelope and gets a duplicate receipt),
// once when it never does (the re-sent envelope is accepted fresh). Either
// way the round is trained and debited once.
func TestClientKilledMidUpload(t *testing.T) {
	for _, store := range stores(t) {
		t.Run(store, func(t *testing.T) {
			f := newFed(t, fedOptions{merchants: 1, rounds: 4, store: store})
			m := f.merchants[0]
			g := &uploadGate{backend: f.URL, arrived: make(chan struct{}), release: make(chan bool), settled: make(chan struct{})}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })
			direct := f.URL
			f.URL = "http://" + ln.Addr().String()
			f.writeClientConfig(m, "")
			f.URL = direct

			for i, delivered := range []bool{true, false} {
				g.armed.Store(true)
				p := f.run(m, nil, "--once")
				select {
				case <-g.arrived:
				case <-time.After(60 * time.Second):
					t.Fatalf("upload %d never arrived\n%s", i, tail(p.Log, 20))
				}
				if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				if err := p.wait(t, 10*time.Second); !killed(err) {
					t.Fatalf("client exit: got %v, want killed", err)
				}
				g.release <- delivered
				<-g.settled
				st := f.state(m)
				if st.Pending == nil || len(st.Rounds) != i {
					t.Fatalf("after kill %d: pending %v, %d rounds; want pending, %d rounds", i, st.Pending != nil, len(st.Rounds), i)
				}
				wantReleases := 2 * i
				if delivered {
					wantReleases += 2
				}
				if got := f.budgets()[m.id].Releases; got != wantReleases {
					t.Fatalf("after kill %d: aggregator releases %d, want %d", i, got, wantReleases)
				}
				if err := f.run(m, nil, "--once").wait(t, 60*time.Second); err != nil {
					t.Fatalf("restart %d: %v\n%s", i, err, tail(m.proc.Log, 20))
				}
				st = f.state(m)
				want := client.OutcomeAccepted
				if delivered {
					want = client.OutcomeDuplicate
				}
				if len(st.Rounds) != i+1 || st.Rounds[i].Outcome != want || st.Pending != nil {
					t.Fatalf("after restart %d: rounds %+v, pending %v; want round %d %s", i, st.Rounds, st.Pending != nil, i, want)
				}
				f.checkLedgers()
				f.waitPublished(i+1, 30*time.Second)
			}
			f.verifyAudit()
		})
	}
}
