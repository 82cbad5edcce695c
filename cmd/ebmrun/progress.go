package main

import (
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: progress bars are drawn there
// and nowhere else, so pipes and files stay clean.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newBar makes the progress bar every command draws: description, ETA,
// rate, cleared when done.
func newBar(w io.Writer, total int64, what string, opts ...progressbar.Option) *progressbar.ProgressBar {
	base := []progressbar.Option{progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
		progressbar.OptionSetPredictTime(true), progressbar.OptionShowIts(),
		progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionClearOnFinish()}
	return progressbar.NewOptions64(total, append(base, opts...)...)
}

// showProgress draws a bar of done out of total units (counted by workers
// in done) while long work runs, only when w is a terminal. The returned
// func stops it.
func showProgress(w io.Writer, done *atomic.Int64, total int64, what, unit string) func() {
	if !isTerminal(w) {
		return func() {}
	}
	bar := newBar(w, total, what, progressbar.OptionSetItsString(unit))
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				bar.Finish()
				return
			case <-t.C:
				bar.Set64(min(done.Load(), total))
			}
		}
	}()
	return func() { close(stop); <-finished }
}
