package native

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// ranger is a piece of work split over [0, n): each worker gets a sub-range.
// Kernels pass pointers to per-session task structs, so handing work to the
// pool allocates nothing.
type ranger interface {
	runRange(lo, hi int)
}

type job struct {
	t      ranger
	lo, hi int
}

// pool is a session's set of persistent worker goroutines. The goroutine that
// calls parallel does the first share itself.
type pool struct {
	workers int // goroutines besides the caller
	jobs    chan job
	wg      sync.WaitGroup
	panicV  atomic.Value // first panic seen in a worker, re-raised by the caller
	closed  atomic.Bool
}

func newPool(threads int) *pool {
	if threads <= 1 {
		return nil
	}
	p := &pool{workers: threads - 1, jobs: make(chan job, threads)}
	for i := 0; i < p.workers; i++ {
		go p.work()
	}
	return p
}

func (p *pool) work() {
	for j := range p.jobs {
		p.do(j)
	}
}

func (p *pool) do(j job) {
	defer func() {
		if r := recover(); r != nil {
			p.panicV.CompareAndSwap(nil, fmt.Sprint(r))
		}
		p.wg.Done()
	}()
	j.t.runRange(j.lo, j.hi)
}

func (p *pool) close() {
	if p != nil && p.closed.CompareAndSwap(false, true) {
		close(p.jobs)
	}
}

// threads is the number of goroutines parallel may use.
func (p *pool) threads() int {
	if p == nil {
		return 1
	}
	return p.workers + 1
}

// parallel runs t over [0, n) split into at most threads parts of at least
// grain items each, and waits for all of them.
func (p *pool) parallel(n, grain int, t ranger) {
	if grain < 1 {
		grain = 1
	}
	parts := p.threads()
	if m := n / grain; m < parts {
		parts = m
	}
	if parts <= 1 {
		t.runRange(0, n)
		return
	}
	chunk := (n + parts - 1) / parts
	p.wg.Add(parts - 1)
	for i := 1; i < parts; i++ {
		lo := i * chunk
		hi := min(n, lo+chunk)
		if lo >= hi {
			p.wg.Done()
			continue
		}
		p.jobs <- job{t, lo, hi}
	}
	t.runRange(0, chunk)
	p.wg.Wait()
	if v := p.panicV.Load(); v != nil {
		panic(v)
	}
}
