package main

import (
	"fmt"
	"math"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/ebmrun/ebmrun/runtime"
)

// countValue is an int flag that also takes a whole number written with an
// exponent or a fraction point (-n 1e4, --steps 2.5e3 is refused), as
// people write sample and step counts.
type countValue int

func (c *countValue) String() string { return strconv.Itoa(int(*c)) }
func (c *countValue) Type() string   { return "int" }

func (c *countValue) Set(s string) error {
	if n, err := strconv.ParseInt(s, 0, 64); err == nil {
		if n != int64(int(n)) {
			return fmt.Errorf("%s is too large", s)
		}
		*c = countValue(n)
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != math.Trunc(v) || math.Abs(v) > math.MaxInt32 {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*c = countValue(v)
	return nil
}

// threadsValue is a count of threads, refused at parsing beyond what a
// session may use (runtime.MaxThreads): each thread holds memory.
type threadsValue int

func (t *threadsValue) String() string { return strconv.Itoa(int(*t)) }
func (t *threadsValue) Type() string   { return "int" }

func (t *threadsValue) Set(s string) error {
	var n countValue
	if err := n.Set(s); err != nil {
		return err
	}
	if err := runtime.CheckThreads(int(n)); err != nil {
		return err
	}
	*t = threadsValue(n)
	return nil
}

// threadsVar defines a --threads flag.
func threadsVar(fl *pflag.FlagSet, p *int, def int, usage string) {
	*p = def
	fl.Var((*threadsValue)(p), "threads", usage)
}

// countVar defines an int flag that accepts 1e4 and the like.
func countVar(fl *pflag.FlagSet, p *int, name, short string, def int, usage string) {
	*p = def
	fl.VarP((*countValue)(p), name, short, usage)
}
