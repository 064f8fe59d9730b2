package harness

import (
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
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}
