package main

import (
	"github.com/spf13/cobra"

	// The backends register themselves with package runtime when imported.
	_ "github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/runtime/ort"
)

// addBackendFlags adds the flags every command shares for choosing where
// onnxruntime's library is; they take effect before any backend is asked for.
func addBackendFlags(root *cobra.Command) {
	var lib string
	root.PersistentFlags().StringVar(&lib, "ort-lib", "", "onnxruntime shared library to load (default: $ONNXRUNTIME_LIB, then the cache of scripts/install-onnxruntime.sh)")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if lib != "" {
			ort.SetLibPath(lib)
		}
	}
}
