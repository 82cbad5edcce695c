package serve

// HoldBatches keeps every model's scheduler from forming batches until
// release is called, so that the tests' concurrent requests queue their
// first calls and are merged on any machine, fast or slow.
func HoldBatches(s *Server) (release func()) {
	h := make(chan struct{})
	for _, m := range s.models {
		if m.sched != nil {
			m.sched.hold.Store(&h)
		}
	}
	return func() {
		for _, m := range s.models {
			if m.sched != nil {
				m.sched.hold.Store(nil)
			}
		}
		close(h)
	}
}
