package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestFlagValueCompletion: the shell completion protocol (cobra's hidden
// __complete command, what the generated scripts call) offers the values of
// --role, --log-level and --dataset.
func TestFlagValueCompletion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "gen", "--role", ""}, "aggregator\nmerchant\n:4\n"},
		{[]string{"token", "issue", "--role", ""}, "merchant\nadmin\npartner\ncompliance\n:4\n"},
		{[]string{"aggregator", "serve", "--log-level", ""}, "debug\ninfo\nwarn\nerror\n:4\n"},
	} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(append([]string{"__complete"}, c.args...))
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); got != c.want {
			t.Errorf("complete %q: got %q, want %q", c.args, got, c.want)
		}
	}
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"__complete", "eval", "--dataset", ""})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cdnow\n", "csv\n", "online-retail\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("eval --dataset completion %q lacks %q", out.String(), want)
		}
	}
}
