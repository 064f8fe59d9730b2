package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
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
