// Command ebmrun samples, trains, evaluates, validates, inspects and
// benchmarks score-based generative models stored as ONNX.
//
// Each subcommand lives in a file of its own and adds itself to commands
// from init, so main stays wiring only.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// commands are the constructors of the subcommands; files add to it in init.
var commands []func() *cobra.Command

// usageError marks an error in how the command was called (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef makes a usage error.
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries a specific exit status with an already-printed report
// (validate's mismatch table, say).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ebmrun",
		Short: "Sample, train, evaluate and validate score-based models stored as ONNX",
		Long: `ebmrun runs score networks s(x, σ) ≈ ∇x log p_σ(x) stored as ONNX files — trained
by ebmrun itself, by PyTorch or by anything else — on a pure-Go backend or on
onnxruntime, and samples from them with annealed Langevin dynamics and its
successors.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = versionLine()
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	addBackendFlags(root)
	for _, mk := range commands {
		root.AddCommand(mk())
	}
	return root
}

// run executes the command line and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(stderr, "ebmrun: %s\n", oneLine(ee.err.Error()))
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "ebmrun: %s\n", oneLine(err.Error()))
	if isCobraUsage(err) {
		return 2
	}
	return 1
}

// isCobraUsage recognises cobra's own argument errors ("unknown command",
// "accepts 1 arg(s)"), which it does not type. Only the start of the
// message counts: an error of a run that merely mentions "accepts" (a
// model's metadata, say) is a failure, not a usage error.
func isCobraUsage(err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand", "required flag", "invalid argument", "flag needs an argument"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
