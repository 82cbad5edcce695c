package trainer_test

import (
	"testing"

	"github.com/ebmrun/ebmrun/internal/testenv"
	"github.com/ebmrun/ebmrun/runtime"
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
)

// backends returns native and, where onnxruntime loads, ort. Under CI=true
// a missing onnxruntime fails the test (testenv.Missing).
func backends(t *testing.T) []runtime.Backend {
	t.Helper()
	nat, err := runtime.Get("native")
	if err != nil {
		t.Fatal(err)
	}
	out := []runtime.Backend{nat}
	ort, err := runtime.Get("ort")
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("missing test dependency (CI=true, so this fails): %v", err)
		}
		t.Logf("ort not tested: %v", err)
		return out
	}
	return append(out, ort)
}

func runtimeOptions() runtime.Options { return runtime.Options{Threads: 1} }
