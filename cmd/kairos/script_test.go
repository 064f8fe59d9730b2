package main

import (
	"bytes"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/rogpeppe/go-internal/testscript"
	_ "modernc.org/sqlite" // the "sqlite" driver for the tamper command
)

// TestMain lets the scripts run the kairos binary: the test binary, invoked as
// "kairos", runs main.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"kairos": main})
}

// TestScripts runs testdata/script/*.txtar: kairos keys, token, dp and
// compliance driven as a user drives them, each script in its own directory.
// The scripts check the outputs against what is known without kairos: the
// published DP vectors, the age library's own recipient for a generated
// identity, a token's Ed25519 signature checked with crypto/ed25519 against
// the published JWKS, and a tampered audit log.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			// The repository's policy examples, for scripts that start an aggregator.
			env.Setenv("KAIROS_TEST_POLICY", mustAbs(cdnowDemoPolicy))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfile":     cmdWaitFile,
			"envfile":      cmdEnvFile,
			"jsonnear":     cmdJSONNear,
			"jsonspan":     cmdJSONSpan,
			"agerecipient": cmdAgeRecipient,
			"jwsverify":    cmdJWSVerify,
			"sqlexec":      cmdSQLExec,
			"replace":      cmdReplace,
		},
	})
}

func mustAbs(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return abs
}

// waitfile FILE: wait (up to 30 s) until FILE exists and is not empty, as
// serve's --addr-file once it listens.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(ts.MkAbs(args[0])); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s: still empty after 30 s", args[0])
		}
	}
}

// envfile VAR FILE: set VAR to FILE's content without surrounding space.
func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile VAR FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}

// jsonnear FILE KEY WANT RELTOL: the number at KEY of the JSON object in FILE
// (stdout for the last command's) is within RELTOL of WANT, relatively.
func cmdJSONNear(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 {
		ts.Fatalf("usage: jsonnear FILE KEY WANT RELTOL")
	}
	var obj map[string]any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &obj))
	got, ok := obj[args[1]].(float64)
	if !ok {
		ts.Fatalf("%s: key %q is %v, not a number", args[0], args[1], obj[args[1]])
	}
	want, err := strconv.ParseFloat(args[2], 64)
	ts.Check(err)
	tol, err := strconv.ParseFloat(args[3], 64)
	ts.Check(err)
	near := math.Abs(got-want) <= tol*math.Abs(want)
	switch {
	case near && neg:
		ts.Fatalf("%s = %.12g is within %g of %g", args[1], got, tol, want)
	case !near && !neg:
		ts.Fatalf("%s = %.12g, want %.12g (relative tolerance %g)", args[1], got, want, tol)
	}
}

// jsonspan FILE FROM TO N: the numbers at keys FROM and TO of the JSON
// object in FILE differ by exactly N (TO − FROM).
func cmdJSONSpan(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: jsonspan FILE FROM TO N")
	}
	var obj map[string]any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &obj))
	from, ok1 := obj[args[1]].(float64)
	to, ok2 := obj[args[2]].(float64)
	n, err := strconv.ParseFloat(args[3], 64)
	ts.Check(err)
	if !ok1 || !ok2 {
		ts.Fatalf("%s: %s = %v and %s = %v, want numbers", args[0], args[1], obj[args[1]], args[2], obj[args[2]])
	}
	if to-from != n {
		ts.Fatalf("%s − %s = %v, want %v", args[2], args[1], to-from, n)
	}
}

// agerecipient IDENTITY: print the recipient of the X25519 identity in the
// file, as the age library derives it.
func cmdAgeRecipient(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: agerecipient IDENTITY")
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(ts.ReadFile(args[0])))
	ts.Check(err)
	fmt.Fprintln(ts.Stdout(), id.Recipient())
}

// jwsverify JWKS TOKEN: the compact JWS in the file TOKEN carries an Ed25519
// signature by the JWKS key its header names, checked with crypto/ed25519
// alone (RFC 7515 and RFC 8037, without kairos's verifier).
func cmdJWSVerify(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: jwsverify JWKS TOKEN")
	}
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid string }
	}
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &set))
	parts := strings.Split(strings.TrimSpace(ts.ReadFile(args[1])), ".")
	if len(parts) != 3 {
		ts.Fatalf("%s: %d parts, want 3", args[1], len(parts))
	}
	head, err := base64.RawURLEncoding.DecodeString(parts[0])
	ts.Check(err)
	var h struct{ Alg, Kid string }
	ts.Check(json.Unmarshal(head, &h))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	ts.Check(err)
	ok := false
	for _, k := range set.Keys {
		if k.Kid != h.Kid || k.Kty != "OKP" || k.Crv != "Ed25519" || h.Alg != "EdDSA" {
			continue
		}
		pub, err := base64.RawURLEncoding.DecodeString(k.X)
		ts.Check(err)
		ok = len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig)
	}
	switch {
	case ok && neg:
		ts.Fatalf("the token verifies with key %s", h.Kid)
	case !ok && !neg:
		ts.Fatalf("no Ed25519 key %q in %s verifies the token (alg %s)", h.Kid, args[0], h.Alg)
	}
}

// sqlexec DB STATEMENT...: run statements on an SQLite file directly, as an
// attacker with write access to it would.
func cmdSQLExec(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: sqlexec DB STATEMENT...")
	}
	db, err := sql.Open("sqlite", ts.MkAbs(args[0]))
	ts.Check(err)
	defer db.Close()
	for _, q := range args[1:] {
		if _, err := db.Exec(q); err != nil {
			ts.Fatalf("%s: %v", q, err)
		}
	}
}

// replace FILE OLD NEW: replace the first OLD in FILE by NEW; OLD must occur.
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: replace FILE OLD NEW")
	}
	s := ts.ReadFile(args[0])
	if !strings.Contains(s, args[1]) {
		ts.Fatalf("%s: no %q", args[0], args[1])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strings.Replace(s, args[1], args[2], 1)), 0o600))
}
