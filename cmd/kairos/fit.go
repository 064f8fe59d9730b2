package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the owner of this command.
func newFitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "fit",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("fit: not built yet") },
	}
}
