package native

import (
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type countTask struct{ hits []atomic.Int64 }

func (c *countTask) runRange(lo, hi int) {
	for i := lo; i < hi; i++ {
		c.hits[i].Add(1)
	}
}

type panicTask struct{}

func (panicTask) runRange(lo, hi int) {
	if lo > 0 {
		panic("share from " + string(rune('0'+lo)))
	}
}

// TestPoolRunsEveryShareOnce: many small parallel calls in a row (the
// pattern of a forward pass, where workers are spinning or parked in
// between) cover every index exactly once; a worker's panic reaches the
// caller; close stops the workers.
func TestPoolRunsEveryShareOnce(t *testing.T) {
	before := goruntime.NumGoroutine()
	p := newPool(3)
	c := &countTask{hits: make([]atomic.Int64, 10)}
	for round := 1; round <= 2000; round++ {
		p.parallel(10, 1, c)
		if round%500 == 0 {
			time.Sleep(2 * spinFor) // let the workers park, then wake them
		}
	}
	for i := range c.hits {
		if got := c.hits[i].Load(); got != 2000 {
			t.Fatalf("index %d ran %d times in 2000 calls", i, got)
		}
	}
	func() {
		defer func() {
			r := recover()
			if r == nil || !strings.Contains(r.(string), "share from") {
				t.Errorf("a worker's panic reached the caller as %v", r)
			}
		}()
		p.parallel(3, 1, panicTask{})
	}()
	p.parallel(10, 1, c) // the panic was reported once; the pool still works
	if got := c.hits[9].Load(); got != 2001 {
		t.Errorf("after a panic: index 9 ran %d times, want 2001", got)
	}
	p.close()
	p.parallel(10, 1, c) // after close: on the caller alone, not waiting for workers that are gone
	if got := c.hits[0].Load(); got != 2002 {
		t.Errorf("after close: index 0 ran %d times, want 2002", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for goruntime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := goruntime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after close, %d before the pool", n, before)
	}
	if n := spinners.Load(); n != 0 {
		t.Errorf("%d workers still counted as spinning after close", n)
	}
}

// TestPoolSpinnersBounded: two pools side by side (sessions of parallel
// sample workers) never have more spinning workers than GOMAXPROCS−1.
func TestPoolSpinnersBounded(t *testing.T) {
	a, b := newPool(2), newPool(2)
	defer a.close()
	defer b.close()
	ca := &countTask{hits: make([]atomic.Int64, 4)}
	cb := &countTask{hits: make([]atomic.Int64, 4)}
	done := make(chan bool)
	go func() {
		for i := 0; i < 3000; i++ {
			b.parallel(4, 1, cb)
		}
		done <- true
	}()
	most := int32(0)
	for i := 0; i < 3000; i++ {
		a.parallel(4, 1, ca)
		if n := spinners.Load(); n > most {
			most = n
		}
	}
	<-done
	if limit := int32(goruntime.GOMAXPROCS(0) - 1); most > limit {
		t.Errorf("%d workers spun at once, the limit is %d", most, limit)
	}
	if ca.hits[3].Load() != 3000 || cb.hits[3].Load() != 3000 {
		t.Errorf("shares ran %d and %d times, want 3000", ca.hits[3].Load(), cb.hits[3].Load())
	}
}
