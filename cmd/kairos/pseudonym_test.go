package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/crypto/pseudonym"
)

func runPseudonym(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newPseudonymCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestPseudonymCommand(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "shop.pkey")
	out, _, err := runPseudonym(t, "keygen", "--out", key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := pseudonym.ReadKeyFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != k.ID() {
		t.Errorf("keygen printed %q, want the key id %s", out, k.ID())
	}
	if _, _, err := runPseudonym(t, "keygen", "--out", key); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second keygen: got %v, want fs.ErrExist", err)
	}

	p, _ := pseudonym.New(k, 0)
	out, _, err = runPseudonym(t, "show", "--key", key, "00001")
	if err != nil {
		t.Fatal(err)
	}
	if want := "00001\t" + p.Pseudonym("00001") + "\n"; out != want {
		t.Errorf("show: got %q, want %q", out, want)
	}

	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte(" customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n 00002 19970112  1   12.00\n 00003 1997011x  1   1.00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "out.csv")
	_, _, err = runPseudonym(t, "apply", "--key", key, "--format", "cdnow", "--in", in, "--out", res)
	if err == nil || !strings.Contains(err.Error(), "line 4, column 2: unparseable time") {
		t.Errorf("apply without --skip-bad-rows: got %v, want the bad date at line 4, column 2", err)
	}
	os.Remove(res)
	_, summary, err := runPseudonym(t, "apply", "--key", key, "--format", "cdnow", "--in", in, "--out", res, "--skip-bad-rows")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(res)
	want := "customer,time,kind,amount,item,category\n" +
		p.Pseudonym("00001") + ",852076800,purchase,11.77,,\n" +
		p.Pseudonym("00002") + ",853027200,purchase,12,,\n"
	if string(got) != want {
		t.Errorf("apply wrote\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(string(got), "00001") || !strings.Contains(summary, "2 events") {
		t.Errorf("raw id in output or bad summary %q", summary)
	}
}

func TestPseudonymApplyMappingFlags(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if _, _, err := runPseudonym(t, "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	k, _ := pseudonym.ReadKeyFile(key)
	p, _ := pseudonym.New(k, 0)
	in := filepath.Join(dir, "orders.tsv")
	if err := os.WriteFile(in, []byte("when\tuser\ttotal\n2024-07-01 10:00:00\tann\t9.5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runPseudonym(t, "apply", "--key", key, "--format", "csv", "--header", "--delimiter", `\t`,
		"--customer-col", "user", "--time-col", "1", "--time-layout", "2006-01-02 15:04:05", "--time-zone", "Europe/Berlin",
		"--kind", "purchase", "--amount-col", "total", "--in", in)
	if err != nil {
		t.Fatal(err)
	}
	// 10:00 CEST (UTC+2) on 2024-07-01 is 08:00 UTC = 1719820800.
	want := "customer,time,kind,amount,item,category\n" + p.Pseudonym("ann") + ",1719820800,purchase,9.5,,\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	_, _, err = runPseudonym(t, "apply", "--key", key, "--format", "csv", "--customer-col", "2", "--time-col", "1", "--in", in)
	if err == nil || !strings.Contains(err.Error(), "exactly one of a kind column and a constant kind") {
		t.Errorf("got %v, want a mapping error about the kind", err)
	}
}
