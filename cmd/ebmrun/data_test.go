package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/graph"
	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/tensorio"
)

// A toy's points from data are eval's toy:NAME:N with the same seed: the
// two evaluations agree to the bit.
func TestDataToyIsEvalToy(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "d.npy")
	if _, stderr, code := ebmrun(t, "data", "8gaussians", "-n", "300", "--seed", "3", "-o", file); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	x, err := tensorio.ReadNpyFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x.Shape, []int64{300, 2}) {
		t.Fatalf("shape %v", x.Shape)
	}
	// The points are 8 Gaussians': every one near a mode at radius 2√2.
	var far int
	for i := 0; i < 300; i++ {
		if r := math.Hypot(float64(x.F32[2*i]), float64(x.F32[2*i+1])); math.Abs(r-2*math.Sqrt2) > 1.5 {
			far++
		}
	}
	if far > 3 {
		t.Errorf("%d of 300 points far from the 8 Gaussians' circle", far)
	}
	model := fixtureModel(t, "ncsn_mlp")
	args := []string{"--sigma", "0.1", "--objective", "ssm", "--seed", "3"}
	fromFile := evalJSON(t, append([]string{model, "--data", file}, args...)...)
	fromToy := evalJSON(t, append([]string{model, "--data", "toy:8gaussians:300"}, args...)...)
	if fromFile != fromToy {
		t.Errorf("eval of the data file:\n%s\neval of toy:8gaussians:300:\n%s", fromFile, fromToy)
	}
}

// Subsets of a data file: the seed fixes them, offsets 0 and N are disjoint,
// images are scaled to [0, 1].
func TestDataSubsets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "img.npy")
	imgs := graph.NewFloat32([]int64{40, 1, 2, 2}, nil)
	for i := range imgs.F32 {
		imgs.F32[i] = float32(i % 256) // every image distinct, values in [0, 255]
	}
	if err := tensorio.WriteNpyFile(src, imgs); err != nil {
		t.Fatal(err)
	}
	write := func(name string, extra ...string) []float32 {
		t.Helper()
		out := filepath.Join(dir, name)
		if _, stderr, code := ebmrun(t, append([]string{"data", src, "-n", "20", "-o", out}, extra...)...); code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, stderr)
		}
		x, err := tensorio.ReadNpyFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x.Shape, []int64{20, 1, 2, 2}) {
			t.Fatalf("%v: shape %v", extra, x.Shape)
		}
		return x.F32
	}
	a, a2 := write("a.npy", "--seed", "5"), write("a2.npy", "--seed", "5")
	b := write("b.npy", "--seed", "5", "--offset", "20")
	if !slices.Equal(a, a2) {
		t.Error("the same seed gave different subsets")
	}
	seen := map[float32]bool{}
	for i := 0; i < 20; i++ {
		seen[a[4*i]] = true
	}
	for i := 0; i < 20; i++ {
		if seen[b[4*i]] {
			t.Fatalf("offsets 0 and 20 share image starting %v", b[4*i])
		}
		seen[b[4*i]] = true
	}
	if len(seen) != 40 {
		t.Errorf("the two halves cover %d images, want 40", len(seen))
	}
	for _, v := range append(a, b...) {
		if v < 0 || v > 1 {
			t.Fatalf("value %v outside [0, 1]", v)
		}
	}
}

func TestDataRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"nope", "-n", "3", "-o", filepath.Join(dir, "x.npy")}, 2, "neither a toy distribution"},
		{[]string{"moons", "-n", "0", "-o", filepath.Join(dir, "x.npy")}, 2, "-n is 0"},
		{[]string{"moons", "-n", "3"}, 2, "-o FILE is required"},
		{[]string{"moons", "-n", "3", "--offset", "3", "-o", filepath.Join(dir, "x.npy")}, 2, "--offset is for data files"},
		{[]string{"moons", "-n", "3", "-o", filepath.Join(dir, "no", "x.npy")}, 1, ""},
	} {
		_, stderr, code := ebmrun(t, append([]string{"data"}, c.args...)...)
		if code != c.code || !strings.HasPrefix(stderr, "ebmrun: ") || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line with %q", c.args, code, stderr, c.code, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.npy")); err == nil {
		t.Error("a refused call left a file")
	}
	testenv.Require(t, fashionTest, "apt-get install dataset-fashion-mnist")
	_, stderr, code := ebmrun(t, "data", fashionTest, "-n", "300", "--offset", "9800", "-o", filepath.Join(dir, "f.npy"))
	if code != 2 || !strings.Contains(stderr, "has 10000 samples") {
		t.Errorf("fashion-mnist past its end: exit %d, %q", code, stderr)
	}
}

const fashionTest = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
