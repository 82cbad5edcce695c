package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ebmrun/ebmrun/internal/testenv"
)

// Every reference to the design document names docs/design.md, which is in
// the repository, and every section cited by name exists there.
func TestDesignReferences(t *testing.T) {
	t.Parallel()
	root := testenv.Root(t)
	design, err := os.ReadFile(filepath.Join(root, "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, line := range strings.Split(string(design), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			headings[strings.TrimSpace(strings.TrimLeft(h, "#"))] = true
		}
	}
	cited := regexp.MustCompile(`docs/design\.md[,']?s? "([^"]+)"`)
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return fs.SkipDir
		}
		ext := filepath.Ext(path)
		if d.IsDir() || (ext != ".go" && ext != ".md" && ext != ".py") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		// Spelled in two parts so this file does not match itself.
		if strings.Contains(string(b), "DESIGN"+".md") || strings.Contains(string(b), "../"+"shared") {
			t.Errorf("%s cites a design document outside the repository", rel)
		}
		for _, m := range cited.FindAllStringSubmatch(string(b), -1) {
			if !headings[m[1]] {
				t.Errorf("%s cites section %q, which docs/design.md does not have", rel, m[1])
			}
		}
		return nil
	})
}
