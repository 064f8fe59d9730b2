package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
