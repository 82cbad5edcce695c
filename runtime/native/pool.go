package native

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
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
//
// A forward pass hands the workers hundreds of small pieces of work, a few
// microseconds apart. Waking a parked goroutine costs about as much as such
// a piece, and on two cores that made a second thread slower than one. So a
// worker that has finished spins for a short while (spinFor) watching its
// slot before it parks, and the caller spins (then yields) while it waits
// for the shares it handed out. After spinFor without work the worker parks
// and costs nothing. With more threads than GOMAXPROCS spinning would only
// take the processors from the goroutines with work, so workers park at once.
type pool struct {
	workers int           // goroutines besides the caller
	spin    time.Duration // how long an idle worker spins: spinFor, or 0 when there are more threads than Ps
	maxSpin int32         // GOMAXPROCS−1 when the pool was made: the most spinners in the process
	slots   []slot
	panicV  atomic.Pointer[string] // first panic seen in a worker, re-raised (once) by the caller
	closed  atomic.Bool
}

// slot is one worker's mailbox: the caller writes j, then bumps seq; the
// worker runs j and sets done to seq. wake is signalled when the worker
// has parked (parked set) and a job is posted.
type slot struct {
	seq    atomic.Uint64
	done   atomic.Uint64
	parked atomic.Bool
	j      job
	wake   chan struct{}
	_      [64]byte // keep workers' slots on separate cache lines
}

// spinFor is how long an idle worker watches its slot before parking.
const spinFor = 50 * time.Microsecond

// spinners counts the workers spinning now, in every session of the
// process: at most GOMAXPROCS−1 may, so that sessions running side by side
// (sample --workers with --threads) leave the callers a processor; the
// others park at once.
var spinners atomic.Int32

func newPool(threads int) *pool {
	if threads <= 1 {
		return nil
	}
	p := &pool{workers: threads - 1, slots: make([]slot, threads-1), spin: spinFor}
	procs := runtime.GOMAXPROCS(0)
	if threads > procs {
		p.spin = 0
	}
	p.maxSpin = int32(procs - 1)
	for i := range p.slots {
		p.slots[i].wake = make(chan struct{}, 1)
		go p.work(&p.slots[i])
	}
	return p
}

func (p *pool) work(s *slot) {
	var last uint64
	for {
		// wait for a job: spin, then park
		start := time.Now()
		spin := p.spin
		for spin > 0 { // take a spinner's place if one is free
			n := spinners.Load()
			if n >= p.maxSpin {
				spin = 0
			} else if spinners.CompareAndSwap(n, n+1) {
				break
			}
		}
		for spins := 0; s.seq.Load() == last; spins++ {
			if p.closed.Load() {
				if spin > 0 {
					spinners.Add(-1)
				}
				return
			}
			if spins&63 != 63 {
				continue
			}
			if time.Since(start) < spin {
				runtime.Gosched()
				continue
			}
			if spin > 0 {
				spinners.Add(-1)
				spin = 0
			}
			s.parked.Store(true)
			if s.seq.Load() == last && !p.closed.Load() {
				<-s.wake
			}
			s.parked.Store(false)
			start = time.Now()
		}
		if spin > 0 {
			spinners.Add(-1)
		}
		last = s.seq.Load()
		p.do(s.j)
		s.done.Store(last)
	}
}

func (p *pool) do(j job) {
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprint(r)
			p.panicV.CompareAndSwap(nil, &msg)
		}
	}()
	j.t.runRange(j.lo, j.hi)
}

func (p *pool) close() {
	if p != nil && p.closed.CompareAndSwap(false, true) {
		for i := range p.slots {
			select {
			case p.slots[i].wake <- struct{}{}:
			default:
			}
		}
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
	if parts <= 1 || p.closed.Load() { // (a nil pool has one thread); closed: the workers are gone
		t.runRange(0, n)
		return
	}
	chunk := (n + parts - 1) / parts
	used := 0 // workers given a share: slots [0, used)
	for i := 1; i < parts; i++ {
		lo := i * chunk
		hi := min(n, lo+chunk)
		if lo >= hi {
			break
		}
		s := &p.slots[used]
		s.j = job{t, lo, hi}
		s.seq.Add(1)
		if s.parked.Load() {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		used++
	}
	t.runRange(0, chunk)
	for i := 0; i < used; i++ {
		s := &p.slots[i]
		want := s.seq.Load()
		for spins := 0; s.done.Load() != want; spins++ {
			if spins > 256 {
				runtime.Gosched()
			}
		}
		s.j = job{}
	}
	if v := p.panicV.Swap(nil); v != nil {
		panic(*v)
	}
}
