package native

import (
	"fmt"
	"sort"

	"github.com/ebmrun/ebmrun/graph"
)

// maxRank bounds the rank of tensors the kernels handle, so that index
// arithmetic can live in fixed-size arrays on the stack.
const maxRank = 12

// maxElements bounds the size of one tensor (16 GiB of float32), so that a
// shape computed from bad input fails with an error instead of crashing.
const maxElements = 1 << 32

type dims = [maxRank]int64

func sortStrings(s []string) { sort.Strings(s) }

// setShape sets a tensor's dtype and shape, reusing its shape slice.
func setShape(t *graph.Tensor, dt graph.DType, shape []int64) {
	t.DType = dt
	t.Shape = append(t.Shape[:0], shape...)
}

func checkRank(r int) error {
	if r > maxRank {
		return fmt.Errorf("rank %d exceeds the supported %d", r, maxRank)
	}
	return nil
}

// normAxis maps a possibly negative axis into [0, r).
func normAxis(axis int64, r int) (int, error) {
	if axis < -int64(r) || axis >= int64(r) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, r)
	}
	if axis < 0 {
		axis += int64(r)
	}
	return int(axis), nil
}

// axisMask turns a list of axes into a per-dimension flag, rejecting
// duplicates.
func axisMask(axes []int64, r int) (mask [maxRank]bool, err error) {
	for _, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return mask, err
		}
		if mask[ax] {
			return mask, fmt.Errorf("axis %d repeated", a)
		}
		mask[ax] = true
	}
	return mask, nil
}

// broadcastShapes writes the multidirectional broadcast of shapes into out
// and returns its rank.
func broadcastShapes(out *dims, shapes ...[]int64) (int, error) {
	r := 0
	for _, s := range shapes {
		var err error
		if r, err = broadcastInto(out, r, s); err != nil {
			return 0, err
		}
	}
	return r, nil
}

// broadcastInto broadcasts the shape in out[:r] with s, in place.
func broadcastInto(out *dims, r int, s []int64) (int, error) {
	nr := max(r, len(s))
	if err := checkRank(nr); err != nil {
		return 0, err
	}
	if nr > r { // shift right and pad with ones
		sh := nr - r
		for i := r - 1; i >= 0; i-- {
			out[i+sh] = out[i]
		}
		for i := 0; i < sh; i++ {
			out[i] = 1
		}
	}
	off := nr - len(s)
	for i, d := range s {
		o := &out[off+i]
		switch {
		case d == *o || d == 1:
		case *o == 1:
			*o = d
		default:
			return 0, fmt.Errorf("cannot broadcast dimension %d against %d (shape %v)", *o, d, append([]int64(nil), s...))
		}
	}
	return nr, nil
}

func prod(s []int64) int64 {
	n := int64(1)
	for _, d := range s {
		n *= d
	}
	return n
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// strider walks an output shape in rows (the innermost coalesced dimension)
// and tracks where each of up to three broadcast inputs is.
type strider struct {
	rank  int             // coalesced rank, ≥ 1
	dim   [maxRank]int    // coalesced output dimensions
	str   [3][maxRank]int // per input stride of each coalesced dimension (0: broadcast)
	nin   int
	inner int // dim[rank-1]
	rows  int // product of the outer dimensions
}

// newStrider prepares to walk out (rank r) reading inputs of the given shapes,
// each broadcast to out.
func newStrider(out []int64, ins ...[]int64) strider {
	var s strider
	s.nin = len(ins)
	r := len(out)
	var raw [3][maxRank]int
	for k, sh := range ins {
		st := 1
		off := r - len(sh)
		for i := r - 1; i >= 0; i-- {
			if i < off || sh[i-off] == 1 {
				raw[k][i] = 0
			} else {
				raw[k][i] = st
				st *= int(sh[i-off])
			}
		}
	}
	// Coalesce: merge dimension i into the one after it when every input
	// walks the pair as one contiguous (or one broadcast) run.
	s.rank = 0
	for i := 0; i < r; i++ {
		d := int(out[i])
		if d == 1 && r > 1 {
			continue // size-1 dimensions never move an index
		}
		if s.rank > 0 {
			j := s.rank - 1
			ok := true
			for k := 0; k < s.nin; k++ {
				if s.str[k][j] != raw[k][i]*d {
					ok = false
					break
				}
			}
			if ok {
				s.dim[j] *= d
				for k := 0; k < s.nin; k++ {
					s.str[k][j] = raw[k][i]
				}
				continue
			}
		}
		s.dim[s.rank] = d
		for k := 0; k < s.nin; k++ {
			s.str[k][s.rank] = raw[k][i]
		}
		s.rank++
	}
	if s.rank == 0 {
		s.rank = 1
		s.dim[0] = 1
		if r > 0 {
			s.dim[0] = int(out[r-1])
		}
		for k := 0; k < s.nin; k++ {
			s.str[k][0] = 0
			if r > 0 && len(ins[k]) > 0 && ins[k][len(ins[k])-1] != 1 {
				s.str[k][0] = 1
			}
		}
	}
	s.inner = s.dim[s.rank-1]
	s.rows = 1
	for i := 0; i < s.rank-1; i++ {
		s.rows *= s.dim[i]
	}
	return s
}

// row returns the starting offsets of outer row index q in each input
// (the output offset is q*inner).
func (s *strider) row(q int) (off [3]int) {
	for i := s.rank - 2; i >= 0; i-- {
		idx := q % s.dim[i]
		q /= s.dim[i]
		for k := 0; k < s.nin; k++ {
			off[k] += idx * s.str[k][i]
		}
	}
	return off
}

// start is row for outer row q, also setting idx to q's outer indices, for
// advance to step from.
func (s *strider) start(q int, idx *[maxRank]int) (off [3]int) {
	for i := s.rank - 2; i >= 0; i-- {
		idx[i] = q % s.dim[i]
		q /= s.dim[i]
		for k := 0; k < s.nin; k++ {
			off[k] += idx[i] * s.str[k][i]
		}
	}
	return off
}

// advance moves idx and off from one outer row to the next, an odometer
// step instead of row's divisions.
func (s *strider) advance(idx *[maxRank]int, off *[3]int) {
	for i := s.rank - 2; i >= 0; i-- {
		idx[i]++
		for k := 0; k < s.nin; k++ {
			off[k] += s.str[k][i]
		}
		if idx[i] < s.dim[i] {
			return
		}
		for k := 0; k < s.nin; k++ {
			off[k] -= s.dim[i] * s.str[k][i]
		}
		idx[i] = 0
	}
}

// innerStride is input k's stride along the innermost coalesced dimension.
func (s *strider) innerStride(k int) int { return s.str[k][s.rank-1] }
