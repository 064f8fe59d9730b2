package pseudonym

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// ErrInsecureKeyFile is returned by ReadKeyFile for a key file that group or
// others may read or write.
var ErrInsecureKeyFile = errors.New("key file is accessible by group or others")

const keyFileHeader = "# kairos pseudonym key"

// WriteKeyFile writes k to a new file at path with mode 0600. It refuses to
// replace an existing file (the error wraps fs.ErrExist): overwriting a
// pseudonym key silently orphans every pseudonym made with it.
//
// The file is two lines: a comment naming the key id, and the key in hex.
func WriteKeyFile(path string, k Key) (err error) {
	if k.isZero() {
		return fmt.Errorf("write key file %s: %w", path, ErrZeroKey)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err := fmt.Fprintf(f, "%s %s\n%s\n", keyFileHeader, k.ID(), hex.EncodeToString(k.b[:])); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// ReadKeyFile reads a key written by WriteKeyFile. On Unix it refuses a file
// that group or others can access (ErrInsecureKeyFile).
func ReadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("read key file: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return Key{}, fmt.Errorf("read key file %s: mode %04o: %w (run chmod 600 %s)", path, st.Mode().Perm(), ErrInsecureKeyFile, path)
	}
	k, err := parseKeyFile(io.LimitReader(f, 4096))
	if err != nil {
		return Key{}, fmt.Errorf("read key file %s: %w", path, err)
	}
	return k, nil
}

// parseKeyFile reads the hex key line, skipping blank and # comment lines.
func parseKeyFile(r io.Reader) (Key, error) {
	sc := bufio.NewScanner(r)
	var k Key
	found := false
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if found {
			return Key{}, fmt.Errorf("line %d: more than one key", n)
		}
		if len(line) != 2*KeySize {
			return Key{}, fmt.Errorf("line %d: key is %d hex digits, want %d", n, len(line), 2*KeySize)
		}
		if _, err := hex.Decode(k.b[:], line); err != nil {
			return Key{}, fmt.Errorf("line %d: %w", n, err)
		}
		found = true
	}
	if err := sc.Err(); err != nil {
		return Key{}, err
	}
	if !found {
		return Key{}, errors.New("no key in file")
	}
	if k.isZero() {
		return Key{}, ErrZeroKey
	}
	return k, nil
}
