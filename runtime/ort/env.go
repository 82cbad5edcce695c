//go:build cgo

package ort

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// The onnxruntime environment is process-wide and can be made once: the
// library a process loads first is the one it keeps. A failed attempt is not
// remembered, so that a later call with a LibPath (or after running the
// install script) can still succeed; that is why this is a mutex and a flag
// rather than a sync.Once, which would also remember the failure.
var env struct {
	mu      sync.Mutex
	path    string // the library loaded; "" until one has
	version string
	// skipped are the paths tried and passed over before path loaded; a
	// later call naming one of them gets the same library, not an error.
	skipped map[string]bool
}

// load makes sure the onnxruntime environment exists, trying explicit (or
// SetLibPath's path), $ONNXRUNTIME_LIB and the cache in turn. It returns the
// path of the library in use.
func load(explicit string) (string, error) {
	if explicit == "" {
		explicit = defaultLibPath()
	}
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.path != "" {
		if explicit != "" && !samePath(explicit, env.path) && !env.skipped[explicit] {
			return "", fmt.Errorf("ort: onnxruntime is already loaded from %s; LibPath %s must be set before the first use (see SetLibPath)", env.path, explicit)
		}
		return env.path, nil
	}
	lerr := &LoadError{}
	for _, c := range candidates(explicit) {
		err := c.err
		if err == nil {
			err = checkFile(c.path)
		}
		if err == nil {
			err = initEnv(c.path)
		}
		if err == nil {
			env.path = c.path
			env.version = ortgo.GetVersion()
			env.skipped = map[string]bool{}
			for _, a := range lerr.Tried {
				env.skipped[a.Path] = true
				logger().Warn("ort: could not load onnxruntime; using the next candidate", "path", a.Path, "from", a.From, "err", a.Err, "using", c.path)
			}
			return env.path, nil
		}
		lerr.Tried = append(lerr.Tried, Attempt{Path: c.path, From: c.from, Err: err})
	}
	return "", lerr
}

func initEnv(path string) error {
	ortgo.SetSharedLibraryPath(path)
	// Errors come back from each call; onnxruntime's own log would print
	// them a second time, so it only reports what it cannot return.
	err := ortgo.InitializeEnvironment(ortgo.WithLogLevelFatal())
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "Error setting ORT API base") {
		// The library has no C API of the version onnxruntime_go asks for.
		return fmt.Errorf("this library is too old for onnxruntime_go v1.27.0, which needs onnxruntime ≥ 1.24 (C API 24); want %s", Version)
	}
	msg = strings.TrimPrefix(msg, "Platform-specific initialization failed: ")
	// dlopen's message repeats the path twice; the caller prints it once.
	if rest, ok := strings.CutPrefix(msg, fmt.Sprintf("Error loading ONNX shared library %q: ", path)); ok {
		msg = "dlopen: " + strings.TrimPrefix(rest, path+": ")
	}
	return errors.New(msg)
}

func samePath(a, b string) bool {
	if a == b {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// LoadedLibrary returns the path and version of the onnxruntime library this
// process loaded, or empty strings when none has been.
func LoadedLibrary() (path, version string) {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.path, env.version
}
