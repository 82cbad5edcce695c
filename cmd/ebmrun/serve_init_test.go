package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ebmrun/ebmrun/importer"
	"github.com/ebmrun/ebmrun/sampler"
)

// ebmrun serve starts chains where sampler.DefaultInit says; the sample
// command must agree for every shipped model and sampler, or the service's
// samples would differ from the command's.
func TestDefaultInitIsSamples(t *testing.T) {
	t.Parallel()
	paths, _ := filepath.Glob("../../models/*/model.onnx")
	if len(paths) < 5 {
		t.Fatalf("shipped models: %v", paths)
	}
	checked := 0
	for _, p := range paths {
		m, err := importer.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := importer.Spec(m, importer.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range sampler.Names() {
			smp, err := sampler.FromSpec(spec, sampler.Overrides{Sampler: name})
			if err != nil {
				continue
			}
			got, err := parseInit("", spec, smp)
			if err != nil {
				t.Fatal(err)
			}
			if want := sampler.DefaultInit(spec, smp); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s, %s: sample starts at %v, serve at %v", p, name, got, want)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d model×sampler pairs checked", checked)
	}
}
