package server

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// TestOpenRefusesWritableAggregatorDir (round 6's found-not-fixed): init
// makes the aggregator's directory 0700 (round 6, row 2), but serve did not
// look again: a directory opened up later to group or others (0775, 0777, a
// sticky 1777) let them rename their own policy, config (the database URL)
// or admin token over the aggregator's, and a config, policy or token file
// they may write they could edit in place. Open now refuses each with
// keys.ErrInsecureMode naming the path; 0755 and 0750 directories and 0644
// files are still served, as the key directory's rule (row 7) allows.
func TestOpenRefusesWritableAggregatorDir(t *testing.T) {
	k, _ := parts(t)
	for _, tt := range []struct {
		name   string
		file   string // "" for the directory itself
		mode   os.FileMode
		refuse bool
	}{
		{"dir 0700", "", 0o700, false},
		{"dir 0750", "", 0o750, false},
		{"dir 0755", "", 0o755, false},
		{"dir 0775", "", 0o775, true},
		{"dir 0777", "", 0o777, true},
		{"dir 0757", "", 0o757, true},
		{"dir 1777", "", 0o777 | os.ModeSticky, true},
		{"config 0644", config.File, 0o644, false},
		{"config 0660", config.File, 0o660, true},
		{"config 0606", config.File, 0o606, true},
		{"policy 0644", config.PolicyFile, 0o644, false},
		{"policy 0664", config.PolicyFile, 0o664, true},
		{"token 0640", config.TokenFile, 0o640, false},
		{"token 0602", config.TokenFile, 0o602, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := keys.WriteAggregator(filepath.Join(dir, config.KeysDir), k, nil); err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{
				config.PolicyFile: []byte(testPolicy),
				config.File:       mustMarshal(t, config.Default("127.0.0.1:0", "sqlite:kairos.db")),
				config.TokenFile:  []byte("not a real token\n"),
			}
			for name, data := range files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := config.Load(filepath.Join(dir, config.File))
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, tt.file)
			if err := os.Chmod(target, tt.mode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
			a, st, err := Open(t.Context(), slog.New(slog.DiscardHandler), cfg, OpenOptions{DB: cfg.DBURL(""), Migrate: true})
			if err == nil {
				_ = a.Close()
				st.Close()
			}
			switch {
			case !tt.refuse && err != nil:
				t.Errorf("got %v, want served", err)
			case tt.refuse && (!errors.Is(err, keys.ErrInsecureMode) || !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), "writable by group or others")):
				t.Errorf("got %v, want keys.ErrInsecureMode naming %s as writable by group or others", err, target)
			}
		})
	}
}
