package main

import (
	"slices"

	"github.com/spf13/cobra"
)

// flagValues are the fixed values of flags that take one of a few words,
// offered by shell completion (kairos completion bash|zsh|fish|powershell).
var flagValues = map[string][]string{
	"role":      {"aggregator", "merchant", "admin", "partner", "compliance"},
	"log-level": {"debug", "info", "warn", "error"},
}

// datasetValues are eval's --dataset names: the built-in data sets and csv.
func datasetValues() []string {
	out := []string{"csv"}
	for k := range evalDatasets {
		if k != "csv" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// registerFlagCompletions walks the command tree and registers the value
// completion of every flag named in flagValues (keys gen --role offers the
// key set roles, token issue --role the token roles).
func registerFlagCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.LocalFlags().Lookup("dataset") != nil {
			_ = c.RegisterFlagCompletionFunc("dataset", cobra.FixedCompletions(datasetValues(), cobra.ShellCompDirectiveNoFileComp))
		}
		for name, values := range flagValues {
			if c.LocalFlags().Lookup(name) == nil {
				continue
			}
			vs := values
			if name == "role" {
				if c.Parent() != nil && c.Parent().Name() == "keys" {
					vs = vs[:2]
				} else {
					vs = vs[1:]
				}
			}
			_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(vs, cobra.ShellCompDirectiveNoFileComp))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
