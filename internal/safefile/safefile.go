// Package safefile opens files that ebmrun reads as input — models, data
// sets, checkpoints, images — only when they are regular files. A FIFO
// would block the open or the read forever, a device such as /dev/zero
// never ends, and a folder is not data; each is refused with an error
// before a byte is read. Reads are bounded by the file's size as stat saw
// it and by the memory budget.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/ebmrun/ebmrun/internal/membudget"
)

// ErrNotRegular is wrapped by the error for a path that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Open opens path for reading if it is a regular file (after following
// symbolic links). The type is checked before opening, and again on the
// open descriptor, so a FIFO swapped in between neither blocks nor passes.
func Open(path string) (*os.File, fs.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if err := regular(path, st); err != nil {
		return nil, nil, err
	}
	// O_NONBLOCK: opening a FIFO that replaced the file after the Stat
	// returns at once instead of waiting for a writer; it changes nothing
	// for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fst, err := f.Stat()
	if err == nil {
		err = regular(path, fst)
	}
	if err == nil && !os.SameFile(st, fst) {
		err = fmt.Errorf("%s changed while being opened", path)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fst, nil
}

func regular(path string, st fs.FileInfo) error {
	if st.Mode().IsRegular() {
		return nil
	}
	kind := "a special file"
	switch m := st.Mode(); {
	case m.IsDir():
		kind = "a folder"
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	case m&fs.ModeDevice != 0 || m&fs.ModeCharDevice != 0:
		kind = "a device"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	}
	return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: it is %s", ErrNotRegular, kind)}
}

// ReadFile reads a regular file whole, after checking its size against
// maxBytes (≤ 0: no limit of its own) and the memory budget. what names
// the file's role in a budget error ("model", "checkpoint").
func ReadFile(path, what string, maxBytes int64) ([]byte, error) {
	f, st, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := st.Size()
	if maxBytes > 0 && size > maxBytes {
		return nil, fmt.Errorf("%s %s: file of %s exceeds the limit of %s", what, path, membudget.Human(size), membudget.Human(maxBytes))
	}
	if err := membudget.Check(fmt.Sprintf("%s %s", what, path), size); err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	// A file that grew after stat is read only as far as stat said; one
	// more byte means it is still being written.
	var one [1]byte
	if n, _ := f.Read(one[:]); n > 0 {
		return nil, fmt.Errorf("%s %s: the file grew while being read", what, path)
	}
	return buf, nil
}
