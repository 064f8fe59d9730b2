package client

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/pseudonym"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

// TestStateDirWritableByOthersRefused (round 6): the state directory holds
// state.json, the merchant's local privacy ledger and its sealed pending
// update. OpenState kept a directory that group or others may write as it
// was (MkdirAll leaves an existing one alone), so any local user could
// rename a state.json with an empty ledger over the merchant's, and the
// client would spend its ε cap again. Such a directory is refused, naming it
// and its mode; one only they can read (0750, 0755) is still used, as the
// file in it is 0600.
func TestStateDirWritableByOthersRefused(t *testing.T) {
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o700, true}, {0o750, true}, {0o755, true},
		{0o770, false}, {0o777, false}, {0o757, false}, {0o1777, false},
	} {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, tt.mode); err != nil {
			t.Fatal(err)
		}
		store, _, err := OpenState(dir, "shop-1")
		if tt.ok {
			if err != nil {
				t.Errorf("state directory %v: %v, want it used", tt.mode, err)
				continue
			}
			store.Close()
			continue
		}
		if store != nil {
			store.Close()
		}
		if !errors.Is(err, ErrInsecureStateDir) || !strings.Contains(err.Error(), dir) {
			t.Errorf("state directory %v: got %v, want ErrInsecureStateDir naming %s", tt.mode, err, dir)
		}
	}
}

// TestPostgresURLFileMode (round 6): the PostgreSQL source's url_file (a
// connection string, often with the password) was read whatever its mode,
// while the passphrase file and the aggregator's $KAIROS_DB_FILE are refused
// when group or others can write them (round 5, row 16): a local user who
// could write it pointed the merchant's training at a database of their own.
// It is read with the same rule (keys.ReadSecretLine), before any connection.
func TestPostgresURLFileMode(t *testing.T) {
	dsn := pgtest.URL(t)
	db, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(t.Context(), `CREATE TABLE orders (shopper text, at timestamptz, what text, total numeric(10,2));
		INSERT INTO orders VALUES ('alice', '1998-01-02 10:00+00', 'purchase', 12.50)`)
	db.Close(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	key, err := pseudonym.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o640, true}, {0o644, true}, {0o660, false}, {0o666, false}, {0o602, false}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "db_url")
		if err := os.WriteFile(path, []byte(dsn+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		cfg, err := ParseConfig("pg.yaml", dir, []byte(`aggregator: http://127.0.0.1:1
keys_dir: k
token_file: t
epsilon_cap: 1
state_dir: s
data:
  format: postgres
  postgres:
    url_file: db_url
    query: SELECT shopper, at, what, total FROM orders
`))
		if err != nil {
			t.Fatal(err)
		}
		ds, err := LoadEvents(t.Context(), cfg, SourceOptions{Pseudonym: key})
		if tt.ok {
			if err != nil || len(ds.Events) != 1 {
				t.Errorf("url_file %v: %v (%d events), want the one event read", tt.mode, err, len(ds.Events))
			}
			continue
		}
		if !errors.Is(err, keys.ErrInsecureMode) || !strings.Contains(err.Error(), path) {
			t.Errorf("url_file %v: got %v, want keys.ErrInsecureMode naming %s", tt.mode, err, path)
		}
	}
}
