package livestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/crypto/keys"
)

// TestSQLiteDirWritableByOthersRefused (round 6's found-not-fixed): the live
// store of kairos client stream was opened in any directory. In one group or
// others may write (0775, 0777, a sticky 1777 such as /tmp) they could
// rename a database of their own over it (or plant one before the first
// start), and the stream would score and answer from states they wrote; a
// database file they may write they could edit in place. Both are refused
// now with keys.ErrInsecureMode naming the path, as the client's state
// directory (row 5) and key directory (row 7) are; 0755 and 0750 directories
// and a 0640 file are used.
func TestSQLiteDirWritableByOthersRefused(t *testing.T) {
	for _, tt := range []struct {
		name     string
		dirMode  os.FileMode
		fileMode os.FileMode // 0: no file before the open
		refuse   string      // "dir", "file" or ""
	}{
		{"dir 0700", 0o700, 0, ""},
		{"dir 0750", 0o750, 0, ""},
		{"dir 0755", 0o755, 0, ""},
		{"dir 0775", 0o775, 0, "dir"},
		{"dir 0777", 0o777, 0, "dir"},
		{"dir 0757", 0o757, 0, "dir"},
		{"dir 1777", 0o777 | os.ModeSticky, 0, "dir"},
		{"file 0640", 0o700, 0o640, ""},
		{"file 0660", 0o700, 0o660, "file"},
		{"file 0602", 0o700, 0o602, "file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "live.db")
			if tt.fileMode != 0 {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.fileMode); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
			s, err := OpenSQLite(t.Context(), path)
			if err == nil {
				s.Close()
			}
			want := map[string]string{"dir": dir, "file": path}[tt.refuse]
			switch {
			case tt.refuse == "" && err != nil:
				t.Errorf("got %v, want the store opened", err)
			case tt.refuse != "" && (!errors.Is(err, keys.ErrInsecureMode) || !strings.Contains(err.Error(), want+" has mode")):
				t.Errorf("got %v, want keys.ErrInsecureMode naming %s", err, want)
			case tt.refuse == "dir" && err != nil:
				if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
					t.Errorf("refused, but %s was created (%v)", path, serr)
				}
			}
		})
	}
}
