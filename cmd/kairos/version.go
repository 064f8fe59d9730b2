package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/internal/buildinfo"
)

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the module version, commit, build date, Go version and feature schema hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := buildinfo.Read()
			if err != nil {
				return fmt.Errorf("version: %w", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), in)
			}
			return in.Write(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
