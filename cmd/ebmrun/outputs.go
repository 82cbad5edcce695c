package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkOutputs refuses, before any work starts, output paths that would
// fail only after it: a folder, a file that exists without --force, a
// parent folder that does not exist. Empty paths are skipped.
func checkOutputs(force bool, paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		switch {
		case err == nil && st.IsDir():
			return fmt.Errorf("%s is a folder; give a file name", p)
		case err == nil && !st.Mode().IsRegular():
			return fmt.Errorf("%s exists and is not a regular file", p)
		case err == nil && !force:
			return fmt.Errorf("%s exists; use --force to overwrite it", p)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return err
		}
		dir := filepath.Dir(p)
		if st, err := os.Stat(dir); err != nil {
			return fmt.Errorf("cannot write %s: %w", p, trimPathErr(err))
		} else if !st.IsDir() {
			return fmt.Errorf("cannot write %s: %s is not a folder", p, dir)
		}
	}
	return nil
}

// traceOutput is the trace file sample writes beside OUT with --trace K.
func traceOutput(out string, every int) string {
	if every <= 0 {
		return ""
	}
	return tracePath(out)
}

func trimPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
