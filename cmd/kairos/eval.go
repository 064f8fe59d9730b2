package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the owner of this command.
func newEvalCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "eval",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("eval: not built yet") },
	}
}
