package main

import (
	"fmt"
	goruntime "runtime"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/runtime/ort"
	"github.com/ebmrun/ebmrun/trainer"
)

func init() { commands = append(commands, newVersionCmd) }

// versionLine is what `ebmrun version` and `ebmrun --version` print: the
// build (module version or VCS revision), Go, and the onnxruntime this
// build expects.
func versionLine() string {
	return fmt.Sprintf("ebmrun %s (%s, %s/%s; onnxruntime %s expected)", trainer.Version(), goruntime.Version(), goruntime.GOOS, goruntime.GOARCH, ort.Version)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this build",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintln(c.OutOrStdout(), versionLine())
			return nil
		},
	}
}
