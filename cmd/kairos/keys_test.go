package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/crypto/keys"
)

// runKeys runs `kairos keys args...` and returns its standard output.
func runKeys(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newKeysCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestKeysCommand(t *testing.T) {
	tmp := t.TempDir()
	agg, shop := filepath.Join(tmp, "agg"), filepath.Join(tmp, "shop")
	pw := filepath.Join(tmp, "pw")
	if err := os.WriteFile(pw, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := runKeys(t, "gen", "--role", "aggregator", "--out", agg, "--classic")
	if err != nil {
		t.Fatal(err)
	}
	var gen publicView
	if err := json.Unmarshal([]byte(out), &gen); err != nil {
		t.Fatalf("gen output is not JSON: %v\n%s", err, out)
	}
	if gen.Role != "aggregator" || gen.Aggregator == nil || !strings.HasPrefix(gen.Aggregator.Recipient, "age1") ||
		strings.HasPrefix(gen.Aggregator.Recipient, "age1pq1") {
		t.Errorf("gen printed %+v, want a classic aggregator", gen)
	}
	a, err := keys.LoadAggregator(agg, nil)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := runKeys(t, "gen", "--role", "merchant", "--id", "shop-1", "--out", shop,
		"--passphrase-file", pw, "--scrypt-work-factor", "10"); err != nil {
		t.Fatal(err)
	}
	m, err := keys.LoadMerchant(shop, []byte("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.LoadMerchant(shop, []byte("hunter3")); !errors.Is(err, keys.ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: got %v, want ErrWrongPassphrase", err)
	}

	out, err = runKeys(t, "public", shop)
	if err != nil {
		t.Fatal(err)
	}
	var pub publicView
	if err := json.Unmarshal([]byte(out), &pub); err != nil {
		t.Fatal(err)
	}
	if pub.Merchant == nil || pub.Merchant.ID != "shop-1" || !pub.Merchant.Signing.Equal(m.Signing.Public()) {
		t.Errorf("public merchant = %+v, want shop-1 and its signing key", pub.Merchant)
	}

	if _, err := runKeys(t, "rotate-jwt", agg); err != nil {
		t.Fatal(err)
	}
	out, _ = runKeys(t, "public", agg)
	pub = publicView{}
	if err := json.Unmarshal([]byte(out), &pub); err != nil {
		t.Fatal(err)
	}
	if pub.Aggregator == nil || len(pub.Aggregator.JWT) != 2 || pub.Aggregator.ActiveJWT == a.ActiveJWT {
		t.Fatalf("after rotate: %+v, want 2 keys and a new active one", pub.Aggregator)
	}
	if _, err := runKeys(t, "remove-jwt", agg, a.ActiveJWT); err != nil {
		t.Fatal(err)
	}
	if after, _ := keys.LoadAggregator(agg, nil); len(after.JWT) != 1 || after.ActiveJWT == a.ActiveJWT {
		t.Errorf("after remove: %d keys, active %s", len(after.JWT), after.ActiveJWT)
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"overwrite", []string{"gen", "--role", "aggregator", "--out", agg}, "not empty"},
		{"no id", []string{"gen", "--role", "merchant", "--out", filepath.Join(tmp, "x")}, "--id is required"},
		{"bad role", []string{"gen", "--role", "partner", "--out", filepath.Join(tmp, "y")}, "want aggregator or merchant"},
		{"not a key dir", []string{"public", tmp}, "not a key directory"},
		{"rotate on a merchant directory", []string{"rotate-jwt", shop}, "no such file"},
	}
	for _, tt := range bad {
		if _, err := runKeys(t, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}
