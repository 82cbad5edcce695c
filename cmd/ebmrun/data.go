package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/tensorio"
)

func init() { commands = append(commands, newDataCmd) }

// dataStream is the random stream data draws from for a seed: the one
// eval's --data toy:NAME:N uses, so the same seed gives the same points.
const dataStream = 1 << 32

type dataFlags struct {
	n, offset int
	seed      uint64
	out       string
	scale     string
}

func newDataCmd() *cobra.Command {
	var f dataFlags
	c := &cobra.Command{
		Use:   "data SOURCE -n N -o FILE",
		Short: "Write N points of a toy distribution, or a seeded subset of a data set, to .npy",
		Long: `data writes the data a model card compares against, so every figure has a
command behind it.

SOURCE is a toy distribution (` + strings.Join(dataset.ToyNames(), ", ") + `):
N fresh points drawn with --seed — the points eval's --data toy:NAME:N
draws with the same --seed — or a data file (.npy, .csv, IDX, optionally
gzipped, a folder of PNG images): N samples of it taken from a random order
fixed by --seed, starting at --offset, so that two calls with the same seed
and offsets 0 and N give disjoint subsets. Images are scaled from [0, 255]
to [0, 1] as train scales them (--scale).

  ebmrun data 8gaussians -n 10000 --seed 2 -o data.npy
  ebmrun data /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz -n 300 --seed 1 -o testA300.npy`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if f.n < 1 {
				return usagef("data: -n is %d; want at least 1", f.n)
			}
			if f.offset < 0 {
				return usagef("data: --offset is %d; want 0 or more", f.offset)
			}
			if f.out == "" {
				return usagef("data: -o FILE is required")
			}
			t, err := dataFrom(args[0], f)
			if err != nil {
				return err
			}
			if err := tensorio.WriteNpyFile(f.out, t); err != nil {
				return trimPrefix(err, "tensorio: ")
			}
			fmt.Fprintf(c.ErrOrStderr(), "wrote %d samples of shape %v to %s\n", t.Shape[0], t.Shape[1:], f.out)
			return nil
		},
	}
	fl := c.Flags()
	fl.IntVarP(&f.n, "n", "n", 0, "number of samples (required)")
	fl.StringVarP(&f.out, "out", "o", "", "the .npy file to write (required)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the draws or of the subset's order")
	fl.IntVar(&f.offset, "offset", 0, "data files: where in the seeded order the subset starts")
	fl.StringVar(&f.scale, "scale", "auto", "data files: auto (images from [0,255] to [0,1], else none), none, standardize, or range:LO,HI")
	return c
}

// dataFrom resolves SOURCE as train does: a toy name unless a file of that
// name exists.
func dataFrom(spec string, f dataFlags) (*graph.Tensor, error) {
	r := rand.New(rand.NewPCG(f.seed, dataStream))
	if _, err := os.Stat(spec); err != nil {
		toy, terr := dataset.Toy(spec)
		if terr != nil {
			if os.IsNotExist(err) {
				return nil, usagef("data: %q is neither a toy distribution (%s) nor a file", spec, strings.Join(dataset.ToyNames(), ", "))
			}
			return nil, err
		}
		if f.offset != 0 {
			return nil, usagef("data: --offset is for data files; a toy's points are fresh for every seed")
		}
		return toyTensor(toy, spec, f.n, r)
	}
	t, err := dataset.Load(spec)
	if err != nil {
		return nil, trimPrefix(err, "dataset: ")
	}
	total := int(t.Shape[0])
	if f.n > total || f.offset > total-f.n { // not offset+n, which can overflow
		return nil, usagef("data: %s has %d samples; --offset %d -n %d asks for more", spec, total, f.offset, f.n)
	}
	if _, err := scaleData(t, spec, f.scale, "data"); err != nil {
		return nil, err
	}
	per := int(graph.NumElements(t.Shape[1:]))
	order := r.Perm(total)[f.offset : f.offset+f.n]
	out := graph.NewFloat32(append([]int64{int64(f.n)}, t.Shape[1:]...), nil)
	for i, j := range order {
		copy(out.F32[i*per:(i+1)*per], t.F32[j*per:(j+1)*per])
	}
	return out, nil
}
