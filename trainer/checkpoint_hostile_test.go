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

// A checkpoint whose Flags map claims 2^30 entries in a few bytes is
// refused at once: gob sizes a nil map by the count the stream claims, so
// decoding into one would allocate tens of gigabytes before reading a
// single entry (found by FuzzLoadCheckpoint).
func TestLoadCheckpointRefusesHugeMapCount(t *testing.T) {
	var buf strings.Builder
	type flagsOnly struct{ Flags map[string]string }
	if err := gob.NewEncoder(&buf).Encode(flagsOnly{Flags: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	raw := []byte(buf.String())
	// The value message is the last one: [length][type id][field delta 1]
	// [count 1][1 'k'][1 'v'][end 0]. Claim 2^30 entries instead of one.
	entry := []byte{1, 1, 'k', 1, 'v', 0}
	at := strings.LastIndex(string(raw), string(entry))
	if at < 0 {
		t.Fatalf("gob layout changed: % x", raw)
	}
	start := at - 1 // the message's length byte, before the type id and the field delta
	for start >= 0 && int(raw[start]) != len(raw)-start-1 {
		start--
	}
	if start < 0 {
		t.Fatalf("gob layout changed: % x", raw)
	}
	crafted := append([]byte{}, raw[:start]...)
	crafted = append(crafted, raw[start]+4)
	crafted = append(crafted, raw[start+1:at]...)
	crafted = append(crafted, 0xfc, 0x40, 0, 0, 0) // 2^30 as a gob uint
	crafted = append(crafted, raw[at+1:]...)
	path := filepath.Join(t.TempDir(), "huge-map.ckpt")
	if err := os.WriteFile(path, crafted, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := trainer.ReadCheckpointFlags(path); err == nil {
		t.Fatal("a map of 2^30 entries in 30 bytes was accepted")
	}
}
