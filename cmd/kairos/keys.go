package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the owner of this command.
func newKeysCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keys",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("keys: not built yet") },
	}
}
