package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/internal/membudget"
)

func TestOpenRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, link, dir, "/dev/null"} {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(p, "model", 0); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s: got %v, want ErrNotRegular", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadFile blocked", p)
		}
	}
}

func TestReadFileBounds(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(p, "model", 0); err != nil || len(b) != 4096 {
		t.Fatalf("regular file: %d bytes, %v", len(b), err)
	}
	if _, err := ReadFile(p, "model", 100); err == nil {
		t.Error("file above maxBytes accepted")
	}
	old := membudget.Set(1000)
	defer membudget.Set(old)
	if _, err := ReadFile(p, "model", 0); !errors.Is(err, membudget.ErrExceeded) {
		t.Errorf("file above the budget: got %v", err)
	}
}
