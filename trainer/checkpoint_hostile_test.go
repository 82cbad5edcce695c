package trainer_test

import (
	"context"
	"encoding/gob"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/trainer"
)

// savedCheckpoint mirrors the fields of the trainer's checkpoint, so a test
// can craft the files an attacker would (gob matches fields by name).
type savedCheckpoint struct {
	Format      int
	Fingerprint string
	Done        int
	Names       []string
	Params      [][]float32
	M, V        [][]float32
	EMA         [][]float32
}

// Crafted checkpoints — a short name list, a negative step, +Inf or NaN
// values — are refused with ErrBadCheckpoint instead of crashing the
// resume or being exported.
func TestLoadCheckpointRefusesCraftedFiles(t *testing.T) {
	b := backends(t)[0]
	cfg := small(trainer.LossDSM)
	cfg.Steps = 1
	tr, err := trainer.New(cfg, toy(t, "swissroll"), b)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.ckpt")
	if err := tr.Run(context.Background(), trainer.RunOptions{Checkpoint: good}); err != nil {
		t.Fatal(err)
	}
	read := func() savedCheckpoint {
		f, err := os.Open(good)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var c savedCheckpoint
		if err := gob.NewDecoder(f).Decode(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		name  string
		craft func(*savedCheckpoint)
		want  string
	}{
		{"short names", func(c *savedCheckpoint) { c.Names = c.Names[:1] }, "1 names"},
		{"negative step", func(c *savedCheckpoint) { c.Done = -7 }, "step -7 is negative"},
		{"inf average", func(c *savedCheckpoint) { c.EMA[0][0] = float32(math.Inf(1)) }, "averages of parameter 0"},
		{"nan weight", func(c *savedCheckpoint) { c.Params[1][2] = float32(math.NaN()) }, "weights of parameter 1"},
		{"negative second moment", func(c *savedCheckpoint) { c.V[0][0] = -1 }, "second moments"},
	} {
		ck := read()
		c.craft(&ck)
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".ckpt")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := gob.NewEncoder(f).Encode(&ck); err != nil {
			t.Fatal(err)
		}
		f.Close()
		err = tr.LoadCheckpoint(path)
		if !errors.Is(err, trainer.ErrBadCheckpoint) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrBadCheckpoint containing %q", c.name, err, c.want)
		}
	}
	if err := tr.LoadCheckpoint(good); err != nil {
		t.Fatalf("the untouched checkpoint: %v", err)
	}
}
