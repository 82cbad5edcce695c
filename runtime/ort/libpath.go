package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ebmrun/ebmrun/runtime"
)

// Version is the onnxruntime release this package is built and tested with;
// scripts/install-onnxruntime.sh installs it.
const Version = "1.30.0"

// EnvLib names the environment variable that points at libonnxruntime.so.
const EnvLib = "ONNXRUNTIME_LIB"

// InstallScript is what to run when no library loads.
const InstallScript = "scripts/install-onnxruntime.sh"

// CachePath is where scripts/install-onnxruntime.sh puts the library:
// ${EBMRUN_CACHE:-$HOME/.cache/ebmrun}/onnxruntime-<Version>/libonnxruntime.so.1.
// It fails only when neither EBMRUN_CACHE nor the home directory is known.
func CachePath() (string, error) {
	dir := os.Getenv("EBMRUN_CACHE")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no cache folder: EBMRUN_CACHE is unset and %w", err)
		}
		dir = filepath.Join(home, ".cache", "ebmrun")
	}
	return filepath.Join(dir, "onnxruntime-"+Version, "libonnxruntime.so.1"), nil
}

var (
	libMu   sync.Mutex
	libPath string
)

// SetLibPath sets the library that Available and Prepare try first when
// runtime.Options.LibPath is empty. A command-line flag should call it before
// the first runtime.Get, because Get calls Available, and the library a process
// loads first is the one it keeps.
func SetLibPath(path string) {
	libMu.Lock()
	defer libMu.Unlock()
	libPath = path
}

func defaultLibPath() string {
	libMu.Lock()
	defer libMu.Unlock()
	return libPath
}

// Attempt is one library path tried, where it came from, and why it did not load.
type Attempt struct {
	Path string
	From string // "LibPath", "$ONNXRUNTIME_LIB", "cache"
	Err  error
}

// LoadError lists every path tried when no onnxruntime library loads. It wraps
// runtime.ErrUnavailable.
type LoadError struct {
	Tried []Attempt
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString("ort: cannot load onnxruntime ")
	b.WriteString(Version)
	b.WriteString(":")
	for _, a := range e.Tried {
		if a.Path == "" {
			fmt.Fprintf(&b, "\n  %s: %v", a.From, a.Err)
			continue
		}
		fmt.Fprintf(&b, "\n  %s (%s): %v", a.Path, a.From, a.Err)
	}
	fmt.Fprintf(&b, "\nrun %s to install it into the cache, or set %s to a libonnxruntime.so", InstallScript, EnvLib)
	return b.String()
}

func (e *LoadError) Unwrap() error { return runtime.ErrUnavailable }

// candidate is a library path to try and where it came from.
type candidate struct {
	path, from string
	err        error // set when the source could not even name a path
}

// candidates lists the library paths in the order they are tried: the
// explicit path (Options.LibPath or SetLibPath), $ONNXRUNTIME_LIB, the cache.
func candidates(explicit string) []candidate {
	var out []candidate
	if explicit != "" {
		out = append(out, candidate{path: explicit, from: "LibPath"})
	}
	if p := os.Getenv(EnvLib); p != "" {
		out = append(out, candidate{path: p, from: "$" + EnvLib})
	}
	p, err := CachePath()
	out = append(out, candidate{path: p, from: "cache", err: err})
	return out
}

// checkFile gives a plain reason for a path that cannot be a library, before
// dlopen turns it into a longer message. A bare name (no slash) is left to
// dlopen, which searches LD_LIBRARY_PATH and the system folders.
func checkFile(path string) error {
	if !strings.ContainsRune(path, '/') {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errors.New("no such file")
	case err != nil:
		return err
	case fi.IsDir():
		return errors.New("is a directory, not a library file")
	}
	return nil
}
