package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/api/apiclient"
)

// balancer is a round-robin HTTP load balancer over aggregator replicas that
// skips a replica it cannot connect to, as any load balancer with health
// checks would. It counts the updates each replica received.
type balancer struct {
	backends []string
	hc       *http.Client

	mu      sync.Mutex
	next    int
	updates map[string]int
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	b.mu.Lock()
	first := b.next
	b.next = (b.next + 1) % len(b.backends)
	b.mu.Unlock()
	var lastErr error
	for i := range b.backends {
		backend := b.backends[(first+i)%len(b.backends)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, backend+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := b.hc.Do(req)
		if err != nil {
			lastErr = err
			continue // connection refused: the replica is down
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/updates") {
			b.mu.Lock()
			b.updates[backend]++
			b.mu.Unlock()
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "no replica reachable: "+lastErr.Error(), http.StatusBadGateway)
}

// TestTwoReplicas runs the federation through a load balancer over two
// aggregator replicas sharing one PostgreSQL database, and kills one replica
// with SIGKILL mid-federation: every round is still published exactly once,
// nothing accepted is lost or debited twice, and the audit log verifies.
func TestTwoReplicas(t *testing.T) {
	if len(stores(t)) < 2 {
		t.Skip("needs PostgreSQL: set KAIROS_TEST_POSTGRES_URL")
	}
	const rounds = 5
	f := newFed(t, fedOptions{merchants: 3, rounds: rounds, store: "postgres"})
	a := f.agg
	listenB := freePort(t)
	b := start(t, filepath.Join(f.Dir, "aggregator-b.Log"), nil, "aggregator", "serve", "--dir", f.AggDir, "--listen", listenB, "--log-json")
	adminB, err := apiclient.New("http://"+listenB, adminToken(t, f))
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, adminB, b)

	lb := &balancer{backends: []string{f.URL, "http://" + listenB}, hc: &http.Client{Timeout: time.Minute}, updates: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: lb, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	f.URL = "http://" + ln.Addr().String()
	if f.Admin, err = apiclient.New(f.URL, adminToken(t, f)); err != nil {
		t.Fatal(err)
	}
	for _, m := range f.merchants {
		f.writeClientConfig(m, "")
		f.run(m, nil)
	}
	f.waitPublished(2, 60*time.Second)
	if err := a.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := a.wait(t, 10*time.Second); !killed(err) {
		t.Fatalf("replica a: exit %v, want killed", err)
	}
	for _, m := range f.merchants {
		if err := m.proc.wait(t, 90*time.Second); err != nil {
			t.Fatalf("client %s: %v\n%s", m.id, err, tail(m.proc.Log, 20))
		}
	}
	f.waitPublished(rounds, 30*time.Second)
	lb.mu.Lock()
	for _, backend := range lb.backends {
		if lb.updates[backend] == 0 {
			t.Errorf("replica %s received no update: the balancer did not spread the load", backend)
		}
	}
	lb.mu.Unlock()
	if got := f.published(); got != rounds {
		t.Errorf("published versions: got %d, want %d (each round exactly once)", got, rounds)
	}
	f.checkLedgers()
	contrib := f.contributions()
	for _, m := range f.merchants {
		if st := f.state(m); st.Accepted() != rounds || contrib[m.id] != rounds {
			t.Errorf("%s: %d accepted, %d contributions; want %d each", m.id, st.Accepted(), contrib[m.id], rounds)
		}
	}
	f.agg = b
	f.verifyAudit()
}

func adminToken(t *testing.T, f *fed) string {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(f.AggDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(tok))
}

func waitReady(t *testing.T, c *apiclient.Client, p *proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for c.Ready(ctx) != nil {
		select {
		case <-p.Done():
			t.Fatalf("replica exited: %v\n%s", p.Err(), tail(p.Log, 20))
		case <-ctx.Done():
			t.Fatalf("replica not ready\n%s", tail(p.Log, 20))
		case <-time.After(30 * time.Millisecond):
		}
	}
}
