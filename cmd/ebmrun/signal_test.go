//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebmrun/ebmrun/tensorio"
)

// TestMain lets a test run the command as a real process (this test binary
// with EBMRUN_TEST_MAIN=1), so signals reach it as they would from a shell.
func TestMain(m *testing.M) {
	if os.Getenv("EBMRUN_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// SIGINT or SIGTERM during sample: the run stops at a batch boundary,
// writes the samples finished (a valid .npy, said on stderr), exits 128+n
// and leaves no temporary file.
func TestSampleSignal(t *testing.T) {
	t.Parallel()
	model := fixtureModel(t, "ncsn_mlp")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		dir := t.TempDir()
		out := filepath.Join(dir, "s.npy")
		cmd := exec.Command(os.Args[0], "sample", model, "-n", "1e7", "--batch", "10", "--steps", "2",
			"--backend", "native", "--workers", "1", "--threads", "1", "-o", out)
		cmd.Env = append(os.Environ(), "EBMRUN_TEST_MAIN=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The temporary file appears when sampling starts; then let some
		// batches finish.
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, _ := filepath.Glob(filepath.Join(dir, ".s.npy.tmp*"))
			if len(m) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		msg := stderr.String()
		if code := cmd.ProcessState.ExitCode(); code != 128+int(sig) {
			t.Fatalf("%s: exit %d, want %d; stderr %q", sig, code, 128+int(sig), msg)
		}
		re := regexp.MustCompile(fmt.Sprintf(`ebmrun: interrupted \(%s\): wrote the (\d+) of 10000000 samples finished before it to `, regexp.QuoteMeta(sig.String())))
		m := re.FindStringSubmatch(msg)
		if m == nil || strings.Count(msg, "\n") != 2 {
			t.Fatalf("%s: stderr %q", sig, msg)
		}
		n, _ := strconv.Atoi(m[1])
		x, err := tensorio.ReadNpyFile(out)
		if err != nil {
			t.Fatalf("%s: %v", sig, err)
		}
		if n == 0 || n%10 != 0 || len(x.Shape) != 2 || x.Shape[0] != int64(n) || x.Shape[1] != 2 || len(x.F32) != 2*n {
			t.Errorf("%s: said %d samples, file shape %v with %d values", sig, n, x.Shape, len(x.F32))
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%s: left in the folder: %v", sig, entries)
		}
	}
}

// SIGINT during train writes a checkpoint and says that nothing is lost.
func TestTrainSignal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "m.onnx")
	cmd, stderr := startTraining(t, dir, trainArgs(out, "--steps", "1e7", "--checkpoint-every", "0"))
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	msg := stderr.String()
	ckpt := filepath.Join(dir, "m.ckpt")
	if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(msg, "nothing is lost: the checkpoint "+ckpt+" holds step ") ||
		!strings.Contains(msg, "`ebmrun train --resume "+ckpt+"` continues the run exactly") {
		t.Fatalf("exit %d, stderr %q", code, msg)
	}
	if _, err := os.Stat(ckpt); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a model was exported from an interrupted run")
	}
}

// A second SIGTERM during a train step that would never end (a CD step of
// 10¹² Langevin steps) stops the process at once, with one line saying what
// is lost; before, every signal after the first was swallowed and only
// SIGKILL ended it.
func TestTrainSecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "m.onnx")
	cmd, stderr := startTraining(t, dir, trainArgs(out, "--arch", "energy-mlp", "--loss", "cd", "--cd-steps", "1000000000000", "--steps", "5"))
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-waited
		t.Fatalf("still running 20 s after a second SIGTERM; stderr %q", stderr.String())
	}
	msg := stderr.String()
	if code := cmd.ProcessState.ExitCode(); code != 143 ||
		!strings.Contains(msg, "ebmrun: SIGTERM: finishing the step in progress to write the checkpoint") ||
		!strings.Contains(msg, "ebmrun: interrupted again by SIGTERM; stopped without finishing the step in progress") {
		t.Fatalf("exit %d, stderr %q", code, msg)
	}
	for _, name := range []string{"m.onnx", "m.ckpt"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s written by a run stopped inside its first step", name)
		}
	}
}

// startTraining starts `ebmrun train ARGS` (writing into dir, its log
// m.train.jsonl) as a process of its own and returns once training has
// begun — the log file exists — and a little after, so that its signal
// handling is in place. Its stderr is read after Wait.
func startTraining(t *testing.T, dir string, args []string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "EBMRUN_TEST_MAIN=1")
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "m.train.jsonl")); err == nil {
			break
		}
	}
	time.Sleep(250 * time.Millisecond)
	return cmd, stderr
}
