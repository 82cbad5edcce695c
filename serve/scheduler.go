package serve

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebmrun/ebmrun/sampler"
)

// call is one chain-block's request for scores: what a sampler's Score
// call becomes when it goes through the scheduler.
type call struct {
	dst, x []float32
	n      int
	nz     sampler.Noise
	done   chan error
	err    error // set by the scheduler before done
}

// scheduler merges the score calls of the concurrent requests of one model
// into large model calls. Each request's chains run in a goroutine of their
// own (sampler.Run with one worker) whose Scorer is a stream of the
// scheduler; the scheduler gathers the streams' calls until every stream
// that is not already being scored has one waiting, the merged batch
// reaches maxBatch chains, or delay has passed since the first, then scores
// them in one ScoreEach call on a free session. Requests therefore join
// between steps: a new one's first call simply lands in the next batch.
type scheduler struct {
	in       chan *call
	sessions chan *session
	maxBatch int
	delay    time.Duration
	mixed    bool // the model takes a noise level per row

	streams atomic.Int64 // open streams
	busy    atomic.Int64 // streams whose call is being scored
	wg      sync.WaitGroup
	m       *modelMetrics
	closing sync.Once
	quit    chan struct{}

	// hold, while set, keeps the loop from forming a batch until the channel
	// closes, so that calls queue up; only tests set it (export_test.go), to
	// merge requests whatever the machine's speed.
	hold atomic.Pointer[chan struct{}]
}

func newScheduler(src sampler.Source, sessions, maxBatch int, delay time.Duration, mixed bool, m *modelMetrics) (*scheduler, error) {
	s := &scheduler{in: make(chan *call, 1024), sessions: make(chan *session, sessions),
		maxBatch: maxBatch, delay: delay, mixed: mixed, m: m, quit: make(chan struct{})}
	for range sessions {
		sc, err := src()
		if err != nil {
			s.closeSessions()
			return nil, err
		}
		ms, ok := sc.(*sampler.ModelScorer)
		if !ok {
			return nil, errors.New("serve: the scheduler needs model scorers")
		}
		s.sessions <- &session{ms: ms}
	}
	go s.loop()
	return s, nil
}

// session is a backend session with the scratch its merged calls reuse, so
// steady-state batches allocate nothing here.
type session struct {
	ms     *sampler.ModelScorer
	x, dst []float32
	noise  []sampler.Noise
}

// stream is a Scorer for one request's goroutine.
type stream struct {
	s    *scheduler
	done chan error
}

func (s *scheduler) open() *stream {
	s.streams.Add(1)
	return &stream{s: s, done: make(chan error, 1)}
}

func (st *stream) Close() error {
	st.s.streams.Add(-1)
	return nil
}

func (st *stream) Score(dst, x []float32, n int, nz sampler.Noise) error {
	st.s.m.queue.Inc()
	st.s.in <- &call{dst: dst, x: x, n: n, nz: nz, done: st.done}
	return <-st.done
}

// loop forms batches until the scheduler is closed.
func (s *scheduler) loop() {
	var timer *time.Timer
	for {
		var first *call
		select {
		case first = <-s.in:
		case <-s.quit:
			return
		}
		if h := s.hold.Load(); h != nil {
			<-*h
		}
		batch, chains := []*call{first}, first.n
		if timer == nil {
			timer = time.NewTimer(s.delay)
		} else {
			timer.Reset(s.delay)
		}
	gather:
		for chains < s.maxBatch && int64(len(batch)) < s.want() {
			select {
			case c := <-s.in:
				batch, chains = append(batch, c), chains+c.n
			case <-timer.C:
				break gather
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		s.m.queue.Sub(float64(len(batch)))
		s.busy.Add(int64(len(batch)))
		sess := <-s.sessions
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(sess, batch, chains)
			s.busy.Add(-int64(len(batch)))
			s.sessions <- sess
			for _, c := range batch {
				c.done <- c.err
			}
		}()
	}
}

// want is how many calls a batch waits for: every open stream not already
// being scored, but no more than an even share of the open streams per
// session, so that a few concurrent requests still keep every session (and
// so every core) busy instead of forming one batch that one session runs
// while the others idle. Rows are scored independently, so how the calls
// are split does not change any sample.
func (s *scheduler) want() int64 {
	open := s.streams.Load()
	share := (open + int64(cap(s.sessions)) - 1) / int64(cap(s.sessions))
	return min(open-s.busy.Load(), max(share, 1))
}

// run scores a merged batch and hands each call its rows.
func (s *scheduler) run(sess *session, batch []*call, chains int) {
	s.m.batchSize.Observe(float64(chains))
	s.m.evals.Add(float64(chains))
	if len(batch) == 1 {
		c := batch[0]
		if err := sess.ms.Score(c.dst, c.x, c.n, c.nz); err != nil {
			c.err = err
		}
		return
	}
	if s.mixed {
		if err := s.runMixed(sess, batch, chains); err == nil || !errors.Is(err, sampler.ErrMixedFixedBatch) {
			if err != nil {
				for _, c := range batch {
					c.err = err
				}
			}
			return
		}
	}
	// One call per noise level.
	byNoise := map[sampler.Noise][]*call{}
	var order []sampler.Noise
	for _, c := range batch {
		if _, ok := byNoise[c.nz]; !ok {
			order = append(order, c.nz)
		}
		byNoise[c.nz] = append(byNoise[c.nz], c)
	}
	for _, nz := range order {
		cs := byNoise[nz]
		x, dst, n := sess.gather(cs)
		if err := sess.ms.Score(dst, x, n, nz); err != nil {
			for _, c := range cs {
				c.err = err
			}
			continue
		}
		scatter(cs, dst)
	}
}

func (s *scheduler) runMixed(sess *session, batch []*call, chains int) error {
	noise := sess.noise[:0]
	for _, c := range batch {
		for range c.n {
			noise = append(noise, c.nz)
		}
	}
	sess.noise = noise
	x, dst, _ := sess.gather(batch)
	if err := sess.ms.ScoreEach(dst, x, noise); err != nil {
		return err
	}
	scatter(batch, dst)
	return nil
}

// gather copies the calls' states into the session's scratch.
func (se *session) gather(cs []*call) (x, dst []float32, n int) {
	x = se.x[:0]
	for _, c := range cs {
		x = append(x, c.x...)
		n += c.n
	}
	se.x = x
	if cap(se.dst) < len(x) {
		se.dst = make([]float32, len(x))
	}
	return x, se.dst[:len(x)], n
}

func scatter(cs []*call, dst []float32) {
	off := 0
	for _, c := range cs {
		off += copy(c.dst[:len(c.x)], dst[off:off+len(c.x)])
	}
}

// close stops forming batches once the streams are gone and closes the
// sessions.
func (s *scheduler) close() error {
	var err error
	s.closing.Do(func() {
		close(s.quit)
		s.wg.Wait()
		err = s.closeSessions()
	})
	return err
}

func (s *scheduler) closeSessions() error {
	var errs []error
	for {
		select {
		case se := <-s.sessions:
			if err := se.ms.Close(); err != nil {
				errs = append(errs, fmt.Errorf("serve: closing a session: %w", err))
			}
		default:
			return errors.Join(errs...)
		}
	}
}

var _ io.Closer = (*stream)(nil)
