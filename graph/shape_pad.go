package graph

// PadIndex maps output index j of an axis of size d padded by begin and end
// to the input index it copies, or −1 for the pad value. Negative pads crop
// first and the positive ones pad what is left, as ONNX's reference does;
// edge, reflect (about the edge elements, repeatedly, as numpy) and wrap then
// read the cropped axis.
func PadIndex(mode string, j, begin, end, d int64) int64 {
	lo := max(-begin, 0)
	n := d - lo - max(-end, 0)
	if n < 0 {
		return -1
	}
	s := PadSource(mode, j-max(begin, 0), n)
	if s < 0 {
		return -1
	}
	return s + lo
}

// PadSource maps position s of a padded axis (counted from the input's
// first element, so negative in the begin padding) into an input axis of
// size d for Pad's mode: constant (−1: the pad value), edge, reflect or wrap.
func PadSource(mode string, s, d int64) int64 {
	if d <= 0 {
		return -1
	}
	if s >= 0 && s < d {
		return s
	}
	switch mode {
	case "edge":
		if s < 0 {
			return 0
		}
		return d - 1
	case "wrap":
		m := s % d
		if m < 0 {
			m += d
		}
		return m
	case "reflect":
		if d == 1 {
			return 0
		}
		period := 2 * (d - 1)
		m := s % period
		if m < 0 {
			m += period
		}
		if m >= d {
			m = period - m
		}
		return m
	}
	return -1
}
