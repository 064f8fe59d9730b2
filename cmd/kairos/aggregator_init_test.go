package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/config"
)

// TestAggregatorInitConfigPrivate reproduces issue 10 item 5's world-readable
// password: `aggregator init --db postgres://user:password@…` wrote the
// password into kairos.yaml with mode 0644. The file is now 0600 (the
// directory was already 0700); serve --db keeps the password out of it.
func TestAggregatorInitConfigPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agg")
	const db = "postgres://kairos:s3cret-42@db.internal:5432/kairos?sslmode=verify-full"
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--db", db); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, config.File)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "s3cret-42") {
		t.Fatalf("%s does not hold the database URL given to init:\n%s", config.File, b)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got&0o077 != 0 {
		t.Errorf("%s holds the database password with mode %v, want no group or other access (0600)", config.File, got)
	}
}

// TestAggregatorInitClosesExistingDir (round 6): init into an existing empty
// directory that group and others may write (a shared /srv, a directory an
// installer made 0777) left it so: anyone could then rename their own
// policy.yaml, kairos.yaml or SQLite database over the aggregator's, or plant
// a symlink named token before init wrote it. The directory is closed to
// group and others, as the keys directory inside it already was.
func TestAggregatorInitClosesExistingDir(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o775, 0o755} {
		dir := filepath.Join(t.TempDir(), "agg")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := runAgg(t, "init", "--dir", dir, "--classic"); err != nil {
			t.Fatalf("init into an empty %v directory: %v", mode, err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o700 {
			t.Errorf("init into an empty %v directory: it is %v after, want 0700", mode, got)
		}
	}
}

// TestAddrFileDoesNotFollowSymlink (round 6): serve --addr-file wrote the
// URL with os.WriteFile, which follows a symlink: a link planted at the
// path (a shared /tmp, a run directory others can write) made serve truncate
// whatever file it pointed to that the aggregator may write, its own
// database or key files included. The URL now replaces the link.
func TestAddrFileDoesNotFollowSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "kairos.db")
	const keep = "the aggregator's database\n"
	if err := os.WriteFile(victim, []byte(keep), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "addr")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := writeAddr(link)("http://127.0.0.1:8700"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != keep {
		t.Errorf("the file the planted link named: got %q (%v), want it unchanged %q", b, err, keep)
	}
	fi, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("%s: mode %v, want a regular file in place of the link", link, fi.Mode())
	}
	if b, err := os.ReadFile(link); err != nil || string(b) != "http://127.0.0.1:8700\n" {
		t.Errorf("%s: got %q (%v), want the URL", link, b, err)
	}
}
