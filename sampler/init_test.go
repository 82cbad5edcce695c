package sampler_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/importer"
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

func TestPlausibleBox(t *testing.T) {
	for _, c := range []struct {
		rng  []float64
		want sampler.Box
	}{
		{[]float64{-4, 4}, sampler.Box{Lo: -40, Hi: 40, PerSigma: 10}},
		{[]float64{0, 1}, sampler.Box{Lo: -4.5, Hi: 5.5, PerSigma: 10}},
		{nil, sampler.Box{Lo: -10, Hi: 10, PerSigma: 10}},
	} {
		if got := sampler.PlausibleBox(&importer.ModelSpec{DataRange: c.rng}); *got != c.want {
			t.Errorf("data range %v: box %+v, want %+v", c.rng, *got, c.want)
		}
	}
}
