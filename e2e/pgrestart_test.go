package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pgBin is where Debian's PostgreSQL server binaries live.
const pgBin = "/usr/lib/postgresql/15/bin"

// privatePostgres is a PostgreSQL cluster of the test's own, run as the
// postgres user, so that the test may stop and start it.
type privatePostgres struct {
	dir, data, sock string
	port            int
}

// newPrivatePostgres initialises and starts a cluster, or skips the test when
// that is impossible here (not root, no postgres user or binaries).
func newPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a private PostgreSQL as the postgres user")
	}
	if _, err := user.Lookup("postgres"); err != nil {
		t.Skip("no postgres user")
	}
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		t.Skipf("no PostgreSQL server binaries in %s", pgBin)
	}
	dir, err := os.MkdirTemp("", "kairos-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &privatePostgres{dir: dir, data: filepath.Join(dir, "data"), sock: filepath.Join(dir, "sock"), port: 50000 + os.Getpid()%10000}
	if err := os.Mkdir(p.sock, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "postgres", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_ = p.ctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if out, err := exec.Command("runuser", "-u", "postgres", "--", filepath.Join(pgBin, "initdb"),
		"-D", p.data, "-A", "trust", "-U", "kairos", "--no-sync").CombinedOutput(); err != nil {
		t.Skipf("initdb: %v\n%s", err, out)
	}
	if err := p.ctl("start", "-w", "-o", fmt.Sprintf("-k %s -p %d -c listen_addresses= -c fsync=off", p.sock, p.port)); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	return p
}

func (p *privatePostgres) ctl(args ...string) error {
	a := append([]string{"-u", "postgres", "--", filepath.Join(pgBin, "pg_ctl"), "-D", p.data, "-l", filepath.Join(p.dir, "postgres.log")}, args...)
	if out, err := exec.Command("runuser", a...).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %v: %w\n%s", args, err, out)
	}
	return nil
}

func (p *privatePostgres) url() string {
	return fmt.Sprintf("postgres://kairos@/postgres?host=%s&port=%d", p.sock, p.port)
}

// TestFederationSurvivesPostgresRestart stops the aggregator's PostgreSQL
// server abruptly (pg_ctl stop -m immediate, a crash for the database) in the
// middle of the federation and starts it again: the aggregator and the
// clients ride it out, and every merchant finishes its budget with nothing
// lost or debited twice.
func TestFederationSurvivesPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	pg := newPrivatePostgres(t)
	const rounds = 5
	f := newFed(t, fedOptions{merchants: 3, rounds: rounds, store: "postgres", dbURL: pg.url()})
	for _, m := range f.merchants {
		f.run(m, nil)
	}
	f.waitPublished(2, 60*time.Second)
	if err := pg.ctl("stop", "-m", "immediate"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := pg.ctl("start", "-w", "-o", fmt.Sprintf("-k %s -p %d -c listen_addresses= -c fsync=off", pg.sock, pg.port)); err != nil {
		t.Fatal(err)
	}
	for _, m := range f.merchants {
		if err := m.proc.wait(t, 90*time.Second); err != nil {
			t.Fatalf("client %s: %v\n%s", m.id, err, tail(m.proc.Log, 20))
		}
	}
	select {
	case <-f.agg.Done():
		t.Fatalf("the aggregator died with its database: %v\n%s", f.agg.Err(), tail(f.agg.Log, 20))
	default:
	}
	f.waitPublished(rounds, 30*time.Second)
	if b, _ := os.ReadFile(f.agg.Log); !strings.Contains(string(b), `"level":"ERROR"`) {
		t.Error("the aggregator logged no error: the database outage went unnoticed, so it did not test anything")
	}
	f.checkLedgers()
	contrib := f.contributions()
	for _, m := range f.merchants {
		if st := f.state(m); st.Accepted() != rounds || contrib[m.id] != rounds {
			t.Errorf("%s: %d accepted, %d contributions; want %d each", m.id, st.Accepted(), contrib[m.id], rounds)
		}
	}
	if got := f.published(); got != rounds {
		t.Errorf("published versions: got %d, want %d", got, rounds)
	}
	f.verifyAudit()
}
