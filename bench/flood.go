package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/server"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// FloodResult is what `kairos bench predict flood` measures; also its JSON.
type FloodResult struct {
	Server    string         `json:"server"`
	ServeArgs []string       `json:"serve_args,omitempty"`
	Requests  int            `json:"requests"`
	Customers int            `json:"customers"`
	Events    int            `json:"events_per_customer"`
	BodyBytes int            `json:"body_bytes"`
	Seconds   float64        `json:"seconds"`
	Outcomes  map[string]int `json:"attack_outcomes"` // status code, or "connection closed" when the server hung up before answering
	// Retry: each attacker resent its batch after the Retry-After of a 503 or
	// 429 until it was answered 200.
	Retry bool `json:"retry"`
	// Compliant are the merchant's single predictions sent during the attack.
	Compliant      int     `json:"compliant_requests"`
	CompliantOK    int     `json:"compliant_answered_200"`
	CompliantP50ms float64 `json:"compliant_p50_ms"`
	CompliantMaxMs float64 `json:"compliant_max_ms"`
	// PeakRSSMiB is the server process's VmHWM (peak resident set) at the end.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// Names in the example policy `aggregator init` writes: crm-demo may query
// cdnow-1 at 50 requests/s with a burst of 100.
const (
	FloodMerchant = "cdnow-1"
	FloodPartner  = "crm-demo"
	FloodAsOf     = "2026-11-27T00:00:00Z"
)

// FloodBatch is a predict:batch body of customers × events: views an hour
// apart before as_of, about 67 bytes an event.
func FloodBatch(merchant, asOf string, customers, events int) []byte {
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	b := make([]byte, 0, customers*events*64+customers*32+128)
	b = fmt.Appendf(b, `{"merchant":%q,"as_of":%q,"customers":[`, merchant, asOf)
	for c := range customers {
		if c > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"customer":"c%06d","events":[`, c)
		for e := range events {
			if e > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"time":"`...)
			b = start.Add(time.Duration(e)*time.Hour).AppendFormat(b, time.RFC3339)
			b = fmt.Appendf(b, `","kind":"view","item":"sku-%06d"}`, (c*31+e)%999983)
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

// FloodSingle is a compliant single prediction with a few events.
func FloodSingle(merchant string) []byte {
	return fmt.Appendf(nil, `{"merchant":%q,"customer":"probe","as_of":%q,"events":[`+
		`{"time":"2026-11-01T10:00:00Z","kind":"view","item":"a"},{"time":"2026-11-02T10:00:00Z","kind":"purchase","item":"a","amount":12.5}]}`,
		merchant, FloodAsOf)
}

// floodServer is a `kairos aggregator serve` child process.
type floodServer struct {
	cmd    *exec.Cmd
	exited chan error // cmd.Wait's answer
	base   string
	dir    string
	admin  string // the admin token init wrote
	logs   *os.File
}

// startFloodServer initialises an aggregator directory in a temporary
// directory with bin and starts bin's serve on a free loopback port.
func startFloodServer(ctx context.Context, bin string, serveArgs []string) (_ *floodServer, err error) {
	tmp, err := os.MkdirTemp("", "kairos-flood-")
	if err != nil {
		return nil, err
	}
	s := &floodServer{dir: filepath.Join(tmp, "agg")}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if out, err := exec.CommandContext(ctx, bin, "aggregator", "init", "--dir", s.dir, "--classic", "--listen", "127.0.0.1:0").CombinedOutput(); err != nil {
		return s, fmt.Errorf("aggregator init: %w\n%s", err, out)
	}
	tok, err := os.ReadFile(filepath.Join(s.dir, config.TokenFile))
	if err != nil {
		return s, err
	}
	s.admin = strings.TrimSpace(string(tok))
	if s.logs, err = os.Create(filepath.Join(tmp, "serve.log")); err != nil {
		return s, err
	}
	addrFile := filepath.Join(tmp, "addr")
	s.cmd = exec.Command(bin, slices.Concat([]string{"aggregator", "serve", "--dir", s.dir, "--addr-file", addrFile}, serveArgs)...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		return s, err
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			s.base = strings.TrimSpace(string(b))
			return s, nil
		}
		select {
		case err := <-s.exited:
			logs, _ := os.ReadFile(s.logs.Name())
			s.cmd = nil
			return s, fmt.Errorf("serve exited: %w\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			return s, errors.New("serve did not write its address in 30 s")
		}
	}
}

// stop sends SIGTERM to the server, waits for it to exit and removes its
// directory.
func (s *floodServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		// The exit status after a signal says nothing the caller acts on.
		select {
		case err := <-s.exited:
			_ = err
		case <-time.After(40 * time.Second): // past serve's 30 s drain
			_ = s.cmd.Process.Kill()
			err := <-s.exited
			_ = err
		}
	}
	if s.logs != nil {
		s.logs.Close()
	}
	if s.dir != "" {
		_ = os.RemoveAll(filepath.Dir(s.dir))
	}
}

// peakRSS reads VmHWM, the peak resident set, of process pid in MiB.
func peakRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// Flood runs the memory-amplification attack of `kairos bench predict flood`
// on a `bin aggregator serve` process started with serveArgs, writing a line
// per outcome to out.
func Flood(ctx context.Context, out io.Writer, bin string, serveArgs []string, requests, customers, events int, retry bool) (*FloodResult, error) {
	srv, err := startFloodServer(ctx, bin, serveArgs)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	pid := srv.cmd.Process.Pid

	admin, err := apiclient.New(srv.base, srv.admin)
	if err != nil {
		return nil, err
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	enr, err := admin.Enrol(ctx, protocol.EnrolRequest{ID: FloodMerchant, TimeZone: "UTC", PublicKey: pub})
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", FloodMerchant, err)
	}
	ak, err := keys.LoadAggregator(filepath.Join(srv.dir, config.KeysDir), nil)
	if err != nil {
		return nil, err
	}
	iss, err := server.Issuer(ak)
	if err != nil {
		return nil, err
	}
	partner, _, err := iss.Issue(auth.Grant{Subject: FloodPartner, Role: auth.RolePartner, Merchants: []string{FloodMerchant}, TTL: time.Hour})
	if err != nil {
		return nil, err
	}

	body := FloodBatch(FloodMerchant, FloodAsOf, customers, events)
	single := FloodSingle(FloodMerchant)
	res := &FloodResult{Server: bin, ServeArgs: serveArgs, Requests: requests, Customers: customers, Events: events,
		BodyBytes: len(body), Outcomes: map[string]int{}, Retry: retry}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: requests, DisableCompression: true}, Timeout: 10 * time.Minute}
	defer hc.CloseIdleConnections()
	// post returns the status and the Retry-After in seconds.
	post := func(path, token string, b []byte) (int, int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.base+path, bytes.NewReader(b))
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return resp.StatusCode, after, err
	}
	if code, _, err := post("/v1/predict", enr.Token, single); err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("a single prediction before the attack: status %d: %w", code, err)
	}

	fmt.Fprintf(out, "server %s (pid %d) %s\n", bin, pid, strings.Join(serveArgs, " "))
	fmt.Fprintf(out, "attack: %d concurrent POST /v1/predict:batch of %d customers × %d events (%.1f MB each) from partner %s, retrying: %v\n",
		requests, customers, events, float64(len(body))/1e6, FloodPartner, retry)
	start := time.Now()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	for range requests {
		wg.Go(func() {
			for {
				code, after, err := post("/v1/predict:batch", partner, body)
				key := strconv.Itoa(code)
				if err != nil {
					key = "connection closed"
				}
				mu.Lock()
				res.Outcomes[key]++
				mu.Unlock()
				if !retry || code == http.StatusOK || ctx.Err() != nil {
					return
				}
				time.Sleep(time.Duration(max(after, 1)) * time.Second)
			}
		})
	}
	var lat []time.Duration
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			t0 := time.Now()
			code, _, err := post("/v1/predict", enr.Token, single)
			res.Compliant++
			if err == nil && code == http.StatusOK {
				res.CompliantOK++
				lat = append(lat, time.Since(t0))
			}
		}
	}()
	wg.Wait()
	close(done)
	<-probeDone
	res.Seconds = time.Since(start).Seconds()
	slices.Sort(lat)
	if len(lat) > 0 {
		res.CompliantP50ms, res.CompliantMaxMs = ms(lat[len(lat)/2]), ms(lat[len(lat)-1])
	}
	if res.PeakRSSMiB, err = peakRSS(pid); err != nil {
		return nil, err
	}
	keysSorted := make([]string, 0, len(res.Outcomes))
	for k := range res.Outcomes {
		keysSorted = append(keysSorted, k)
	}
	slices.Sort(keysSorted)
	var parts []string
	for _, k := range keysSorted {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, res.Outcomes[k]))
	}
	fmt.Fprintf(out, "answers in %.1f s: %s\n", res.Seconds, strings.Join(parts, ", "))
	fmt.Fprintf(out, "compliant: %d of %d single predictions during the attack answered 200 (p50 %.1f ms, max %.1f ms)\n",
		res.CompliantOK, res.Compliant, res.CompliantP50ms, res.CompliantMaxMs)
	fmt.Fprintf(out, "server peak RSS (VmHWM): %.0f MiB\n", res.PeakRSSMiB)
	return res, nil
}
