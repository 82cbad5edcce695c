package runtime

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ebmrun/ebmrun/graph"
)

// Backend turns a model into a Plan. Backends register themselves by name
// (see Register) and callers choose one with Get.
type Backend interface {
	// Name is the registry name: "native", "ort", "ort-cuda".
	Name() string
	// Available reports why the backend cannot run here, or nil.
	Available() error
	// Prepare checks and compiles the model once. The Plan it returns is
	// immutable and may be shared by goroutines.
	Prepare(m *graph.Model, opts Options) (Plan, error)
}

// MaxThreads bounds Options.Threads. Each thread of a session holds its own
// scratch (native) or an OS thread (onnxruntime), so an unbounded count from
// a flag or a config file can exhaust memory before any work starts; no
// machine this runs on has more cores than this.
const MaxThreads = 1024

// CheckThreads reports a thread count that no session may use.
func CheckThreads(n int) error {
	if n < 0 || n > MaxThreads {
		return fmt.Errorf("%d threads: want 0 (all cores) to %d", n, MaxThreads)
	}
	return nil
}

// Options tune a backend. The zero value is the sensible default.
type Options struct {
	// Threads is the number of threads a session may use; 0 means all cores.
	// More than MaxThreads is refused.
	Threads int
	// Device is the GPU ordinal for GPU backends.
	Device int
	// LibPath is the onnxruntime shared library to load (ort backends).
	LibPath string
	// FoldElements bounds the number of elements of any one tensor that
	// Prepare computes ahead of time by constant folding (native); 0 means
	// DefaultFoldElements. A tiny model can otherwise ask for gigabytes
	// (ConstantOfShape or Expand to a huge shape).
	FoldElements int64
}

// DefaultFoldElements is the constant-folding budget when Options leave it
// zero: 64 Mi elements (256 MiB of float32).
const DefaultFoldElements = 64 << 20

// Plan is a prepared model: immutable, goroutine-safe.
type Plan interface {
	// Inputs and Outputs are the model's runtime inputs and outputs, in the
	// order Session.Run takes them.
	Inputs() []graph.ValueInfo
	Outputs() []graph.ValueInfo
	// NewSession makes a session with its own scratch memory. A session is
	// used by one goroutine at a time.
	NewSession() (Session, error)
	// Close releases what the plan holds; sessions must be closed first.
	Close() error
}

// Session runs a plan. Run takes the inputs in Plan.Inputs order and fills the
// outputs in Plan.Outputs order. Each output must be a non-nil tensor owned by
// the caller; Run sets its dtype and shape and reuses its data slice when it
// is large enough, so steady-state calls with one batch size allocate nothing.
// The batch size may change between calls.
type Session interface {
	Run(inputs, outputs []*graph.Tensor) error
	Close() error
}

// ErrUnavailable is wrapped by errors from Get and Prepare when a backend
// cannot run on this machine (library missing, no GPU, built without cgo).
var ErrUnavailable = errors.New("backend unavailable")

var (
	mu       sync.Mutex
	backends = map[string]Backend{}
)

// Register makes a backend available by name. Backends call it from init.
func Register(b Backend) {
	mu.Lock()
	defer mu.Unlock()
	backends[b.Name()] = b
}

// Names lists the registered backends.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for n := range backends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Get returns the named backend, checking that it is available. "auto" picks
// "ort" when its library loads and "native" otherwise, and logs its choice.
func Get(name string) (Backend, error) {
	if name == "" || name == "auto" {
		b, _, err := Auto()
		return b, err
	}
	mu.Lock()
	b, ok := backends[name]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("runtime: unknown backend %q (have %v)", name, Names())
	}
	if err := b.Available(); err != nil {
		return nil, fmt.Errorf("runtime: backend %q: %w", name, err)
	}
	return b, nil
}

// Auto picks onnxruntime when it loads and the pure-Go backend otherwise,
// and says which and why in one line, for the caller to show or not.
func Auto() (Backend, string, error) {
	mu.Lock()
	ort, nat := backends["ort"], backends["native"]
	mu.Unlock()
	reason := ""
	if ort != nil {
		err := ort.Available()
		if err == nil {
			return ort, "picked ort (onnxruntime loaded)", nil
		}
		why, _, _ := strings.Cut(err.Error(), "\n")
		reason = "picked native; onnxruntime did not load (" + strings.TrimSuffix(why, ":") + "; `ebmrun inspect MODEL` says why)"
	}
	if nat == nil {
		return nil, "", errors.New("runtime: no backend registered")
	}
	if reason == "" {
		reason = "picked native (onnxruntime is not registered)"
	}
	return nat, reason, nil
}

// ComputeTimer is implemented by sessions that can say how long the backend
// itself computed (inside onnxruntime's Run, say), as opposed to the Go-side
// work around it: checking, copying and converting tensors. The duration is
// cumulative over the session's runs.
type ComputeTimer interface {
	ComputeTime() time.Duration
}
