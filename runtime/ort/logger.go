package ort

import (
	"io"
	"log/slog"
	"sync/atomic"
)

var log atomic.Pointer[slog.Logger]

// SetLogger sets where the package reports what it works around (a library
// candidate that did not load, say); nil, the default, discards the reports.
// The package never writes to slog's process-wide default.
func SetLogger(l *slog.Logger) { log.Store(l) }

func logger() *slog.Logger {
	if l := log.Load(); l != nil {
		return l
	}
	return discard
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
