package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the owner of this command.
func newPseudonymCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pseudonym",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("pseudonym: not built yet") },
	}
}
