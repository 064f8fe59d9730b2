package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// TestAdminTokenFileMode: the aggregator's admin commands read the admin
// token (config admin_token, or --token-file) whatever its mode; `aggregator
// init` writes it 0600, but a copy made by hand (cp, an editor, a
// configuration tool) under umask 022 is 0644, and every local user then
// held the federation's admin credential. Such a file is now refused as a
// private key file is (keys.ErrInsecureMode); 0600 and 0400 are read.
func TestAdminTokenFileMode(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default("127.0.0.1:8700", "sqlite:kairos.db")
	data, err := config.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, config.File), data, 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, config.TokenFile)
	if err := os.WriteFile(tok, []byte("eyJ.admin.token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &aggClientFlags{aggFlags: aggFlags{dir: dir}}
	for _, tt := range []struct {
		mode   os.FileMode
		refuse bool
	}{{0o600, false}, {0o400, false}, {0o644, true}, {0o640, true}, {0o606, true}} {
		if err := os.Chmod(tok, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := f.client()
		if got := errors.Is(err, keys.ErrInsecureMode); got != tt.refuse || (!tt.refuse && err != nil) {
			t.Errorf("admin token of mode %#o: %v; want refused %v", tt.mode, err, tt.refuse)
		}
	}
}
