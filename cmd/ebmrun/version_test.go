package main

import (
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	a, _, code1 := ebmrun(t, "version")
	b, _, code2 := ebmrun(t, "--version")
	if code1 != 0 || code2 != 0 || a != b || !strings.HasPrefix(a, "ebmrun ") || !strings.Contains(a, "onnxruntime 1.30.0") || strings.Count(a, "\n") != 1 {
		t.Errorf("version %q (exit %d), --version %q (exit %d)", a, code1, b, code2)
	}
}
