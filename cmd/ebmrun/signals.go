package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/ebmrun/ebmrun/tensorio"
)

// signalGrace is how long a command may take to stop after SIGINT or
// SIGTERM before it is ended from outside: a backend call (onnxruntime)
// cannot be interrupted, and the user asked to stop.
var signalGrace = 3 * time.Second

// onSignals returns a context that SIGINT and SIGTERM cancel, and finish,
// which stops listening and turns the command's error into the report of
// the signal when one came: one line, exit status 128 + the signal's
// number (130, 143). finish may be called more than once. If the command has not returned within signalGrace of
// the signal, or a second signal comes, the process exits from here after
// removing any temporary output files.
func onSignals(parent context.Context, stderr io.Writer, what string) (context.Context, func(error) error) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	var (
		mu  sync.Mutex
		got os.Signal
	)
	stopped := make(chan struct{})
	report := func(s os.Signal) error {
		return exitError{code: 128 + int(s.(syscall.Signal)), err: fmt.Errorf("interrupted by %s; %s", signalName(s), what)}
	}
	go func() {
		select {
		case s := <-ch:
			mu.Lock()
			got = s
			mu.Unlock()
			cancel()
			select {
			case <-stopped:
				return
			case <-ch:
			case <-time.After(signalGrace):
			}
			tensorio.RemovePending()
			fmt.Fprintf(stderr, "ebmrun: %s\n", report(s))
			os.Exit(128 + int(s.(syscall.Signal)))
		case <-stopped:
		}
	}()
	var once sync.Once
	return ctx, func(err error) error {
		once.Do(func() {
			signal.Stop(ch)
			close(stopped)
			cancel()
		})
		mu.Lock()
		defer mu.Unlock()
		if got != nil {
			return report(got)
		}
		return err
	}
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}
