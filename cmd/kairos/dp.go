package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the owner of this command.
func newDPCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dp",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("dp: not built yet") },
	}
}
