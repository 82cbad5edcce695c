//go:build cgo

package ort

import (
	"fmt"
	"sync/atomic"
	"time"

	ortgo "github.com/yalue/onnxruntime_go"
)

// runWithDeadline runs the session with run options whose terminate flag a
// timer sets at the deadline.
func (s *session) runWithDeadline(d time.Duration) error {
	if s.runOpts == nil {
		ro, err := ortgo.NewRunOptions()
		if err != nil {
			return fmt.Errorf("run options: %w", err)
		}
		s.runOpts = ro
	}
	var fired atomic.Bool
	t := time.AfterFunc(d, func() {
		fired.Store(true)
		s.runOpts.Terminate()
	})
	err := s.p.sess.RunWithOptions(s.inVals, s.outVals, s.runOpts)
	stopped := t.Stop()
	if !stopped {
		// The timer ran (or is running): clear the flag for the next call.
		for !fired.Load() {
			time.Sleep(time.Millisecond)
		}
		s.runOpts.UnsetTerminate()
		if err != nil {
			return fmt.Errorf("%w (%v): %v", ErrTimeout, d, err)
		}
	}
	return err
}
