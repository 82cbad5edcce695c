package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/internal/safefile"
	"github.com/ebmrun/ebmrun/internal/testenv"
)

// Metadata is untrusted: each file of testdata/hostile with a bad ebmrun.*
// value is refused by Spec with a MetadataError naming the key.
func TestSpecRefusesHostileMetadata(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testenv.Root(t), "testdata", "hostile")
	for _, c := range []struct{ file, key, want string }{
		{"meta_betas_zero.onnx", MetaBetas, "steps must be between 1 and"},
		{"meta_betas_negative.onnx", MetaBetas, "steps must be between 1 and"},
		{"meta_betas_huge.onnx", MetaBetas, "steps must be between 1 and"},
		{"meta_sigmas_empty.onnx", MetaSigmas, "empty"},
		{"meta_sampler_steps_huge.onnx", MetaSampler, "steps must be between 0 and"},
		{"meta_data_shape_huge.onnx", MetaDataShape, "one sample of more than"},
		{"shape_huge.onnx", "data shape", "one sample of more than"},
	} {
		m, err := Load(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		_, err = Spec(m, Overrides{})
		var me *MetadataError
		if !errors.As(err, &me) || !errors.Is(err, ErrMetadata) || !strings.HasPrefix(me.Key, c.key) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want a MetadataError for %s containing %q", c.file, err, c.key, c.want)
		}
		if len(err.Error()) > 300 {
			t.Errorf("%s: error of %d characters", c.file, len(err.Error()))
		}
	}
	// NaN and ±Inf cannot be written in JSON: a parse error, still refused.
	for _, f := range []string{"meta_sigmas_nan.onnx", "meta_data_range_inf.onnx"} {
		m, err := Load(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := Spec(m, Overrides{}); err == nil {
			t.Errorf("%s: accepted", f)
		}
	}
}

// A model path that is a FIFO or a link to /dev/zero is refused before it
// is read; neither blocks nor reads without end.
func TestLoadRefusesSpecialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.onnx")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.onnx")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, zero} {
		done := make(chan error, 1)
		go func() { _, err := Load(p); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, safefile.ErrNotRegular) {
				t.Errorf("%s: got %v", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Load blocked", p)
		}
	}
}

// External data that is a FIFO is refused without waiting for a writer.
func TestExternalDataFIFO(t *testing.T) {
	t.Parallel()
	src := filepath.Join(testenv.Root(t), "testdata", "malformed", "ext_ok.onnx")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "ext_ok.bin"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(filepath.Join(dir, "m.onnx")); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load blocked on a FIFO as external data")
	}
}
