package membudget

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	old := Set(1 << 20)
	defer Set(old)
	if err := Check("small", 1<<20); err != nil {
		t.Fatalf("1 MiB within a 1 MiB budget: %v", err)
	}
	err := Check("data set x.npy", 1<<20+1)
	if !errors.Is(err, ErrExceeded) {
		t.Fatalf("over budget: got %v", err)
	}
	if !strings.Contains(err.Error(), "data set x.npy") || !strings.Contains(err.Error(), "1.0 MiB") {
		t.Errorf("message does not name the asker and the budget: %q", err)
	}
	if err := Elems("overflow", 1<<62, 8); !errors.Is(err, ErrExceeded) {
		t.Errorf("overflowing size accepted: %v", err)
	}
	if p := Product(1<<40, 1<<40); p != -1 {
		t.Errorf("Product overflow = %d, want -1", p)
	}
	if p := Product(3, 4, 5); p != 60 {
		t.Errorf("Product = %d", p)
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{"8G": 8 << 30, "512MiB": 512 << 20, "1.5GB": 3 << 29, "1000": 1000, "2k": 2048} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1G", "abc", "0", "1e30T"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestReaderStopsAtBudget(t *testing.T) {
	old := Set(1000)
	defer Set(old)
	r := &Reader{R: strings.NewReader(strings.Repeat("x", 5000)), What: "bomb.csv.gz"}
	_, err := io.ReadAll(r)
	if !errors.Is(err, ErrExceeded) || !strings.Contains(err.Error(), "bomb.csv.gz") {
		t.Fatalf("got %v, want a budget error naming the file", err)
	}
}

func TestDefaultIsPositive(t *testing.T) {
	if d := Default(); d <= 0 {
		t.Fatalf("Default() = %d", d)
	}
}
