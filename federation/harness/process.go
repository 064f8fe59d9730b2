// Package harness runs a Kairos federation as real processes on loopback: one
// `kairos aggregator serve` and any number of `kairos client` processes, each
// with its own directory, keys, token, configuration and log. The demo and the
// end-to-end tests drive their federations through it.
package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a kairos process started by Start. Its output (stdout and
// stderr) goes to its log file.
type Process struct {
	// Cmd is the running command (for signals a test sends on purpose).
	Cmd *exec.Cmd
	// Log is the path of the process's log file.
	Log  string
	done chan struct{}
	err  error
}

// Start starts exe with args, appending its output to logPath. env is added to
// this process's environment. The child is killed if this process dies.
func Start(logPath string, env []string, exe string, args ...string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", describe(args), err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", describe(args), err)
	}
	p := &Process{Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// describe names a command by its first two arguments ("client run").
func describe(args []string) string {
	return strings.Join(args[:min(2, len(args))], " ")
}

// Name is the process's subcommand, such as "client run".
func (p *Process) Name() string { return describe(p.Cmd.Args[1:]) }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for status 0). It is meaningful only
// once Done is closed.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns its exit error, or the
// context's error (the process keeps running).
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s: %w", p.Name(), ctx.Err())
	}
}

// WaitTimeout is Wait with a timeout.
func (p *Process) WaitTimeout(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return p.Wait(ctx)
}

// Kill kills the process, if it is still running, and waits for it.
func (p *Process) Kill() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// StopGrace is how long Stop waits after SIGTERM before it kills.
const StopGrace = 40 * time.Second

// Stop sends SIGTERM and waits up to StopGrace, then kills. It returns the
// process's exit error: nil when it exited cleanly, whether now or before.
func (p *Process) Stop() error {
	if p == nil {
		return nil
	}
	if p.Exited() {
		return p.err
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(StopGrace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %v of SIGTERM: killed", p.Name(), StopGrace)
	}
}

// Tail returns the last n lines of the process's log, headed by its path, for
// error messages.
func (p *Process) Tail(n int) string { return Tail(p.Log, n) }

// Tail returns the last n lines of a log file, headed by its path.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "--- " + path + ": " + err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- " + path + " ---\n" + strings.Join(lines, "\n")
}

// ExitText describes how a process ended, for messages.
func ExitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Killed reports whether an exit error says the process died of SIGKILL.
func Killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
