package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The binary links no test helpers: not the testing package, not
// internal/testenv, not the conformance suite.
func TestNoTestingInBinary(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "testing" || strings.HasPrefix(pkg, "testing/") || strings.HasSuffix(pkg, "/internal/testenv") || strings.HasSuffix(pkg, "/runtimetest") {
			t.Errorf("cmd/ebmrun depends on %s", pkg)
		}
	}
}
