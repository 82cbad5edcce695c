package native

import (
	"errors"
	"sync/atomic"
	"time"
)

// ErrTimeout is wrapped by the error of a Run that passed the call deadline
// (SetCallTimeout).
var ErrTimeout = errors.New("native: model call ran past its deadline")

var callTimeout atomic.Int64 // nanoseconds; 0: no deadline

// SetCallTimeout bounds every later Session.Run: the clock is read between
// nodes, and past d the run stops with an error wrapping ErrTimeout (one
// node's kernel is not interrupted, and a node's size is bounded by the
// memory budget). d ≤ 0 removes the deadline. The sessions stay usable.
func SetCallTimeout(d time.Duration) { callTimeout.Store(int64(max(d, 0))) }
