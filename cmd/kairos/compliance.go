package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// STUB: replaced by the owner of this command.
func newComplianceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compliance",
		Short: "(not built yet)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("compliance: not built yet") },
	}
}
