package harness

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sh(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	return p
}

// TestProcess: output goes to the log, exit statuses come back, Stop ends a
// running process with SIGTERM and Kill with SIGKILL (Killed tells them apart).
func TestProcess(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "p.log")
	p, err := Start(log, []string{"HARNESS_X=42"}, sh(t), "-c", "echo out $HARNESS_X; echo err >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitTimeout(10 * time.Second)
	var ee *exec.ExitError
	if !asExit(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit: got %v, want status 3", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "out 42\nerr\n" {
		t.Errorf("log %q, want both streams", b)
	}
	if got := p.Tail(1); !strings.HasSuffix(got, "\nerr") {
		t.Errorf("tail: %q", got)
	}

	p, err = Start(filepath.Join(dir, "q.log"), nil, sh(t), "-c", "sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	err = p.Stop()
	if !asExit(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM || Killed(err) {
		t.Errorf("stop: got %v, want terminated by SIGTERM", err)
	}
	if !p.Exited() || p.Stop() == nil {
		t.Error("a stopped process: Exited false, or Stop forgot its exit error")
	}

	p, err = Start(filepath.Join(dir, "r.log"), nil, sh(t), "-c", "sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	if !Killed(p.Err()) {
		t.Errorf("kill: got %v, want killed", p.Err())
	}
	if _, err := Start(filepath.Join(dir, "no-such-dir", "x.log"), nil, sh(t)); err == nil {
		t.Error("log in a missing directory: no error")
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	return errors.As(err, ee)
}

// TestWaitClients: exits are noticed in any order; a failed client fails the
// wait, naming it, unless the exit hook accepts its end.
func TestWaitClients(t *testing.T) {
	dir := t.TempDir()
	run := func(script string) *Merchant {
		m := &Merchant{ID: "m-" + script[len(script)-1:]}
		p, err := Start(filepath.Join(dir, m.ID+".log"), nil, sh(t), "-c", script)
		if err != nil {
			t.Fatal(err)
		}
		m.Client = p
		return m
	}
	// The slow, clean client comes first: the failed one behind it must still
	// be seen as soon as it exits.
	f := &Federation{Merchants: []*Merchant{run("sleep 2; exit 0"), run("exit 3")}}
	start := time.Now()
	err := f.WaitClients(context.Background(), 20*time.Millisecond, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "client m-3") {
		t.Errorf("got %v, want client m-3's failure", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("failure seen after %v, behind the slow client", d)
	}
	f.Merchants[0].Client.Kill()

	var seen []string
	f = &Federation{Merchants: []*Merchant{run("sleep 0.2; exit 0"), run("exit 3")}}
	err = f.WaitClients(context.Background(), 20*time.Millisecond, nil, func(m *Merchant, err error) error {
		seen = append(seen, m.ID)
		return nil
	})
	if err != nil || len(seen) != 1 || seen[0] != "m-3" {
		t.Errorf("with the hook: got %v, hook saw %v; want nil after m-3", err, seen)
	}
}
