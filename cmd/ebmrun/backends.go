package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/runtime"

	// The backends register themselves with package runtime when imported.
	_ "github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/runtime/ort"
)

// addBackendFlags adds the flags every command shares for choosing where
// onnxruntime's library is; they take effect before any backend is asked for.
func addBackendFlags(root *cobra.Command) {
	var lib string
	root.PersistentFlags().StringVar(&lib, "ort-lib", "", "onnxruntime shared library to load (default: $ONNXRUNTIME_LIB, then the cache of scripts/install-onnxruntime.sh)")
	root.PersistentPreRun = func(c *cobra.Command, _ []string) {
		ort.SetLogger(slog.New(newLineHandler(c.ErrOrStderr(), slog.LevelInfo)))
		if lib != "" {
			ort.SetLibPath(lib)
		}
	}
}

// getBackend is runtime.Get that says on stderr, in one line, which backend
// "auto" picked and why.
func getBackend(c *cobra.Command, name string) (runtime.Backend, error) {
	if name != "" && name != "auto" {
		return runtime.Get(name)
	}
	b, why, err := runtime.Auto()
	if err == nil {
		fmt.Fprintf(c.ErrOrStderr(), "ebmrun: backend auto: %s\n", why)
	}
	return b, err
}
