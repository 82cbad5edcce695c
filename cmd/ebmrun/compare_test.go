package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/dataset"
	"github.com/ebmrun/ebmrun/tensorio"
)

const (
	compareN     = 300 // samples a set: enough for the tests, cheap
	comparePerms = "50"
	compareNullP = 0.05     // one distribution: p-value at least this
	compareAltP  = 1.0 / 51 // clearly different: the smallest p 50 permutations give
)

// toyFiles writes samples of toy distributions as .npy and .csv files.
func toyFiles(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	for _, f := range []struct {
		file, toy string
		seed      uint64
	}{{"a.npy", "8gaussians", 1}, {"b.npy", "8gaussians", 2}, {"rings.npy", "rings", 3}} {
		d, _ := dataset.Toy(f.toy)
		if err := tensorio.WriteNpyFile(filepath.Join(dir, f.file), d.Tensor(compareN, rand.New(rand.NewPCG(f.seed, 0)))); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := dataset.Toy("8gaussians")
	x := d.Sample(nil, compareN, rand.New(rand.NewPCG(4, 0)))
	var csv strings.Builder
	csv.WriteString("x,y\n")
	for i := 0; i < len(x); i += 2 {
		csv.WriteString(strings.Join([]string{ftoa(x[i]), ftoa(x[i+1])}, ",") + "\n")
	}
	for name, body := range map[string]string{
		"c.csv":      csv.String(),
		"nan.csv":    "1,2\n3,nan\n",
		"ragged.csv": "1,2\n3\n",
		"three.csv":  "1,2,3\n4,5,6\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ftoa(v float64) string { b, _ := json.Marshal(v); return string(b) }

func compareJSON(t *testing.T, args ...string) compareReport {
	t.Helper()
	stdout, stderr, code := ebmrun(t, append([]string{"compare", "--json", "--permutations", comparePerms, "--projections", "16"}, args...)...)
	if code != 0 {
		t.Fatalf("compare %v: exit %d: %s", args, code, stderr)
	}
	var r compareReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("compare %v: bad JSON: %v\n%s", args, err, stdout)
	}
	return r
}

func pvalues(t *testing.T, r compareReport) map[string]float64 {
	t.Helper()
	p := map[string]float64{}
	for _, m := range r.Metrics {
		if m.PValue != nil {
			p[m.Name] = *m.PValue
		}
	}
	return p
}

func TestCompare(t *testing.T) {
	t.Parallel()
	dir := toyFiles(t)
	same := compareJSON(t, filepath.Join(dir, "a.npy"), filepath.Join(dir, "c.csv"))
	if len(same.Metrics) != 3 || same.A.Samples != compareN || same.B.Samples != compareN || len(same.Bandwidths) != 5 {
		t.Fatalf("report incomplete: %+v", same)
	}
	for _, name := range []string{"mmd2", "energy_distance"} {
		if p := pvalues(t, same)[name]; p < compareNullP {
			t.Errorf("one distribution (.npy against .csv): %s p-value %v, want ≥ %v", name, p, compareNullP)
		}
	}
	if sw := same.Metrics[2]; sw.Name != "sliced_w1" || sw.StdErr == nil || sw.PValue != nil {
		t.Errorf("sliced W1 should have a stderr and no p-value: %+v", sw)
	}
	diff := compareJSON(t, filepath.Join(dir, "a.npy"), filepath.Join(dir, "rings.npy"))
	for _, name := range []string{"mmd2", "energy_distance"} {
		if p := pvalues(t, diff)[name]; p > compareAltP {
			t.Errorf("8gaussians against rings: %s p-value %v, want ≤ %v", name, p, compareAltP)
		}
	}
	noTest := compareJSON(t, "--permutations", "0", "--seed", "9", filepath.Join(dir, "a.npy"), filepath.Join(dir, "b.npy"))
	if len(pvalues(t, noTest)) != 0 || noTest.Options.Seed != 9 {
		t.Errorf("--permutations 0: %+v, want no p-values", noTest)
	}
	capped := compareJSON(t, "--max-samples", "100", filepath.Join(dir, "a.npy"), filepath.Join(dir, "b.npy"))
	if capped.A.Used != 100 || capped.B.Used != 100 {
		t.Errorf("--max-samples 100: used %d and %d", capped.A.Used, capped.B.Used)
	}

	stdout, stderr, code := ebmrun(t, "compare", "--permutations", comparePerms, filepath.Join(dir, "a.npy"), filepath.Join(dir, "b.npy"))
	if code != 0 {
		t.Fatalf("table: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"metric", "p-value", "MMD²", "energy distance", "sliced W1", "300 samples of shape [2]"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCompareRefuses(t *testing.T) {
	t.Parallel()
	dir := toyFiles(t)
	a := filepath.Join(dir, "a.npy")
	for _, c := range []struct {
		b, want string
	}{
		{"missing.npy", "missing.npy"},
		{"nan.csv", "nan.csv: csv line 2 field 2"},
		{"ragged.csv", "ragged.csv: csv line 2 has 1 fields"},
		{"three.csv", "a.npy has samples of shape [2], " + filepath.Join(dir, "three.csv") + " of shape [3]"},
	} {
		stdout, stderr, code := ebmrun(t, "compare", a, filepath.Join(dir, c.b))
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if code != 1 || stdout != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], "ebmrun: ") || !strings.Contains(lines[0], c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and one line containing %q", c.b, code, stdout, stderr, c.want)
		}
	}
	for _, args := range [][]string{
		{"compare", a},
		{"compare", a, a, a},
		{"compare", "--projections", "0", a, a},
		{"compare", "--permutations", "-1", a, a},
		{"compare", "--max-samples", "1", a, a},
		{"compare", "--seed", "x", a, a},
		{"compare", "--bogus", a, a},
	} {
		_, stderr, code := ebmrun(t, args...)
		if code != 2 || !strings.HasPrefix(stderr, "ebmrun: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line", args[1:], code, stderr)
		}
	}
}
