package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/crypto/keys"
)

// The rest of kairos keys is tested by testdata/script/keys.txtar; what a
// script cannot observe is whether the passphrase really seals the merchant's
// private files, so that is read back here with the key library.
func TestKeysGenMerchantPassphrase(t *testing.T) {
	tmp := t.TempDir()
	shop, pw := filepath.Join(tmp, "shop"), filepath.Join(tmp, "pw")
	if err := os.WriteFile(pw, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := newKeysCmd()
	cmd.SetOut(io.Discard)
	cmd.SetArgs([]string{"gen", "--role", "merchant", "--id", "shop-1", "--out", shop, "--passphrase-file", pw, "--scrypt-work-factor", "10"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	m, err := keys.LoadMerchant(shop, []byte("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "shop-1" {
		t.Errorf("merchant id: got %q, want shop-1", m.ID)
	}
	if _, err := keys.LoadMerchant(shop, []byte("hunter3")); !errors.Is(err, keys.ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: got %v, want ErrWrongPassphrase", err)
	}
}

// TestPassphraseFileModeFlags: --passphrase-file (and
// $KAIROS_PASSPHRASE_FILE) was read whatever its mode. A file group or
// others can write is now refused before any key is written (whoever else
// could write it chooses the passphrase of the new key files); one they can
// only read, as compose mounts file secrets, is used with a warning on
// stderr naming the file and its mode.
func TestPassphraseFileModeFlags(t *testing.T) {
	for _, tc := range []struct {
		mode    os.FileMode
		refused bool
		warn    string
	}{
		{0o600, false, ""},
		{0o644, false, "mode 0644: group or others can read it"},
		{0o640, false, "mode 0640: group or others can read it"},
		{0o664, true, ""},
		{0o606, true, ""},
	} {
		tmp := t.TempDir()
		shop, pw := filepath.Join(tmp, "shop"), filepath.Join(tmp, "pw")
		if err := os.WriteFile(pw, []byte("hunter2\n"), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(pw, tc.mode); err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd := newKeysCmd()
		cmd.SetOut(io.Discard)
		cmd.SetErr(&stderr)
		cmd.SetArgs([]string{"gen", "--role", "merchant", "--id", "shop-1", "--out", shop, "--passphrase-file", pw, "--scrypt-work-factor", "10"})
		err := cmd.Execute()
		if tc.refused {
			if !errors.Is(err, keys.ErrInsecureMode) || !strings.Contains(err.Error(), pw) {
				t.Errorf("mode %#o: got %v, want refused with keys.ErrInsecureMode naming %s", tc.mode, err, pw)
			}
			if _, serr := os.Stat(shop); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("mode %#o: key directory written (%v), want none", tc.mode, serr)
			}
			continue
		}
		if err != nil {
			t.Errorf("mode %#o: %v", tc.mode, err)
			continue
		}
		if _, err := keys.LoadMerchant(shop, []byte("hunter2")); err != nil {
			t.Errorf("mode %#o: %v", tc.mode, err)
		}
		got := stderr.String()
		warned := strings.Contains(got, tc.warn) && strings.Contains(got, pw)
		if tc.warn == "" && strings.Contains(got, "warning") || tc.warn != "" && !warned {
			t.Errorf("mode %#o: stderr %q, want a warning %q naming the file", tc.mode, got, tc.warn)
		}
	}
}
