//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// K shard processes and merge give the very file of one run (native).
func TestMergeShardsIsOneRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	model := "../../models/swissroll/model.onnx"
	common := []string{"-n", "1001", "--seed", "5", "--steps", "3", "--batch", "100", "--backend", "native", "--workers", "1", "--threads", "1"}
	const k = 3
	var cmds []*exec.Cmd
	var shards []string
	for i := range k {
		out := filepath.Join(dir, fmt.Sprintf("s-%d-of-%d.npy", i, k))
		shards = append(shards, out)
		cmd := exec.Command(os.Args[0], append([]string{"sample", model, "--shard", fmt.Sprintf("%d/%d", i, k), "-o", out}, common...)...)
		cmd.Env = append(os.Environ(), "EBMRUN_TEST_MAIN=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	one := filepath.Join(dir, "one.npy")
	if _, errs, code := ebmrun(t, append([]string{"sample", model, "-o", one}, common...)...); code != 0 {
		t.Fatal(errs)
	}
	merged := filepath.Join(dir, "merged.npy")
	// Given out of order: the names put them in order.
	if _, errs, code := ebmrun(t, "merge", shards[2], shards[0], shards[1], "-o", merged, "--n", "1001"); code != 0 {
		t.Fatal(errs)
	}
	a, _ := os.ReadFile(one)
	b, _ := os.ReadFile(merged)
	if len(a) < 1000 || !bytes.Equal(a, b) {
		t.Fatalf("merged %d bytes differ from one run's %d", len(b), len(a))
	}

	// Missing, repeated, foreign or miscounted shards are refused, and
	// nothing is written.
	plain := filepath.Join(dir, "plain.npy")
	os.Link(shards[1], plain)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{shards[0], shards[2]}, "shard 1 of 3 is missing"},
		{[]string{shards[0], shards[1], shards[1], shards[2]}, "given twice"},
		{[]string{shards[0], shards[1], shards[2], "--n", "1000"}, "holds"},
		{[]string{shards[0], plain, one}, "holds"},
		{[]string{shards[0], filepath.Join(dir, "nope-3-of-4.npy")}, "of 4, others of 3"},
	} {
		out := filepath.Join(dir, "bad.npy")
		_, errs, code := ebmrun(t, append(append([]string{"merge"}, c.args...), "-o", out)...)
		if code == 0 || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("merge %v: exit %d, %q; want %q", c.args, code, errs, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("merge %v wrote %s", c.args, out)
		}
	}
}
