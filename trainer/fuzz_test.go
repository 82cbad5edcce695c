package trainer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/runtime"
	"github.com/ebmrun/ebmrun/trainer"
)

// FuzzLoadCheckpoint: any bytes as a checkpoint are refused or restore a
// state — never a panic, never a state with non-finite weights. Seeded
// with a real checkpoint of a small run.
func FuzzLoadCheckpoint(f *testing.F) {
	b, err := runtime.Get("native")
	if err != nil {
		f.Fatal(err)
	}
	data, err := trainer.NewToyData("swissroll")
	if err != nil {
		f.Fatal(err)
	}
	cfg := small(trainer.LossDSM)
	cfg.Steps = 1
	tr, err := trainer.New(cfg, data, b)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close() })
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.ckpt")
	if err := tr.Run(context.Background(), trainer.RunOptions{Checkpoint: seed}); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	old := membudget.Set(64 << 20)
	f.Cleanup(func() { membudget.Set(old) })
	f.Fuzz(func(t *testing.T, ckpt []byte) {
		p := filepath.Join(t.TempDir(), "c.ckpt")
		if err := os.WriteFile(p, ckpt, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := tr.LoadCheckpoint(p); err != nil {
			return
		}
		if tr.Done() < 0 {
			t.Fatalf("restored step %d", tr.Done())
		}
		for _, w := range tr.EMAParams() {
			for _, v := range w {
				if v != v || v > 3.4e38 || v < -3.4e38 {
					t.Fatalf("restored non-finite weight %v", v)
				}
			}
		}
	})
}
