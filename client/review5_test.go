package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/crypto/keys"
)

// TestTokenFileMode: the merchant token (a bearer credential valid for up to
// 90 days) was read whatever its file's mode, while the key files beside it
// are refused when group or others can read them. A token file that group or
// others can access is now refused as a key file is (keys.ErrInsecureMode,
// naming the file and the mode, saying what to do), as are a file that is
// not regular and one far larger than a token.
func TestTokenFileMode(t *testing.T) {
	dir := t.TempDir()
	c := &Config{TokenFile: "token", dir: dir}
	path := filepath.Join(dir, "token")
	write := func(data string, mode os.FileMode) {
		t.Helper()
		_ = os.Remove(path)
		if err := os.WriteFile(path, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		write("eyJ.tok.en\n", mode)
		if tok, err := c.Token(); err != nil || tok != "eyJ.tok.en" {
			t.Errorf("mode %#o: got %q, %v; want the token", mode, tok, err)
		}
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		write("eyJ.tok.en\n", mode)
		tok, err := c.Token()
		if !errors.Is(err, keys.ErrInsecureMode) || !strings.Contains(err.Error(), path) {
			t.Errorf("mode %#o: got %q, %v; want an error wrapping keys.ErrInsecureMode naming %s", mode, tok, err, path)
		}
	}
	write(strings.Repeat("x", 1<<20), 0o600)
	if _, err := c.Token(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("1 MiB token file: %v, want refused as too large", err)
	}
	_ = os.Remove(path)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(); err == nil {
		t.Error("a directory as token file: no error")
	}
}
