//go:build unix

package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServe runs `ebmrun serve` as a process on a free loopback port and
// returns its URL; stderr collects what it says.
// The returned channel is closed once the process has closed its stderr
// (it exited); only then may stderr be read and Wait be called.
func startServe(t *testing.T, args ...string) (*exec.Cmd, string, *bytes.Buffer, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0", "--backend", "native"}, args...)...)
	cmd.Env = append(os.Environ(), "EBMRUN_TEST_MAIN=1")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var stderr bytes.Buffer
	r := bufio.NewReader(pipe)
	re := regexp.MustCompile(`^ebmrun: serving .* on (http://\S+) \(native\)`)
	for {
		line, err := r.ReadString('\n')
		stderr.WriteString(line)
		if m := re.FindStringSubmatch(line); m != nil {
			done := make(chan struct{})
			go func() { io.Copy(&stderr, r); close(done) }()
			return cmd, m[1], &stderr, done
		}
		if err != nil {
			t.Fatalf("serve did not start: %s", stderr.String())
		}
	}
}

// The service's .npy answer is byte for byte the file `ebmrun sample`
// writes for the same seed and options; SIGTERM drains and exits 0.
func TestServeMatchesSampleAndDrains(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Symlink(mustAbs(t, "../../models/swissroll"), filepath.Join(dir, "swissroll")); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("abc123\n"), 0o600)
	cmd, url, stderr, exited := startServe(t, "--models", dir, "--token-file", tok)

	req, _ := http.NewRequest("POST", url+"/v1/models/swissroll/sample", strings.NewReader(`{"n": 30, "seed": 7, "steps": 10, "sampler": "ald"}`))
	req.Header.Set("Accept", "application/x-npy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	req.Body = io.NopCloser(strings.NewReader(`{"n": 30, "seed": 7, "steps": 10, "sampler": "ald"}`))
	req.Header.Set("Authorization", "Bearer abc123")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	out := filepath.Join(dir, "cli.npy")
	if _, errs, code := ebmrun(t, "sample", "../../models/swissroll/model.onnx", "-n", "30", "--seed", "7", "--steps", "10",
		"--sampler", "ald", "--backend", "native", "-o", out); code != 0 {
		t.Fatal(errs)
	}
	want, _ := os.ReadFile(out)
	if !bytes.Equal(got, want) {
		t.Fatalf("served .npy (%d bytes) differs from ebmrun sample's (%d bytes)", len(got), len(want))
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20 s after SIGTERM")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v; stderr %s", err, stderr)
	}
	if s := stderr.String(); !strings.Contains(s, "ebmrun: draining") || !strings.Contains(s, "ebmrun: stopped") {
		t.Errorf("stderr: %s", s)
	}
}

func TestServeUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--models", t.TempDir()},
		{"serve", "--models", "../../models", "--max-batch", "0"},
	} {
		if _, errs, code := ebmrun(t, args...); code != 2 || !strings.HasPrefix(errs, "ebmrun: ") || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
