package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/sampler"
	"github.com/ebmrun/ebmrun/tensorio"
)

func init() { commands = append(commands, newMergeCmd) }

type mergeFlags struct {
	out   string
	n     int
	force bool
}

func newMergeCmd() *cobra.Command {
	var f mergeFlags
	c := &cobra.Command{
		Use:   "merge SHARD.npy… -o OUT.npy",
		Short: "Concatenate the .npy outputs of sample --shard i/K into the file one run writes",
		Long: `merge joins the K shard files of a sharded sample run (--shard 0/K … K-1/K)
into OUT, byte for byte the file the unsharded run writes.

Files named …I-of-K… (as deploy/'s Indexed Job writes them) are put in the
order of I, and all K must be there; other names are taken in the order
given. Every shard must hold exactly its slice of the N samples (N is --n,
else the total), with the same sample shape, so a missing, repeated,
interrupted or foreign shard is refused instead of merged.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runMerge(c, args, &f) },
	}
	fl := c.Flags()
	fl.StringVarP(&f.out, "out", "o", "", "output .npy file (required)")
	countVar(fl, &f.n, "n", "n", 0, "the run's number of samples, checked (default: the shards' total)")
	fl.BoolVar(&f.force, "force", false, "overwrite OUT if it exists")
	return c
}

var shardName = regexp.MustCompile(`(\d+)-of-(\d+)`)

// orderShards sorts files named I-of-K by I and checks 0 … K−1 are all
// there; other names keep their order.
func orderShards(files []string) ([]string, error) {
	type named struct {
		i    int
		path string
	}
	var ns []named
	k := -1
	for _, p := range files {
		m := shardName.FindAllStringSubmatch(filepath.Base(p), -1)
		if m == nil {
			return files, nil
		}
		last := m[len(m)-1]
		i, _ := strconv.Atoi(last[1])
		kk, _ := strconv.Atoi(last[2])
		if k >= 0 && kk != k {
			return nil, usagef("%s is a shard of %d, others of %d", p, kk, k)
		}
		k = kk
		ns = append(ns, named{i, p})
	}
	sort.SliceStable(ns, func(a, b int) bool { return ns[a].i < ns[b].i })
	for j, n := range ns {
		if n.i != j {
			if j > 0 && ns[j-1].i == n.i {
				return nil, usagef("shard %d of %d given twice (%s, %s)", n.i, k, ns[j-1].path, n.path)
			}
			return nil, usagef("shard %d of %d is missing", j, k)
		}
	}
	if len(ns) != k {
		return nil, usagef("%d shard files of %d: shard %d is missing", len(ns), k, len(ns))
	}
	out := make([]string, len(ns))
	for j, n := range ns {
		out[j] = n.path
	}
	return out, nil
}

// npyInfo reads a shard's shape without its data.
func npyInfo(path string) (graph.DType, []int64, error) {
	dt, shape, err := tensorio.ReadNpyFileHeader(path)
	if err != nil {
		return 0, nil, trimPrefix(err, "tensorio: ")
	}
	return dt, shape, nil
}

func runMerge(c *cobra.Command, args []string, f *mergeFlags) error {
	if f.out == "" {
		return usagef("-o OUT.npy is required")
	}
	if outFormat(f.out) != ".npy" {
		return usagef("-o %s: merge writes .npy", f.out)
	}
	if _, err := os.Stat(f.out); err == nil && !f.force {
		return fmt.Errorf("%s exists; use --force to overwrite it", f.out)
	}
	files, err := orderShards(args)
	if err != nil {
		return err
	}
	shapes := make([][]int64, len(files))
	total := 0
	for i, p := range files {
		if slices.Contains(files[:i], p) {
			return usagef("%s is given twice", p)
		}
		dt, shape, err := npyInfo(p)
		if err != nil {
			return err
		}
		if dt != graph.Float32 || len(shape) < 2 {
			return fmt.Errorf("%s: %s %v is not samples (float32, [N, …])", p, dt, shape)
		}
		if i > 0 && !slices.Equal(shape[1:], shapes[0][1:]) {
			return fmt.Errorf("%s: samples of shape %v, %s's are %v: not shards of one run", p, shape[1:], files[0], shapes[0][1:])
		}
		shapes[i] = shape
		total += int(shape[0])
	}
	n := total
	if f.n > 0 {
		n = f.n
	}
	k := len(files)
	for i, s := range shapes {
		lo, hi := sampler.ShardRange(n, i, k)
		if int(s[0]) != hi-lo {
			return fmt.Errorf("%s holds %d samples; shard %d/%d of %d holds %d (samples %d…%d): a shard is missing, repeated, out of order or was cut short",
				files[i], s[0], i, k, n, hi-lo, lo, hi-1)
		}
	}
	shape := append([]int64{int64(n)}, shapes[0][1:]...)
	err = tensorio.WriteAtomic(f.out, func(w io.Writer) error {
		h, err := tensorio.NpyHeader(graph.Float32, shape)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(w, 1<<16)
		if _, err := bw.Write(h); err != nil {
			return err
		}
		for _, p := range files {
			t, err := tensorio.ReadNpyFile(p)
			if err != nil {
				return fmt.Errorf("%s: %w", p, trimPrefix(err, "tensorio: "))
			}
			buf := make([]byte, 0, 4*len(t.F32))
			for _, v := range t.F32 {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
			if _, err := bw.Write(buf); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.ErrOrStderr(), "ebmrun: merged %d shards into %s (%d samples of shape %v)\n", k, f.out, n, shape[1:])
	return nil
}
