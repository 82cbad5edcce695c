// Package membudget is the one memory budget every large allocation of
// ebmrun asks first: tensors read from files, data sets, decompressed
// streams, sampler pools. A size that comes from a file or a flag is checked
// here before anything is allocated, so a hostile header ends in an error
// that names what asked for how much instead of an out-of-memory crash.
//
// The limit defaults to half of physical memory, and to half of the
// process's address-space limit (RLIMIT_AS) when that is lower; Set changes
// it (the command line's --max-memory).
package membudget

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// ErrExceeded is what every budget error wraps; test with errors.Is.
var ErrExceeded = errors.New("exceeds the memory budget")

// Error says what asked for how many bytes, and the budget it exceeded.
type Error struct {
	What  string
	Bytes int64 // negative: the size overflowed int64
	Limit int64
}

func (e *Error) Error() string {
	need := "more than " + Human(1<<62)
	if e.Bytes >= 0 {
		need = Human(e.Bytes)
	}
	return fmt.Sprintf("%s needs %s, more than the memory budget of %s (raise it with --max-memory)", e.What, need, Human(e.Limit))
}

func (e *Error) Unwrap() error { return ErrExceeded }

var limit atomic.Int64

func init() { limit.Store(Default()) }

// Default is the budget when none is set: half of physical memory, or half
// of the address-space limit when that is lower; 4 GiB when neither is
// known.
func Default() int64 {
	b := int64(4 << 30)
	if m := physical(); m > 0 {
		b = m / 2
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &rl); err == nil && rl.Cur < 1<<62 {
		b = min(b, int64(rl.Cur)/2)
	}
	return b
}

// physical reads MemTotal from /proc/meminfo; 0 when it cannot.
func physical() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil && kb > 0 {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// Limit is the budget in bytes.
func Limit() int64 { return limit.Load() }

// Set changes the budget; bytes ≤ 0 restores Default. It returns the
// previous budget, so tests can put it back.
func Set(bytes int64) int64 {
	if bytes <= 0 {
		bytes = Default()
	}
	return limit.Swap(bytes)
}

// Check reports whether bytes fit the budget. what names the asker in the
// error ("data set x.npy: [1000000 784] float32", "sampler pool").
func Check(what string, bytes int64) error {
	if l := Limit(); bytes < 0 || bytes > l {
		return &Error{What: what, Bytes: bytes, Limit: l}
	}
	return nil
}

// Elems checks n elements of size bytes each, catching overflow.
func Elems(what string, n, size int64) error {
	if n < 0 || size < 0 || (size > 0 && n > (1<<63-1)/size) {
		return Check(what, -1)
	}
	return Check(what, n*size)
}

// Product multiplies sizes, returning -1 when any is negative or the product
// overflows int64, for use with Check.
func Product(xs ...int64) int64 {
	p := int64(1)
	for _, x := range xs {
		if x < 0 {
			return -1
		}
		if x != 0 && p > (1<<63-1)/x {
			return -1
		}
		p *= x
	}
	return p
}

// Parse reads a size such as "8G", "512MiB", "1.5GB" or "1000000" (bytes).
// K, M, G, T are powers of 1024 with or without "i"/"B".
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	u := strings.ToUpper(t)
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		for _, form := range []string{suf.s + "IB", suf.s + "B", suf.s} {
			if strings.HasSuffix(u, form) {
				u, mult = strings.TrimSuffix(u, form), suf.m
				goto parsed
			}
		}
	}
	u = strings.TrimSuffix(u, "B")
parsed:
	v, err := strconv.ParseFloat(strings.TrimSpace(u), 64)
	if err != nil || !(v > 0) || v*float64(mult) >= 1<<62 {
		return 0, fmt.Errorf("membudget: size %q: want a positive size such as 8G, 512M or 1000000", s)
	}
	return int64(v * float64(mult)), nil
}

// Human formats a byte count with a binary unit.
func Human(b int64) string {
	switch {
	case b >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(b)/(1<<40))
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", b)
}

// Reader limits a stream a decoder expands (gzip, say) to the budget: past
// it, Read returns the budget error naming what was being read.
type Reader struct {
	R    interface{ Read([]byte) (int, error) }
	What string
	n    int64
}

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	r.n += int64(n)
	if r.n > Limit() {
		return n, &Error{What: r.What + " (decompressed)", Bytes: r.n, Limit: Limit()}
	}
	return n, err
}
