package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the owner of this command.
func newTokenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("token: not built yet") },
	}
}
