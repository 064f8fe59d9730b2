package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/crypto/keys"
)

// TestPassphraseFileMode: the key files' passphrase file was read whatever
// its mode. Compose's file secrets keep the host file's mode (often 0644),
// so a file group or others can read is still accepted (the command warns);
// one they can write is refused (keys.ErrInsecureMode, naming the file):
// whoever else could write it could substitute a passphrase of their own.
func TestPassphraseFileMode(t *testing.T) {
	dir := t.TempDir()
	c := &Config{PassphraseFile: "pw", dir: dir}
	path := filepath.Join(dir, "pw")
	write := func(mode os.FileMode) {
		t.Helper()
		_ = os.Remove(path)
		if err := os.WriteFile(path, []byte("hunter2\nnot this line\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400, 0o640, 0o644, 0o604, 0o444} {
		write(mode)
		pass, got, err := c.Passphrase()
		if err != nil || string(pass) != "hunter2" || got.Perm() != mode {
			t.Errorf("mode %#o: got %q, mode %#o, %v; want hunter2 and the file's mode (for the warning)", mode, pass, got.Perm(), err)
		}
	}
	for _, mode := range []os.FileMode{0o660, 0o620, 0o602, 0o606, 0o666, 0o622} {
		write(mode)
		pass, _, err := c.Passphrase()
		if !errors.Is(err, keys.ErrInsecureMode) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "writable") {
			t.Errorf("mode %#o: got %q, %v; want an error wrapping keys.ErrInsecureMode naming %s as writable", mode, pass, err, path)
		}
	}
}
