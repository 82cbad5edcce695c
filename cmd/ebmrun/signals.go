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

// onStepSignals is for commands that stop between steps, as train does: the
// first SIGINT or SIGTERM cancels the returned context and says so (the step
// in progress finishes, then its checkpoint is written, however long that
// takes); a second one ends the process at once, from here, after removing
// temporary output files, with one line ending in lost and exit status 128 +
// the signal's number. Without that second way out a step that never ends —
// a CD step of 10¹² Langevin steps — could not be stopped. received reports
// the first signal (nil if none came); release stops listening.
func onStepSignals(parent context.Context, stderr io.Writer, first, lost string) (ctx context.Context, received func() os.Signal, release func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	var (
		mu  sync.Mutex
		got os.Signal
	)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			mu.Lock()
			got = s
			mu.Unlock()
			cancel()
			fmt.Fprintf(stderr, "\nebmrun: %s: %s (again to stop at once)\n", signalName(s), first)
		case <-done:
			return
		}
		select {
		case s := <-ch:
			tensorio.RemovePending()
			fmt.Fprintf(stderr, "ebmrun: interrupted again by %s; %s\n", signalName(s), lost)
			os.Exit(128 + int(s.(syscall.Signal)))
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() os.Signal {
			mu.Lock()
			defer mu.Unlock()
			return got
		}, func() {
			once.Do(func() {
				signal.Stop(ch)
				close(done)
				cancel()
			})
		}
}

// signalStatus is the shell's exit status for a run that s ended, and 130
// (SIGINT's) when s is nil: the context ended for another reason.
func signalStatus(s os.Signal) int {
	if sig, ok := s.(syscall.Signal); ok {
		return 128 + int(sig)
	}
	return 130
}
