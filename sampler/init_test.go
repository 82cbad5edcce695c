package sampler_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/sampler"
)

func TestParseInit(t *testing.T) {
	good := map[string]sampler.Init{
		"uniform:-4,4":     sampler.Uniform{Lo: -4, Hi: 4},
		"uniform: 0, 1e-3": sampler.Uniform{Lo: 0, Hi: 1e-3},
		"gaussian:2.5":     sampler.Gaussian{Std: 2.5},
	}
	for s, want := range good {
		got, err := sampler.ParseInit(s)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ParseInit(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "uniform", "uniform:1", "uniform:3,1", "uniform:1,1", "uniform:0,inf",
		"gaussian:0", "gaussian:-1", "gaussian:NaN", "gaussian:1abc", "gaussian:1,2", "normal:1", "laplace:0,1"} {
		got, err := sampler.ParseInit(s)
		if err == nil || !strings.HasPrefix(err.Error(), "sampler: init ") || !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
			t.Errorf("ParseInit(%q) = %v, %v; want a sampler: error naming it", s, got, err)
		}
	}
}
