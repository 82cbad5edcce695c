package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/runtime"

	// The backends register themselves with package runtime when imported.
	"github.com/ebmrun/ebmrun/runtime/native"
	"github.com/ebmrun/ebmrun/runtime/ort"
)

// addBackendFlags adds the flags every command shares: where onnxruntime's
// library is, the memory budget and the deadline of one model call. They
// take effect before any backend is asked for or any file is read.
func addBackendFlags(root *cobra.Command) {
	var lib, maxMem string
	var timeout time.Duration
	pf := root.PersistentFlags()
	pf.StringVar(&lib, "ort-lib", "", "onnxruntime shared library to load (default: $ONNXRUNTIME_LIB, then the cache of scripts/install-onnxruntime.sh)")
	pf.StringVar(&maxMem, "max-memory", "", "memory budget for data, tensors and sampler buffers, such as 8G or 512M (default: half of physical memory, "+membudget.Human(membudget.Default())+" here)")
	pf.DurationVar(&timeout, "timeout", 0, "deadline of one model call, such as 10m: onnxruntime stops through its terminate flag, native between nodes (default: none)")
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		ort.SetLogger(slog.New(newLineHandler(c.ErrOrStderr(), slog.LevelInfo)))
		if lib != "" {
			ort.SetLibPath(lib)
		}
		membudget.Set(0)
		if maxMem != "" {
			b, err := membudget.Parse(maxMem)
			if err != nil {
				return usagef("--max-memory: %v", trimPrefix(err, "membudget: "))
			}
			membudget.Set(b)
		}
		if timeout < 0 {
			return usagef("--timeout %v: want a positive duration", timeout)
		}
		ort.SetCallTimeout(timeout)
		native.SetCallTimeout(timeout)
		return nil
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
