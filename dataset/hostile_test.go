package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/internal/membudget"
	"github.com/ebmrun/ebmrun/internal/safefile"
	"github.com/ebmrun/ebmrun/internal/testenv"
)

// hostile is testdata/hostile, made by its make_hostile.py.
func hostile(t *testing.T, name string) string {
	return filepath.Join(testenv.Root(t), "testdata", "hostile", name)
}

// Each hostile data file of the hardening issue ends in an error that
// says what is wrong, without allocating what the file claims.
func TestLoadHostileFiles(t *testing.T) {
	old := membudget.Set(256 << 20) // well under what any of them claims
	defer membudget.Set(old)
	for _, c := range []struct{ file, want string }{
		{"npy_huge_header.npy", "longer than the limit"},
		{"npy_huge_data.npy", "needs 8589934592 bytes of data, the file has 1600"},
		{"npy_truncated.npy", "needs 800 bytes of data, the file has 12 (788 missing)"},
		{"bomb.csv.gz", "memory budget"},
		{"png16_huge", "memory budget"},
		{"quoted_newline.csv", "quoted value spans lines"},
	} {
		membudget.Set(map[bool]int64{true: 8 << 20, false: 256 << 20}[c.file == "bomb.csv.gz"])
		_, err := Load(hostile(t, c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "dataset: ") {
			t.Errorf("%s: got %v, want a dataset error containing %q", c.file, err, c.want)
		}
	}
}

// A byte-order mark before the first row is not a header: no row is lost.
func TestReadCSVKeepsRowAfterBOM(t *testing.T) {
	x, err := Load(hostile(t, "bom.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if x.Shape[0] != 3 || x.F32[0] != 1 || x.F32[1] != 2 {
		t.Fatalf("got shape %v values %v, want 3 rows starting 1, 2", x.Shape, x.F32)
	}
}

// A first row with numbers and one bad field is reported, not skipped as
// a header.
func TestReadCSVMixedFirstRowIsAnError(t *testing.T) {
	_, err := ReadCSV(strings.NewReader("1,abc\n3,4\n"))
	if err == nil || !strings.Contains(err.Error(), `"abc" is not a number`) {
		t.Fatalf("got %v", err)
	}
	x, err := ReadCSV(strings.NewReader("a,b\n3,4\n"))
	if err != nil || x.Shape[0] != 1 {
		t.Fatalf("header row: %v %v", x, err)
	}
}

// FIFOs, devices and folders are refused before reading, never waited on.
func TestLoadRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "data.npy")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.csv")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	pngDir := filepath.Join(dir, "pngs")
	os.Mkdir(pngDir, 0o755)
	if err := syscall.Mkfifo(filepath.Join(pngDir, "a.png"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, zero, pngDir} {
		done := make(chan error, 1)
		go func() { _, err := Load(p); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, safefile.ErrNotRegular) {
				t.Errorf("%s: got %v, want a not-regular-file error", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Load blocked", p)
		}
	}
}
